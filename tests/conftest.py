import os
import uuid

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sim_backend  # noqa: E402,F401  (registers pesim://)
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


@pytest.fixture(autouse=True)
def _own_die_home(tmp_path_factory, monkeypatch):
    """Each test gets its own default-die home: the default station's persistent simulated
    chip (bench.dies) is never shared between tests, nor with the user's own."""
    monkeypatch.setenv("SNNBENCH_DIE_HOME", str(tmp_path_factory.mktemp("die_home")))
