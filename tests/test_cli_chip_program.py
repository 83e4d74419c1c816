"""``snnbench chip program`` / ``chip read`` (issue 4)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import bench.session
from bench.cli import main
from tests import h5peek
from drivers.pechip import PEChip

CHIP = "pesim://?seed=3&fidelity=typical"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def levels(tmp_path):
    p = tmp_path / "L.npy"
    np.save(p, np.random.default_rng(0).integers(0, 16, (128, 24)))
    return p


@pytest.fixture
def no_link(monkeypatch):
    """Fail the test if the command opens the link."""
    def boom(*a, **k):
        raise AssertionError("the link was opened")
    monkeypatch.setattr(bench.session, "open_bench", boom)
    monkeypatch.setattr(PEChip, "__init__", boom)


def test_program_levels_json_and_run_file(capsys, tmp_path, levels):
    out = tmp_path / "run.h5"
    code, so, _ = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--out", str(out), "--json")
    assert code == 0
    d = json.loads(so)
    for k in ("cells", "within_tolerance", "stuck_cells", "pulses_median", "pulses_p95", "rms_error_us",
              "round_trips", "bytes", "modelled_seconds", "host_seconds"):
        assert k in d
    assert d["cells"] == 3072 and d["within_tolerance"] >= 0.99 and d["stuck_cells"] > 0
    assert d["modelled_seconds"] < 30
    with h5py.File(out, "r") as h5:
        assert h5.attrs["kind"] == "chip_program" and h5.attrs["complete"]
        assert h5["cells"].shape == (3072,)
        assert h5["maps/readback_s"].shape == (128, 24)
        assert h5["maps/target_s"].attrs["units"] == "S"
        assert "scale_s" in h5["mapping"].attrs
        assert "traces" not in h5                    # off by default
        assert int(h5["maps/stuck"][()].sum()) == d["stuck_cells"]


def test_program_weights_host_with_traces(capsys, tmp_path):
    w = tmp_path / "W.npy"
    np.save(w, np.random.default_rng(1).normal(0, 1, (120, 11)))
    out = tmp_path / "w.h5"
    code, so, _ = run(capsys, "chip", "program", "--chip", CHIP, "--weights", str(w), "--mode", "host",
                      "--traces", "--out", str(out), "--json")
    assert code == 0
    d = json.loads(so)
    assert d["mode"] == "host" and d["within_tolerance"] >= 0.99
    with h5py.File(out, "r") as h5:
        assert h5["traces"].shape[0] > 3072
        assert h5["mapping/effective_weights"].shape == (120, 11)
        scale = h5["mapping"].attrs["scale_s"]
        assert scale == pytest.approx(d["scale_s"])
        eff = h5["mapping/effective_weights"][()]
        q = h5["mapping/quantised_weights"][()]
        assert np.median(np.abs(eff - q)) < 0.1


def _bad(tmp_path, name, arr):
    p = tmp_path / name
    np.save(p, arr)
    return str(p)


@pytest.mark.parametrize("case", ["shape", "nan", "inf", "level_high", "level_neg", "weights_shape",
                                  "weights_nan", "tol0", "tolneg", "set_max", "wl", "missing", "unwritable",
                                  "not_npy", "max_pulses", "out_is_dir"])
def test_program_bad_input_exit2_nothing_sent(capsys, tmp_path, levels, no_link, case):
    lv = np.random.default_rng(0).integers(0, 16, (128, 24))
    out = tmp_path / "out.h5"
    args = ["chip", "program", "--chip", CHIP, "--out", str(out)]
    src = ["--levels", str(levels)]
    extra: list[str] = []
    if case == "shape":
        src = ["--levels", _bad(tmp_path, "s.npy", lv[:, :20])]
    elif case == "nan":
        src = ["--levels", _bad(tmp_path, "n.npy", np.where(lv == 3, np.nan, lv))]
    elif case == "inf":
        src = ["--levels", _bad(tmp_path, "i.npy", np.where(lv == 3, np.inf, lv))]
    elif case == "level_high":
        src = ["--levels", _bad(tmp_path, "h.npy", np.where(lv == 3, 16, lv))]
    elif case == "level_neg":
        src = ["--levels", _bad(tmp_path, "g.npy", np.where(lv == 3, -1, lv))]
    elif case == "weights_shape":
        src = ["--weights", _bad(tmp_path, "w.npy", np.ones((129, 11)))]
    elif case == "weights_nan":
        src = ["--weights", _bad(tmp_path, "w.npy", np.full((10, 3), np.nan))]
    elif case == "tol0":
        extra = ["--tolerance-us", "0"]
    elif case == "tolneg":
        extra = ["--tolerance-us", "-1"]
    elif case == "set_max":
        extra = ["--set-max-v", "4.5"]
    elif case == "wl":
        extra = ["--reset-wl-v", "3.6"]
    elif case == "max_pulses":
        extra = ["--max-pulses", "5000"]
    elif case == "missing":
        src = ["--levels", str(tmp_path / "nope.npy")]
    elif case == "not_npy":
        p = tmp_path / "x.npy"
        p.write_text("hello")
        src = ["--levels", str(p)]
    elif case == "unwritable":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "out.h5"                 # parent is a file: cannot be created
        args = ["chip", "program", "--chip", CHIP, "--out", str(out)]
    elif case == "out_is_dir":
        out = tmp_path
        args = ["chip", "program", "--chip", CHIP, "--out", str(out)]
    code, so, err = run(capsys, *args, *src, *extra, "--json")
    assert code == 2, err
    assert err.startswith("snnbench: error:") and err.count("\n") == 1
    assert so == ""
    assert case == "out_is_dir" or not out.exists()
    assert not list(tmp_path.glob("*.h5"))


def test_program_interrupt_then_resume(capsys, tmp_path, levels, monkeypatch):
    out = tmp_path / "run.h5"
    calls = {"n": 0}
    orig = PEChip.write_verify

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:            # during the 2nd batch (probe + main per batch)
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(PEChip, "write_verify", flaky)
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--batch", "512",
                        "--out", str(out), "--json")
    assert code == 130
    with h5py.File(out, "r") as h5:            # readable, cells done so far
        assert not h5.attrs["complete"]
        done = h5["cells"]["index"][()]
        assert done.size == 512
        inflight = h5["journal/inflight"][()]   # the 2nd batch, journalled before it was sent
        assert inflight.size == 512 and not np.isin(inflight, done).any()
    monkeypatch.setattr(PEChip, "write_verify", orig)
    touched = []

    def spy(self, rows, cols, *a, **k):
        touched.append(np.asarray(rows) * 24 + np.asarray(cols))
        return orig(self, rows, cols, *a, **k)

    monkeypatch.setattr(PEChip, "write_verify", spy)
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--batch", "512",
                        "--resume", "--out", str(out), "--json")
    assert code == 0, err
    d = json.loads(so)
    assert d["resumed_cells"] == 512 and d["cells"] == 3072
    # Each run opens a fresh virtual chip: the cells "done" in the first session are not
    # programmed any more.  Resume must read them back and redo them, not trust the records.
    t = np.concatenate(touched)
    requeued = np.intersect1d(t, done)
    assert d["requeued_cells"] == requeued.size > 400
    kept = np.setdiff1d(done, requeued)
    # kept cells untouched; so are the in-flight cells that read within tolerance (issue 16)
    untouched = np.setdiff1d(np.arange(3072), np.unique(t))
    assert np.isin(kept, untouched).all() and np.isin(np.setdiff1d(untouched, kept), inflight).all()
    assert untouched.size - kept.size == d["recovered_inflight_cells"]
    assert d["within_tolerance"] >= 0.99
    assert d["success"] + d["stuck_cells"] + d["failed_cells"] == 3072
    with h5py.File(out, "r") as h5:
        idx = h5["cells"]["index"][()]
        assert idx.size == 3072 and np.unique(idx).size == 3072   # one (current) record per cell
        assert h5.attrs["complete"]
        assert h5["summary"].attrs["requeued_cells"] == requeued.size
        # the reported successes agree with the read-back after programming
        rb = h5["maps/readback_s"][()].ravel()
        tg = h5["maps/target_s"][()].ravel()
        ok = h5["maps/success"][()].ravel()
        assert np.mean(np.abs(rb - tg)[ok] <= 5e-6) >= 0.99


def test_resume_refuses_different_targets(capsys, tmp_path, levels, no_link):
    out = tmp_path / "run.h5"
    with h5py.File(out, "w") as h5:
        h5.attrs["kind"] = "chip_program"
        h5["targets/target_s"] = np.zeros(3072)
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--resume",
                        "--out", str(out))
    assert code == 2 and "different targets" in err


def test_program_sigint_subprocess_then_resume(capsys, tmp_path, levels):
    out = tmp_path / "run.h5"
    cmd = [sys.executable, "-m", "bench", "chip", "program", "--chip", CHIP, "--levels", str(levels),
           "--mode", "host", "--batch", "256", "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline and proc.poll() is None:
            n = h5peek.rows(out, "cells")
            if n >= 256:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0:
        pytest.skip("programming finished before the interrupt arrived")
    assert proc.returncode == 130, err
    with h5py.File(out, "r") as h5:
        done = h5["cells"]["index"][()]
        assert not h5.attrs["complete"]
    assert 0 < done.size < 3072 and done.size % 256 == 0
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--mode", "host",
                        "--batch", "256", "--resume", "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(so)["resumed_cells"] == done.size
    with h5py.File(out, "r") as h5:
        idx = h5["cells"]["index"][()]
        assert np.unique(idx).size == idx.size == 3072


def test_read_json_and_file(capsys, tmp_path):
    out = tmp_path / "read.h5"
    code, so, err = run(capsys, "chip", "read", "--chip", CHIP, "--repeats", "4", "--wait-s", "10",
                        "--out", str(out), "--json")
    assert code == 0, err
    d = json.loads(so)
    assert d["cells"] == 3072 and d["repeats"] == 4 and "mean_us" in d and d["std_us"] > 0
    assert d["retention"][0]["elapsed_s"] == pytest.approx(10)
    with h5py.File(out, "r") as h5:
        assert h5["maps/g_s"].shape == (4, 128, 24)
        assert h5["retention/g_s"].shape == (2, 128, 24)
        assert h5.attrs["complete"]


@pytest.mark.parametrize("extra", [["--repeats", "0"], ["--averages", "0"], ["--v-read", "0.9"],
                                   ["--wait-s", "-1"]])
def test_read_bad_input(capsys, tmp_path, no_link, extra):
    out = tmp_path / "r.h5"
    code, so, err = run(capsys, "chip", "read", "--chip", CHIP, *extra, "--out", str(out))
    assert code == 2 and not out.exists()


def test_program_weights_routed_around_bad_cells(capsys, tmp_path, levels):
    first = tmp_path / "first.h5"
    assert run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--out", str(first), "--json")[0] == 0
    w = tmp_path / "W.npy"
    np.save(w, np.random.default_rng(5).normal(0, 1, (128, 12)))
    out = tmp_path / "w.h5"
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--weights", str(w), "--bad-cells", str(first),
                        "--out", str(out), "--json")
    assert code == 0, err
    with h5py.File(out, "r") as h5, h5py.File(first, "r") as h0:
        n_stuck = int(h0["maps/stuck"][()].sum())
        assert 0 < h5["mapping"].attrs["rerouted_pairs"] <= n_stuck
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--bad-cells", str(first),
                        "--out", str(tmp_path / "x.h5"))
    assert code == 2


# --- QA regressions ----------------------------------------------------------------------------
LAB_LIMITS = """
[limits]
v_set_max_v = 3.5
v_reset_max_v = 3.5
v_wl_max_v = 3.0
v_read_max_v = 0.3
v_spike_max_v = 0.3
pulse_width_min_s = 100e-9
pulse_width_max_s = 10e-6
"""


@pytest.fixture
def lab(tmp_path):
    """The limits of bench/stations/lab_example.toml on the virtual chip."""
    p = tmp_path / "lab.toml"
    p.write_text(f'[chip]\nurl = "{CHIP}"\n' + LAB_LIMITS)
    return str(p)


def test_program_default_schedule_fits_station(capsys, tmp_path, levels, lab):
    """B: no override flags needed on a station with lower limits; the capping is recorded."""
    out = tmp_path / "lab.h5"
    code, so, err = run(capsys, "--station", lab, "chip", "program", "--levels", str(levels),
                        "--out", str(out), "--json")
    assert code == 0, err
    d = json.loads(so)
    assert d["within_tolerance"] >= 0.99
    assert d["schedule_station_capped"]["set_max_v"] == {"default": 4.0, "value": 3.5, "limit": "v_set_max_v"}
    with h5py.File(out, "r") as h5:
        a = h5["schedule"].attrs
        assert (a["set_max_v"], a["reset_max_v"], a["reset_wl_v"]) == (3.5, 3.5, 3.0)
        capped = json.loads(a["station_capped"])
        assert set(capped) == {"set_max_v", "reset_max_v", "reset_wl_v"}


@pytest.mark.parametrize("extra,needle", [
    (["--set-max-v", "3.6"], "v_set_max_v"),                 # explicit override beyond a limit
    (["--reset-wl-v", "3.1"], "v_wl_max_v"),
    (["--set-start-v", "3.6"], "set_start_v = 3.6 V > set_max_v = 3.5 V"),
    (["--reset-start-v", "2.0", "--reset-max-v", "1.5"], "reset_start_v = 2 V > reset_max_v = 1.5 V"),
])
def test_program_schedule_overrides_checked_before_work(capsys, tmp_path, levels, lab, no_link, extra, needle):
    out = tmp_path / "o.h5"
    code, so, err = run(capsys, "--station", lab, "chip", "program", "--levels", str(levels),
                        "--out", str(out), *extra)
    assert code == 2 and needle in err and err.count("\n") == 1
    assert not out.exists()


def test_program_start_voltage_flags(capsys, tmp_path, levels):
    out = tmp_path / "s.h5"
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--set-start-v", "1.5",
                        "--reset-start-v", "1.4", "--out", str(out), "--json")
    assert code == 0, err
    with h5py.File(out, "r") as h5:
        assert h5["schedule"].attrs["set_start_v"] == 1.5 and h5["schedule"].attrs["reset_start_v"] == 1.4


def test_program_refuses_to_overwrite_without_force(capsys, tmp_path, levels, monkeypatch):
    """G: an existing file (here: a chip read run) is not overwritten unless --force."""
    out = tmp_path / "other.h5"
    with h5py.File(out, "w") as h5:
        h5.attrs["kind"] = "chip_read"
        h5["maps/g_s"] = np.zeros((1, 128, 24))
    before = out.read_bytes()

    def boom(*a, **k):
        raise AssertionError("the link was opened")
    with monkeypatch.context() as m:
        m.setattr(bench.session, "open_bench", boom)
        code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--out", str(out))
    assert code == 2 and str(out) in err and "--force" in err
    assert out.read_bytes() == before
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--out", str(out),
                        "--force", "--json")
    assert code == 0, err
    with h5py.File(out, "r") as h5:
        assert h5.attrs["kind"] == "chip_program" and h5.attrs["complete"]


def test_program_out_probe_file_before_work(capsys, tmp_path, levels, no_link, monkeypatch):
    """F: the early check really creates (and removes) a file in the target directory."""
    import bench.commands.chip_program as CP
    made = []
    real = CP.tempfile.mkstemp

    def spy(*a, **k):
        fd, name = real(*a, **k)
        made.append(name)
        return fd, name
    monkeypatch.setattr(CP.tempfile, "mkstemp", spy)
    with pytest.raises(AssertionError, match="link was opened"):
        main(["chip", "program", "--chip", CHIP, "--levels", str(levels), "--out", str(tmp_path / "sub" / "o.h5")])
    assert len(made) == 1 and made[0].startswith(str(tmp_path)) and not Path(made[0]).exists()

    def refuse(*a, **k):
        raise PermissionError(30, "Read-only file system")
    monkeypatch.setattr(CP.tempfile, "mkstemp", refuse)
    out = tmp_path / "ro.h5"
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--levels", str(levels), "--out", str(out))
    assert code == 2 and "Read-only file system" in err and err.count("\n") == 1 and not out.exists()


def test_program_not_npy_message(capsys, tmp_path, no_link):
    p = tmp_path / "w.npy"
    p.write_text("1,2,3\n")
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--weights", str(p), "--out", str(tmp_path / "o.h5"))
    assert code == 2 and "not a .npy file" in err and "pickled" not in err
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, so, err = run(capsys, "chip", "program", "--chip", CHIP, "--weights", str(obj), "--out", str(tmp_path / "o.h5"))
    assert code == 2 and "pickled (object)" in err


@pytest.mark.parametrize("wait", ["1e30", "2e7", "inf", "nan"])
def test_read_wait_bounded_before_work(capsys, tmp_path, no_link, wait):
    """C: an out-of-range --wait-s is a one-line usage error; no run file."""
    out = tmp_path / "r.h5"
    code, so, err = run(capsys, "chip", "read", "--chip", CHIP, "--wait-s", "1", wait, "--out", str(out))
    assert code == 2 and "--wait-s" in err and err.count("\n") == 1 and not out.exists()


def test_read_single_repeat_reports_null_noise(capsys, tmp_path):
    """D: std_us / read_noise_rel_median cannot be measured from one read: null."""
    out = tmp_path / "r1.h5"
    code, so, err = run(capsys, "chip", "read", "--chip", CHIP, "--repeats", "1", "--out", str(out), "--json")
    assert code == 0, err
    d = json.loads(so)
    assert d["std_us"] is None and d["read_noise_rel_median"] is None and d["mean_us"] > 0
    with h5py.File(out, "r") as h5:
        assert np.isnan(h5["summary"].attrs["std_us"]) and np.isnan(h5["maps/std_s"][()]).all()


def test_read_refuses_to_overwrite_without_force(capsys, tmp_path):
    out = tmp_path / "read.h5"
    out.write_bytes(b"an earlier run")
    code, so, se = run(capsys, "chip", "read", "--chip", CHIP, "--out", str(out), "--json")
    assert code == 2 and "--force" in se and out.read_bytes() == b"an earlier run"
    code, so, se = run(capsys, "chip", "read", "--chip", CHIP, "--out", str(out), "--force", "--json")
    assert code == 0 and json.loads(so)["cells"] == 3072
