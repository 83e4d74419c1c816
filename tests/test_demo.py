"""The main job end to end on the simulated bench (issue 8)."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.demo import REFERENCE_MODEL
from tests.strict_json import loads_strict

pytestmark = pytest.mark.skipif(not REFERENCE_MODEL.exists(), reason="reference model not shipped")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    p = subprocess.run([sys.executable, "-m", "bench", "demo", "--quick", "--json", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    return out, loads_strict(p.stdout)


def test_json_keys(demo_run):
    _, d = demo_run
    for key in ("run_file", "report", "within_tolerance", "accuracy", "software_accuracy", "drop_points",
                "average_power_w", "energy_per_sample_j", "latency_s", "tsops_per_w"):
        assert key in d, key
    assert d["within_tolerance"] >= 0.99
    assert d["latency_s"] == pytest.approx(44.31e-6, rel=1e-6)
    # issue 14: power measured during the accuracy pass (on the board's trigger) agrees with the
    # replay of the same chip-layer inputs
    assert d["in_pass_energy_per_sample_j"] > 0
    assert d["in_pass_vs_replay"] == pytest.approx(1.0, abs=0.02)
    # published (DESIGN.md section 2): 43.83 mW average incl. I/O, 1.94 uJ per sample; the model
    # is calibrated on statistics of this very layer, so the demo lands within a few percent
    assert d["average_power_w"] == pytest.approx(43.83e-3, rel=0.05)
    assert d["energy_per_sample_j"] == pytest.approx(1.94e-6, rel=0.05)
    # software accuracy at least the paper's software figure (98.26 %, real data; the synthetic
    # set is easier), and the chip no further below it than the paper's 5.2-point drop
    assert d["software_accuracy"] >= 0.9826
    assert d["accuracy"] >= d["software_accuracy"] - 0.052


def test_run_file_holds_everything(demo_run):
    out, d = demo_run
    with h5py.File(d["run_file"], "r") as f:
        for name in ("program/targets_s", "program/g_s", "program/readback_s", "program/pulses",
                     "program/stuck", "infer/labels", "infer/pred_chip", "infer/pred_software",
                     "infer/in_spikes_packed", "infer/out_spikes", "infer/confusion_chip"):
            assert name in f, name
        assert f["program/targets_s"].attrs["units"] == "S"
        assert f["infer/confusion_chip"][:].sum() == f["infer/labels"].shape[0]
        traces = []
        f["power"].visit(lambda n: traces.append(n) if n.endswith("current_a") else None)
        assert traces, "no power traces"
        summary = json.loads(f.attrs["summary"])
        assert summary["accuracy"] == d["accuracy"]
        assert f.attrs["complete"] and f.attrs["chip_info"] and f.attrs["seeds"]


def _png(path):
    """Decode an 8-bit RGB/RGBA PNG to an (h, w, 3) array with zlib only: the test reads the
    pixels independently of the Qt that wrote them (and without Qt in the test process)."""
    import struct
    import zlib

    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(w * bpp, np.int32)
        if f in (0, 2):
            out[y] = (line + (prev if f == 2 else 0)) & 0xFF
        else:  # 1 sub, 3 average, 4 paeth: sequential in x
            row = out[y]
            for x in range(w * bpp):
                left = row[x - bpp] if x >= bpp else 0
                up, ul = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if f == 1:
                    pred = left
                elif f == 3:
                    pred = (left + up) // 2
                else:
                    p_ = left + up - ul
                    pa, pb, pc = abs(p_ - left), abs(p_ - up), abs(p_ - ul)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                row[x] = (line[x] + pred) & 0xFF
    return out.reshape(h, w, bpp)[..., :3].astype(np.uint8)


def test_report_figures_show_what_they_say(demo_run):
    out, d = demo_run
    figs = {Path(p).stem: Path(p) for p in d["figures"]}
    assert {"conductance_map", "programming", "rasters", "power", "confusion"} <= figs.keys()
    for p in figs.values():
        a = _png(p)
        assert a.std() > 5, f"{p} is blank"
    # the error panel of the conductance map is not uniform where programming failed
    with h5py.File(d["run_file"], "r") as f:
        err = np.abs(f["program/readback_s"][:] - f["program/targets_s"][:])
    a = _png(figs["conductance_map"]).astype(int)
    right = a[:, 2 * a.shape[1] // 3:]
    reds = np.sum((right[..., 0] > 150) & (right[..., 1] < 80) & (right[..., 2] < 80))
    blues = np.sum((right[..., 2] > 150) & (right[..., 0] < 80) & (right[..., 1] < 80))
    big = int(np.sum(err > 10e-6))
    assert (reds + blues > 0) == (big > 0)
    html = Path(d["report"]).read_text()
    assert "chip accuracy" in html and "conductance_map.png" in html


def test_demo_reports_the_error_budget_and_what_training_buys(demo_run):
    """Issue 15: the demo's run file and report carry the error budget (every row) and, with the
    shipped gesture models, software / chip without hw-aware / with hw-aware / after fine-tuning."""
    from bench.budget import EFFECTS
    from bench.training_gain import shipped_models

    out, d = demo_run
    eb = d["error_budget"]
    assert set(eb["rows"]) == {"quantisation", "residual"} | {e.key for e in EFFECTS}
    figs = {Path(p).stem for p in d["figures"]}
    assert "error_budget" in figs
    html = Path(d["report"]).read_text()
    assert "Error budget" in html and "all together (typical)" in html
    with h5py.File(d["run_file"], "r") as f:
        b = json.loads(f["budget"].attrs["budget_json"])
    assert b["samples"] == d["samples"] and b["all"]["drop_points"] == eb["all_points"]
    shipped = [k for k, _, _ in shipped_models()]
    if shipped:
        assert list(d["training"]) == shipped and "training_gain" in figs
        assert "What training buys" in html
        for k in shipped:
            assert 0.0 <= d["training"][k]["chip_accuracy"] <= 1.0


def test_unwritable_out_fails_before_work(tmp_path):
    (tmp_path / "file").write_text("x")
    p = subprocess.run([sys.executable, "-m", "bench", "demo", "--quick", "--out", str(tmp_path / "file" / "x")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unreachable_station_fails_before_work(tmp_path):
    st = tmp_path / "lab.toml"
    st.write_text("[chip]\nurl = 'socket://127.0.0.1:1'\n")
    p = subprocess.run([sys.executable, "-m", "bench", "demo", "--quick", "--station", str(st),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "cannot open chip link" in p.stderr
    assert not (tmp_path / "out" / "demo.h5").exists()
