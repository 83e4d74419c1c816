"""The suite's scheduling (``make test``: ``-n 2 --dist loadgroup``) keeps an xdist group on ONE
worker, so a module-scoped fixture shared by a module's tests is built once per run, not once
per worker (tests/_xdist_group.py, tests/conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_grouped_module_fixture_is_built_once_on_one_worker(tmp_path: Path) -> None:
    """Kills tests/_xdist_group.py's suffix hook removed or made a no-op (with pytest >= 9.2 and
    pytest-xdist 3.8 the group is then lost: xdist's scheduler hands the first test to gw0 and the
    second to gw1, and each worker builds the module fixture).

    A throwaway project: four tests share one module-scoped fixture and carry one
    ``xdist_group`` mark; the fixture appends the worker's id to a log each time it is built.
    Expected (xdist's documented loadgroup contract): one build, all four tests on that worker,
    and each test's reported node id ending in ``@<group>``."""
    (tmp_path / "conftest.py").write_text(
        "from tests._xdist_group import pytest_collection_modifyitems_xdist_group  # noqa: F401\n")
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent("""
        import os
        import pytest

        pytestmark = pytest.mark.xdist_group("g1")

        @pytest.fixture(scope="module")
        def shared():
            with open(os.environ["BUILD_LOG"], "a") as f:
                f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
            return os.environ["PYTEST_XDIST_WORKER"]

        @pytest.mark.parametrize("i", range(4))
        def test_uses_shared(shared, i):
            assert shared == os.environ["PYTEST_XDIST_WORKER"]
    """))
    log = tmp_path / "builds.txt"
    # Only xdist is loaded (no plugin autoload): the installed hypothesis and timeout plugins
    # tripled the three processes' start-up CPU (4.5 s -> 1.2 s, tests/_slowest.py) while the
    # suite's two workers hold both cores; neither touches node ids or scheduling.
    env = dict(os.environ, BUILD_LOG=str(log), PYTHONPATH=str(ROOT), PYTEST_ADDOPTS="",
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xdist", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder",
         "-v", "-p", "no:cacheprovider", "-o", "addopts=", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path / "test_grouped.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    builds = log.read_text().split()
    assert len(builds) == 1, f"module fixture built {len(builds)} times, on {builds}\n{res.stdout}"
    passed = [ln for ln in res.stdout.splitlines() if " PASSED " in ln]
    assert len(passed) == 4, res.stdout
    assert all(ln.startswith(f"[{builds[0]}]") and ln.rstrip().endswith("@g1") for ln in passed), res.stdout
