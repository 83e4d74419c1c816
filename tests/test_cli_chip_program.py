"""``snnbench chip program`` / ``chip read`` (issue 4)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import bench.session
from bench.cli import main
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
    assert np.array_equal(np.unique(t), np.setdiff1d(np.arange(3072), kept))   # kept cells untouched
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
            try:
                with h5py.File(out, "r", locking=False) as h5:
                    n = h5["cells"].shape[0] if "cells" in h5 else 0
            except (OSError, KeyError):
                n = 0
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
