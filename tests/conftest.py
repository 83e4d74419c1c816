import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sim_backend  # noqa: E402,F401  (registers pesim://)


@pytest.fixture(autouse=True)
def _own_die_home(tmp_path_factory, monkeypatch):
    """Each test gets its own default-die home: the default station's persistent simulated
    chip (bench.dies) is never shared between tests, nor with the user's own."""
    monkeypatch.setenv("SNNBENCH_DIE_HOME", str(tmp_path_factory.mktemp("die_home")))
