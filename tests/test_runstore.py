"""HDF5 run store: batches, units, provenance, and survival of SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from bench.errors import RunStoreError
from bench.runstore import RunFile, open_run


def test_append_round_trip_and_provenance(tmp_path):
    path = tmp_path / "run.h5"
    with RunFile(path, "test", station={"chip": {"url": "sim"}}, seeds={"chip": 3}) as run:
        for i in range(5):
            run.append("cells/g", np.full((10, 2), i, float), units="S")
            run.flush()
        run.write("map", np.eye(3), units="S")
    with open_run(path) as f:
        assert f["cells/g"].shape == (50, 2)
        assert f["cells/g"].attrs["units"] == "S"
        assert np.array_equal(f["cells/g"][:, 0], np.repeat(np.arange(5), 10))
        assert f.attrs["complete"] and f.attrs["kind"] == "test"
        assert json.loads(f.attrs["seeds"]) == {"chip": 3}
        assert json.loads(f.attrs["station"])["chip"]["url"] == "sim"
        assert f.attrs["utc_start"] <= f.attrs["utc_end"]


def test_exception_marks_run_incomplete(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(ZeroDivisionError):
        with RunFile(path, "test") as run:
            run.append("x", np.ones(3))
            1 / 0
    with open_run(path) as f:
        assert not f.attrs["complete"] and "ZeroDivisionError" in f.attrs["error"]
        assert f["x"].shape == (3,)


def test_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunStoreError, match="not a directory"):
        RunFile(tmp_path / "f" / "run.h5", "test")
    assert (tmp_path / "f").read_text() == "x"


def test_unwritable_location(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):
        pytest.skip("running as a user that ignores directory permissions")
    with pytest.raises(RunStoreError, match="not writable"):
        RunFile(ro / "run.h5", "test")


def test_open_missing_or_garbage(tmp_path):
    with pytest.raises(RunStoreError, match="no such run file"):
        open_run(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(RunStoreError, match="not a readable HDF5"):
        open_run(tmp_path / "junk.h5")


@pytest.mark.parametrize("n_units", [1, 7])
def test_sigkill_after_n_units_keeps_them(tmp_path, n_units):
    path = tmp_path / "run.h5"
    script = textwrap.dedent(f"""
        import os, sys, numpy as np
        from bench.runstore import RunFile
        run = RunFile({str(path)!r}, "killed")
        for i in range({n_units}):
            run.append("unit/value", np.full((100, 4), i, np.float64), units="S")
            run.append("unit/index", np.array([i]))
            run.flush()
        print("done", flush=True)
        # the unit in flight: written but never flushed
        run.append("unit/value", np.full((100, 4), 99.0))
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "done"
    p.send_signal(signal.SIGKILL)
    p.wait()
    with h5py.File(path, "r") as f:
        assert f["unit/index"][:].tolist() == list(range(n_units))
        v = f["unit/value"][: 100 * n_units]
        assert np.array_equal(v[:, 0], np.repeat(np.arange(n_units), 100).astype(float))
        assert not f.attrs["complete"]
