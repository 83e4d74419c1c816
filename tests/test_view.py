"""``snnbench view`` (issue 12): the window follows runs written by other processes.

Every viewer runs in its own process (Qt offscreen); screenshots are read back with Pillow,
and their pixels are compared with what the test wrote into the file.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from tests import _view_writers as W

WRITER = str(Path(__file__).with_name("_view_writers.py"))
ROOT = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": ROOT}


def snnbench(*args: str, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], env=env or ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run(*args: str, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], env=env or ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def writer(what: str, path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WRITER, what, str(path), *args], env=ENV,
                            stdout=subprocess.PIPE, text=True)


def stop(*procs) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
        if p is not None:
            p.wait(timeout=30)


def trace_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# --- following a live run ------------------------------------------------------------------------
def test_follows_a_run_written_by_another_process(tmp_path):
    f, tr = tmp_path / "run.h5", tmp_path / "trace.jsonl"
    view = snnbench("view", str(f), "--wait", "--until-done", "--interval-s", "0.1", "--trace", str(tr), "--json",
                    "--nice", "0")
    w = None
    try:
        # the viewer starts first and waits for the file: its trace file appears once its
        # window exists (a loaded machine may take many seconds to import Qt)
        deadline = time.monotonic() + 90
        while not tr.exists() and view.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tr.exists(), "the viewer never opened its window"
        w = writer("program", f, "--units", "12", "--sleep", "0.3")  # 3.6 s: 11 counts between 0 and 3072
        assert w.wait(timeout=60) == 0
        out, err = view.communicate(timeout=60)
    finally:
        stop(w, view)
    assert view.returncode == 0, err
    res = json.loads(out)
    lines = trace_lines(tr)
    done = [ln["counts"]["program"]["done"] for ln in lines if "program" in ln["counts"]]
    assert done == sorted(done), "the count shown never goes backwards"
    assert len({d for d in done if 0 < d < 3072}) >= 2, f"intermediate counts seen: {sorted(set(done))}"
    with h5py.File(f, "r") as h5:
        assert h5["cells"].shape[0] == 3072
    assert done[-1] == 3072 == res["counts"]["program"]["done"]
    assert res["state"] == "finished" and lines[-1]["state"] == "finished"


def test_writer_killed_mid_run(tmp_path):
    f, tr = tmp_path / "run.h5", tmp_path / "trace.jsonl"
    w = writer("infer", f, "--units", "3", "--hang")
    view = None
    try:
        assert w.stdout.readline().strip() == "hanging"
        view = snnbench("view", str(f), "--until-done", "--interval-s", "0.1", "--trace", str(tr), "--json")
        deadline = time.time() + 60
        while not trace_lines(tr) and time.time() < deadline:
            time.sleep(0.1)
        assert trace_lines(tr)[-1]["state"] == "running"
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=10)
        out, err = view.communicate(timeout=60)
    finally:
        stop(w, view)
    assert view.returncode == 0, err
    assert "Traceback" not in err
    res = json.loads(out)
    assert res["state"] == "run ended without finishing"
    assert res["counts"]["infer"]["done"] == 12      # 3 flushed units of 4 samples
    assert res["counts"]["infer"]["total"] == 12


def _program_cells(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as h5:
        return h5["cells"][()], h5["maps/readback_s"][()]


PROGRAM = ["chip", "program", "--chip", "pesim://?seed=3&fidelity=typical", "--mode", "host", "--batch", "32",
           "--json"]


def test_viewer_killed_mid_run_changes_nothing(tmp_path):
    levels = tmp_path / "L.npy"
    np.save(levels, np.random.default_rng(0).integers(0, 16, (128, 24)))
    base = run(*PROGRAM, "--levels", str(levels), "--out", str(tmp_path / "base.h5"))
    assert base.returncode == 0, base.stderr
    f, tr = tmp_path / "viewed.h5", tmp_path / "trace.jsonl"
    view = snnbench("view", str(f), "--wait", "--interval-s", "0.05", "--trace", str(tr))
    prog = None
    try:
        time.sleep(1.0)
        prog = snnbench(*PROGRAM, "--levels", str(levels), "--out", str(f))
        deadline = time.time() + 60
        while prog.poll() is None and not trace_lines(tr) and time.time() < deadline:
            time.sleep(0.02)
        view.send_signal(signal.SIGKILL)      # the viewer dies while the run goes on
        out, err = prog.communicate(timeout=120)
    finally:
        stop(view, prog)
    assert prog.returncode == 0, err
    a, b = json.loads(base.stdout), json.loads(out)
    for k in ("cells", "within_tolerance", "stuck_cells", "pulses_total", "rms_error_us", "round_trips", "bytes"):
        assert a[k] == b[k], k
    ca, ra = _program_cells(tmp_path / "base.h5")
    cb, rb = _program_cells(f)
    assert np.array_equal(ca, cb) and np.array_equal(ra, rb)


def test_live_flag_starts_a_separate_viewer(tmp_path, capsys):
    """``--live``: the command starts the viewer in its own process and finishes on its own;
    the viewer follows the command's run file; killing it is harmless."""
    from bench.cli import main
    from bench.view import live

    levels = tmp_path / "L.npy"
    np.save(levels, np.random.default_rng(0).integers(0, 16, (128, 24)))
    out = tmp_path / "live.h5"
    n0 = len(live.STARTED)
    try:
        code = main(["chip", "program", "--chip", "pesim://?seed=3", "--levels", str(levels), "--out", str(out),
                     "--live", "--json"])
        assert code == 0
        assert json.loads(capsys.readouterr().out)["cells"] == 3072
        assert len(live.STARTED) == n0 + 1
        proc = live.STARTED[-1]
        assert proc.pid != os.getpid()
        cmd = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"view" in cmd and str(out).encode() in cmd and b"--wait" in cmd
        assert proc.poll() is None, "the viewer stays open after the run"
    finally:
        for p in live.STARTED[n0:]:
            stop(p)


def test_live_without_display_is_a_usage_error(tmp_path):
    env = {k: v for k, v in ENV.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    levels = tmp_path / "L.npy"
    np.save(levels, np.zeros((128, 24), int))
    r = run(*PROGRAM, "--levels", str(levels), "--out", str(tmp_path / "x.h5"), "--live", env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no display" in r.stderr
    assert not (tmp_path / "x.h5").exists()


# --- screenshots -----------------------------------------------------------------------------------
def shot(tmp_path: Path, f: Path, *extra: str, size=(1200, 800)) -> tuple[dict, np.ndarray]:
    png = tmp_path / (f.stem + ".png")
    r = run("view", str(f), "--screenshot", str(png), "--size", f"{size[0]}x{size[1]}", "--json", *extra)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    img = np.asarray(Image.open(png).convert("RGB")).astype(float)
    assert img.shape == (size[1], size[0], 3)
    assert res["size"] == list(size)
    return res, img


def cells(img: np.ndarray, region: list[int], shape: tuple[int, int]) -> np.ndarray:
    """The colour at the centre of each of ``shape`` cells of an image region (RGB floats)."""
    x, y, w, h = region
    rows, cols = shape
    ys = (y + (np.arange(rows) + 0.5) * h / rows).astype(int)
    xs = (x + (np.arange(cols) + 0.5) * w / cols).astype(int)
    return img[ys][:, xs]


def viridis_value(rgb: np.ndarray) -> np.ndarray:
    """Invert viridis by nearest colour on a 256-entry table (pyqtgraph's own map is not used:
    the table is matplotlib's published viridis anchor colours, interpolated)."""
    anchors = np.array([[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
                        [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]], float)
    t = np.linspace(0, 1, len(anchors))
    grid = np.linspace(0, 1, 256)
    table = np.stack([np.interp(grid, t, anchors[:, k]) for k in range(3)], axis=1)
    d = ((rgb[..., None, :] - table) ** 2).sum(-1)
    return grid[d.argmin(-1)]


def test_screenshot_program_maps_show_the_targets(tmp_path):
    f = tmp_path / "prog.h5"
    W.write_program(f, units=4)
    res, img = shot(tmp_path, f)
    assert res["panels"] == ["program"] and res["state"] == "finished"
    t = W.target_map()
    for name in ("program.target", "program.measured"):
        v = viridis_value(cells(img, res["regions"][name], t.shape))
        ok = ~W.stuck_cells() if name.endswith("measured") else np.ones(t.shape, bool)
        corr = np.corrcoef(v[ok], t[ok])[0, 1]
        assert corr > 0.95, (name, corr)
        # absolute scale: 0..150 uS on the colour bar
        assert np.median(np.abs(v[ok] * 150e-6 - t[ok])) < 8e-6


def test_screenshot_program_mid_run_greys_unmeasured_cells(tmp_path):
    f = tmp_path / "prog.h5"
    W.write_program(f, units=4)
    with h5py.File(f, "a") as h5:          # pretend the run stopped after 2 of 4 units
        log = h5["_commits"]
        h5.attrs["committed"] = 4
        h5.attrs["complete"] = False
        h5.attrs["utc_end"] = ""
        h5.attrs["writer_pid"] = 0
        assert log.shape[0] > 4
    res, img = shot(tmp_path, f)
    assert res["counts"]["program"]["done"] == 1536
    c = cells(img, res["regions"]["program.measured"], (128, 24))
    grey = (np.abs(c - 200).max(-1) < 12)
    done = np.zeros(128 * 24, bool)
    done[:1536] = True
    done = done.reshape(128, 24)
    assert grey[~done].mean() > 0.97 and grey[done].mean() < 0.03


def test_screenshot_inference(tmp_path):
    f = tmp_path / "inf.h5"
    W.write_infer(f, units=2, per_unit=5)
    data = W.infer_data(10)
    res, img = shot(tmp_path, f)
    assert res["panels"] == ["infer"]
    x, y, w, h = res["regions"]["infer.input"]
    dark = (img[y:y + h, x:x + w].mean(-1) < 128)
    # the density of dark pixels per band of inputs follows the spike rate of the latest sample
    bands = 20
    rate = data["x"][-1].reshape(300, bands, -1).mean(axis=(0, 2))
    # the input axis points up: input 0 is the bottom pixel row
    seen = np.array([b.mean() for b in np.array_split(dark[::-1], bands, axis=0)])
    assert np.corrcoef(rate, seen)[0, 1] > 0.9
    assert seen[-1] > 3 * seen[0]
    # output raster: the predicted class's row holds the spikes
    c = cells(img, res["regions"]["infer.output"], (11, 300))[::-1]   # class 0 at the bottom
    red = (c[..., 0] > 150) & (c[..., 1] < 100)
    assert red[data["pred"][-1]].sum() >= 30 and red.sum() - red[data["pred"][-1]].sum() <= 5


def test_screenshot_power(tmp_path):
    f = tmp_path / "pw.h5"
    W.write_power(f, units=3)
    res, img = shot(tmp_path, f)
    assert res["panels"] == ["power"]
    assert res["counts"]["power"]["energy_per_sample_j"] == pytest.approx(W.expected_energy_per_sample(), rel=1e-9)
    # each rail's pen colour is drawn (the panel's rail colours, one trace per rail)
    from bench.view.panels import RAIL_PENS

    for pen in RAIL_PENS[:3]:
        hit = (np.abs(img - np.array(pen, float)).max(-1) < 30).sum()
        assert hit > 200, pen


def test_screenshot_campaign_grid_colours(tmp_path):
    f = tmp_path / "camp.h5"
    W.write_campaign(f)
    res, img = shot(tmp_path, f, "--axis", "v_read", "--column", "accuracy")
    assert res["panels"] == ["campaign"]
    c = cells(img, res["regions"]["campaign.grid"], (4, 3)).reshape(12, 3)
    want = {-1: (205, 205, 205), 0: (60, 170, 75), 1: (215, 50, 50), 2: (235, 190, 40)}
    for i, s in enumerate(W.campaign_status()):
        assert np.abs(c[i] - want[s]).max() < 20, (i, s, c[i])


REPLAY_UNITS, REPLAY_UNIT_S = 8, 0.5
"""The recording replayed: 8 commits 0.5 s apart (4 s; was 8 x 1.0 s, all of it idle wait)."""


def test_replay_plays_at_k_times_the_recorded_pace(tmp_path):
    """Kills replay ignoring --speed's pacing (everything at once) or applying it twice (4x):
    the last commit may not show before 0.8 x recorded / k."""
    f, tr = tmp_path / "run.h5", tmp_path / "trace.jsonl"
    w = writer("program", f, "--units", str(REPLAY_UNITS), "--sleep", str(REPLAY_UNIT_S))
    assert w.wait(timeout=60) == 0
    t0 = time.monotonic()
    r = run("view", str(f), "--replay", "--speed", "2", "--until-done", "--interval-s", "0.05",
            "--trace", str(tr), "--json", "--nice", "0")
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    done = [ln["counts"].get("program", {}).get("done", 0) for ln in trace_lines(tr)]
    assert done == sorted(done) and done[-1] == 3072
    assert len(set(done)) >= 4
    t_done = [ln["t"] for ln in trace_lines(tr) if ln["counts"].get("program", {}).get("done") == 3072][0]
    # 8 x 0.5 s recorded, played at 2x: not before ~2 s (the upper bound only guards a hang:
    # a loaded machine delays a viewer at nice 10)
    recorded_s = REPLAY_UNITS * REPLAY_UNIT_S
    assert recorded_s / 2 * 0.8 < t_done < recorded_s / 2 + 20.0, (t_done, wall)


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["text", "hdf5", "model", "missing", "nodisplay", "speed"])
def test_bad_input_one_line_exit_2(tmp_path, case):
    env = ENV
    args: list[str]
    good = tmp_path / "good.h5"
    W.write_program(good, units=1)
    if case == "text":
        p = tmp_path / "notes.h5"
        p.write_text("not hdf5 at all\n")
        args, msg = [str(p), "--screenshot", str(tmp_path / "x.png")], "not an HDF5 file"
    elif case == "hdf5":
        p = tmp_path / "plain.h5"
        with h5py.File(p, "w") as h5:
            h5["x"] = np.arange(3)
        os.utime(p, (time.time() - 60, time.time() - 60))
        args, msg = [str(p), "--screenshot", str(tmp_path / "x.png")], "not a snnbench run or campaign file"
    elif case == "model":
        args, msg = [str(Path(ROOT) / "bench/models/reference.h5"), "--screenshot", str(tmp_path / "x.png")], \
            "not a snnbench run or campaign file"
    elif case == "missing":
        args, msg = [str(tmp_path / "nope.h5"), "--screenshot", str(tmp_path / "x.png")], "use --wait"
    elif case == "nodisplay":
        env = {k: v for k, v in ENV.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
        args, msg = [str(good)], "no display"
    else:
        args, msg = [str(good), "--replay", "--speed", "0"], "--speed"
    r = run("view", *args, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "x.png").exists()


def test_at_commit_shows_the_file_as_it_was(tmp_path):
    f = tmp_path / "prog.h5"
    W.write_program(f, units=4)      # commits: open, targets, 4 units, close
    res, _ = shot(tmp_path, f, "--at-commit", "4")
    assert res["counts"]["program"]["done"] == 1536
    assert res["state"] == "running" and res["detail"] == "as at commit 4"
    r = run("view", str(f), "--at-commit", "0", "--screenshot", str(tmp_path / "y.png"))
    assert r.returncode == 2 and "--at-commit" in r.stderr


CAMPAIGN_PLAN = """
[campaign]
name = "viewed"
seed = 5

[setup]
fidelity = "ideal"

[[step]]
procedure = "read"
averages = 2

[[axis]]
param = "read.v_read_v"
values = [0.1, 0.2, 0.3]

[[axis]]
param = "setup.chip_seed"
values = [1, 2]
"""


def test_campaign_run_live_and_real_campaign_file(tmp_path, capsys):
    """A campaign written by ``snnbench campaign run --live``: the command starts the viewer
    on its file, and the viewer's reading of the file agrees with the campaign package's own
    reader (bench.campaign.store.read_table, a separate implementation of the layout)."""
    from bench.campaign.store import read_table
    from bench.cli import main
    from bench.view import live
    from bench.view.model import read_snapshot

    plan = tmp_path / "plan.toml"
    plan.write_text(CAMPAIGN_PLAN)
    out = tmp_path / "camp.h5"
    n0 = len(live.STARTED)
    try:
        code = main(["campaign", "run", str(plan), "--out", str(out), "--workers", "0", "--live"])
        capsys.readouterr()
        assert code == 0
        assert len(live.STARTED) == n0 + 1
        cmd = Path(f"/proc/{live.STARTED[-1].pid}/cmdline").read_bytes().split(b"\0")
        assert b"view" in cmd and str(out).encode() in cmd
    finally:
        for p in live.STARTED[n0:]:
            stop(p)
    cols, attrs = read_table(out)
    s = read_snapshot(out)
    c = s.campaign
    assert s.state == "finished" and c.n_points == 6 and c.grid2d().shape == (3, 2)
    assert c.counts["done"] == int(np.sum(cols["status"] == 0)) and c.counts["pending"] == 0
    assert [a["name"] for a in c.axes] == [a["name"] for a in json.loads(attrs["axes"])]
    col = c.result_columns[0]
    x, y = c.series(c.axes[0]["name"], col)
    ok = cols["status"] == 0
    assert np.allclose(np.sort(y), np.sort(np.asarray(cols[col], float)[ok][np.isfinite(cols[col][ok])]))
    res, img = shot(tmp_path, out)
    assert res["panels"] == ["campaign"] and res["counts"]["campaign"]["done"] == c.counts["done"]
