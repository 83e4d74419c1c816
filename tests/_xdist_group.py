"""The ``@group`` suffix of xdist-grouped node ids (imported into tests/conftest.py as a hook).

Its own module so that tests/test_xdist_group.py can load the same hook into a throwaway
pytest project without the rest of the suite's conftest."""
from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")  # after xdist's own hook
def pytest_collection_modifyitems_xdist_group(config, items):
    """On an xdist worker under ``--dist loadgroup``: make sure each test with an ``xdist_group``
    mark carries the ``@group`` suffix in its node id, which is all the controller's scheduler
    sees of the group (xdist/scheduler/loadgroup.py splits the id at the last ``@``).

    pytest-xdist 3.8 appends it by assigning ``item._nodeid``; pytest >= 9.2 derives ``nodeid``
    from ``item._id`` instead, so that assignment is silently lost and every test of a group ran
    as its own unit, on either worker, each worker building the module's shared fixture (a data
    set, a trained model, a demo run) again.  Here the suffix is set through whichever attribute
    the running pytest reads, once (never twice if xdist's own hook already did it)."""
    if not (getattr(config, "workerinput", None) is not None and config.getvalue("loadgroup")):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names:
            _suffix_nodeid(item, "@" + "_".join(names))


def _suffix_nodeid(item: pytest.Item, suffix: str) -> None:
    """Append ``suffix`` to ``item.nodeid`` unless it already ends with it."""
    nodeid = item.nodeid
    if nodeid.endswith(suffix):
        return
    new = nodeid + suffix
    node_id = getattr(item, "_id", None)
    if node_id is not None and hasattr(type(node_id), "parse"):  # pytest >= 9.2: nodeid = str(item._id)
        item._id = type(node_id).parse(new)
    else:                                                          # older pytest: nodeid = item._nodeid
        item._nodeid = new
    assert item.nodeid == new, (item.nodeid, new)
