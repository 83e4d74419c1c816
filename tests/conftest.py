import atexit
import os
import shutil
import tempfile
import uuid

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Module- and session-scoped fixtures run before the per-test die home below: they too must
# never touch (or wait on the lock of) the user's own default die in ~/.cache.
os.environ["SNNBENCH_DIE_HOME"] = _DIES = tempfile.mkdtemp(prefix="snnbench-test-dies-")
atexit.register(shutil.rmtree, _DIES, True)

import sim_backend  # noqa: E402,F401  (registers pesim://)
from tests._xdist_group import pytest_collection_modifyitems_xdist_group  # noqa: E402,F401  (a hook)
from tests.procwatch import MARK_VAR, kill, wait_gone  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_tests():
    """Every process started by a test (in this pytest process) carries a marker in its
    environment; at the end of the session none may be left.  Leftovers are killed and the
    session fails, naming them."""
    mark = f"{os.getpid()}-{uuid.uuid4().hex}"
    os.environ[MARK_VAR] = mark
    yield
    left = wait_gone(mark, timeout_s=10.0)
    if left:
        kill(left)
        pytest.fail("processes started by the tests outlived them (killed now): "
                    + "; ".join(f"{pid}: {cmd[:120]}" for pid, cmd in sorted(left.items())), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernel_ready():
    """Compile the chip kernel into numba's disk cache before any test starts a simulator:
    a first-ever compile inside a RUN would overrun the RUN's reply deadline (decision 0015)."""
    from sim_backend.physics import fastpath

    fastpath.warm()


@pytest.fixture(autouse=True)
def _own_die_home(tmp_path_factory, monkeypatch):
    """Each test gets its own default-die home: the default station's persistent simulated
    chip (bench.dies) is never shared between tests, nor with the user's own."""
    monkeypatch.setenv("SNNBENCH_DIE_HOME", str(tmp_path_factory.mktemp("die_home")))


@pytest.fixture(scope="session")
def default_synth_set(tmp_path_factory):
    """The default synthetic set (``bench.data.synth.generate(dir, seed=0)``, 352 samples,
    ~67 MB), generated once per test run and shared by the xdist workers (a file lock in the
    run's common temporary directory, removed with it).  Tests must treat it as read-only."""
    from pathlib import Path

    from filelock import FileLock

    from bench.data import synth

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "default-synth-set"
    with FileLock(str(root) + ".lock"):
        done = root / "path.txt"
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            done.write_text(str(synth.generate(root / "synth", seed=0)))
    return Path(done.read_text())


@pytest.hookimpl(tryfirst=True)   # before xdist reads the xdist_group marks (its own hook)
def pytest_collection_modifyitems(config, items):
    """Schedule for two xdist workers (``make test``: ``--dist loadgroup --no-loadscope-reorder``):

    - a module whose tests share a module- or class-scoped fixture is one ``xdist_group``, so
      that fixture (a generated data set, a trained model, a demo run) is built on one worker
      only, not on both;
    - units (a group, or a single test) run longest first, by the measured durations in
      tests/_slowest.py: a two-minute test starts at the beginning, not at the end with the
      other worker idle.  Tests keep their order inside a group."""
    from tests._slowest import CHEAP_SHARED, DEFAULT_S, SLOWEST_S

    unit_of: dict[int, str] = {}
    cost: dict[str, float] = {}
    for item in items:
        scopes = {d.scope for defs in getattr(item, "_fixtureinfo").name2fixturedefs.values() for d in defs}
        shared = bool(scopes & {"module", "class", "package"}) and item.nodeid.split("::")[0] not in CHEAP_SHARED
        unit = item.nodeid.split("::")[0] if shared else item.nodeid
        if shared and config.pluginmanager.has_plugin("xdist"):
            item.add_marker(pytest.mark.xdist_group(unit.replace("/", "_")))
        unit_of[id(item)] = unit
        cost[unit] = cost.get(unit, 0.0) + SLOWEST_S.get(item.nodeid.split("@")[0], DEFAULT_S)
    first = {}
    for i, item in enumerate(items):
        first.setdefault(unit_of[id(item)], i)
    order = {id(item): (-cost[unit_of[id(item)]], first[unit_of[id(item)]], i) for i, item in enumerate(items)}
    items.sort(key=lambda item: order[id(item)])
