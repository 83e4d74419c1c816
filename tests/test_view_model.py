"""Live view, data side (issue 12): what the viewer reads from run and campaign files.

No Qt here: bench.view.model turns a file into panel data.  Expected values come from the
arrays the writers built (tests/_view_writers.py), hand-derived cases, or the measurement
procedure's own result (power), never from the model itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.runstore import RunFile
from bench.view import model as M
from tests import _view_writers as W

WRITER = str(Path(__file__).with_name("_view_writers.py"))


def test_program_snapshot_matches_written_cells(tmp_path):
    p = tmp_path / "prog.h5"
    W.write_program(p, units=6)
    s = M.read_snapshot(p)
    rec = W.program_records()
    assert s.kind == "chip_program" and s.state == M.FINISHED
    d = s.program
    assert (d.done, d.total) == (3072, 3072)
    assert np.array_equal(d.target_s, W.target_map())
    assert np.allclose(d.measured_s[rec["row"], rec["col"]], rec["g_s"])
    assert np.array_equal(d.stuck, W.stuck_cells())
    assert np.allclose(np.sort(d.error_s), np.sort(rec["g_s"] - rec["target_s"]))
    assert np.array_equal(np.sort(d.done_pulses), np.sort(rec["pulses"]))


def test_replay_steps_through_commits(tmp_path):
    p = tmp_path / "prog.h5"
    W.write_program(p, units=6)
    # commits: open, targets+empty cells, 6 units, close
    done = [M.read_snapshot(p, upto=k).program for k in range(1, 10)]
    counts = [d.done if d is not None else None for d in done]
    sizes = [len(a) for a in np.array_split(np.arange(3072), 6)]
    assert counts == [None, 0] + list(np.cumsum(sizes)) + [3072]
    assert M.read_snapshot(p, upto=4).state == M.RUNNING
    part = M.read_snapshot(p, upto=4).program      # after 2 units: the rest not measured yet
    assert np.isfinite(part.measured_s).sum() == sum(sizes[:2])


def test_uncommitted_rows_are_ignored_and_dead_writer_reported(tmp_path):
    """A writer killed after appending rows it never flushed: the reader shows the flushed
    units only and reports the run as ended without finishing."""
    p = tmp_path / "killed.h5"
    code = f"""
import sys, time, numpy as np
sys.path.insert(0, {str(Path(WRITER).parent.parent)!r})
from bench.runstore import RunFile
run = RunFile({str(p)!r}, "chip_program", chip_info={{"rows": 128, "columns": 24}})
from tests._view_writers import program_records, target_map
rec = program_records()
run.write("maps/target_s", target_map())
run.append("cells", rec[:1000]); run.flush()
run.append("cells", rec[1000:2000])   # on disk (as a cache eviction would), never committed
run.h5.flush()
print("ready", flush=True)
time.sleep(3600)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with h5py.File(p, "r", locking=False) as h5:
            assert h5["cells"].shape[0] == 2000
        live = M.read_snapshot(p)
        assert live.state == M.RUNNING and live.program.done == 1000
    finally:
        proc.kill()
        proc.wait()
    s = M.read_snapshot(p)
    assert s.state == M.ENDED and "gone" in s.detail
    assert s.program.done == 1000
    assert np.isfinite(s.program.measured_s).sum() == 1000


def test_infer_running_scores_hand_derived(tmp_path):
    p = tmp_path / "inf.h5"
    with RunFile(p, "infer") as run:
        run.set_attrs("/", n_classes=3, samples_total=4)
        labels, pred, sw = np.array([0, 1, 2, 1]), np.array([0, 2, 2, 1]), np.array([1, 1, 2, 1])
        for i in range(0, 4, 2):
            run.append("output_spikes", np.zeros((2, 5, 3), np.uint8))
            run.append("labels", labels[i:i + 2])
            run.append("predictions", pred[i:i + 2])
            run.append("software_predictions", sw[i:i + 2])
            run.flush()
    d = M.read_snapshot(p).infer
    assert (d.samples, d.total, d.n_classes) == (4, 4, 3)
    assert np.allclose(d.chip_accuracy, [1, 1 / 2, 2 / 3, 3 / 4])
    assert np.allclose(d.software_accuracy, [0, 1 / 2, 2 / 3, 3 / 4])
    assert np.array_equal(d.confusion, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    assert d.latest_label == 1


def test_infer_latest_sample_rasters(tmp_path):
    p = tmp_path / "inf.h5"
    W.write_infer(p, units=3, per_unit=4)
    data = W.infer_data(12)
    d = M.read_snapshot(p).infer
    assert d.samples == 12 and d.total == 12
    assert np.array_equal(d.input_raster, data["x"][-1])
    assert np.array_equal(d.output_raster, data["out"][-1])
    d2 = M.read_snapshot(p, upto=4).infer     # open, attributes, 2 units
    assert d2.samples == 8 and np.array_equal(d2.input_raster, data["x"][7])


def test_power_energy_per_sample_closed_form(tmp_path):
    p = tmp_path / "pw.h5"
    W.write_power(p, units=4, per_unit=8, points=200)
    d = M.read_snapshot(p).power
    assert [r.rail for r in d.rails] == list(W.RAILS)
    assert d.samples_done == 32
    assert d.estimate_j == pytest.approx(W.expected_energy_per_sample(8, 200), rel=1e-9)
    assert d.measured_j is None and d.energy_per_sample_j == d.estimate_j
    for r in d.rails:
        assert r.idle_current_a == pytest.approx(W.RAILS[r.rail][2])
        assert r.current_a.size == 800


def test_power_energy_agrees_with_the_power_procedure(tmp_path, capsys):
    """Once the power procedure has finished, the panel shows the procedure's own figure;
    the viewer's running estimate (a simpler integral of the same traces) is within 5 % of it,
    and a replay before the end shows only the estimate."""
    from bench.cli import main

    out = tmp_path / "power.h5"
    assert main(["power", "--samples", "24", "--no-program", "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    d = M.read_snapshot(out).power
    assert d.samples_done == 24
    assert d.measured_j == res["energy_per_sample_j"] == d.energy_per_sample_j
    assert d.estimate_j == pytest.approx(res["energy_per_sample_j"], rel=0.05)
    s = M.read_snapshot(out)
    early = M.read_snapshot(out, upto=s.committed - 1).power
    assert early.measured_j is None


def test_campaign_snapshot(tmp_path):
    p = tmp_path / "camp.h5"
    W.write_campaign(p, state="finished")
    s = M.read_snapshot(p)
    c = s.campaign
    assert s.kind == "campaign" and s.state == M.FINISHED
    assert np.array_equal(c.status, W.campaign_status())
    assert c.counts == {"done": 7, "failed": 2, "skipped": 1, "pending": 2}
    assert c.grid2d().shape == (4, 3)
    x, y = c.series("v_read", "accuracy")
    ok = np.flatnonzero(W.campaign_status() == 0)
    v = np.repeat([0.1, 0.2, 0.3, 0.4], 3)[ok]
    assert np.allclose(np.sort(x), np.sort(v)) and np.allclose(np.sort(y), np.sort(0.5 + v))


def test_campaign_rows_beyond_committed_are_ignored(tmp_path):
    p = tmp_path / "camp.h5"
    W.write_campaign(p, units=4)
    with h5py.File(p, "a") as f:   # rows written but not committed
        f.attrs["committed"] = 2
    c = M.read_snapshot(p).campaign
    assert c.counts["done"] + c.counts["failed"] + c.counts["skipped"] == 2
    assert M.read_snapshot(p).state == M.RUNNING


def test_check_file_rejects_non_run_files(tmp_path):
    from bench.errors import DataFormatError, RunPathError

    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        M.check_file(txt)
    with pytest.raises(RunPathError, match="no such"):
        M.check_file(tmp_path / "missing.h5")
    with pytest.raises(DataFormatError, match="directory"):
        M.check_file(tmp_path)


def test_writer_state_rules():
    me = os.getpid()
    host = __import__("socket").gethostname()
    assert M.writer_state({"complete": True})[0] == M.FINISHED
    assert M.writer_state({"complete": False, "utc_end": "x", "error": "E: boom"}) == (M.ENDED, "E: boom")
    assert M.writer_state({"complete": False, "utc_end": "", "writer_pid": me, "writer_host": host})[0] == M.RUNNING
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert M.writer_state({"complete": False, "writer_pid": dead.pid, "writer_host": host})[0] == M.ENDED
    # another host's pid cannot be checked: still running as far as we can tell
    assert M.writer_state({"complete": False, "writer_pid": dead.pid, "writer_host": "elsewhere"})[0] == M.RUNNING


def test_zombie_writer_counts_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)   # exited, not reaped: a zombie
    try:
        assert not M._pid_alive(proc.pid)
    finally:
        proc.wait()
    os.kill(os.getpid(), 0)
    assert M._pid_alive(os.getpid())


def test_qt_binding_keeps_none_alive():
    """PySide6 6.12.0 dropped one reference to None per void call; on Python 3.11 a window
    that refreshes for a while then aborts (decision 0008).  Runs in a subprocess (Qt)."""
    code = """
import sys
from pyqtgraph.Qt import QtWidgets
app = QtWidgets.QApplication([])
label = QtWidgets.QLabel("x")
before = sys.getrefcount(None)
for _ in range(2000):
    label.setText("abc")
print(sys.getrefcount(None) - before)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) > -100, "the Qt binding leaks references to None (see decision 0008)"
