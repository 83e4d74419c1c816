"""Campaign runs end to end: failing points, status, export, JSON lines, the shipped plans and
the time-scaling invariance (issue 11, Must holds 4 and 5)."""
from __future__ import annotations

import csv
import json
import math
import re
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.campaign.plan import load_plan
from bench.campaign.store import read_table
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "campaigns").glob("*.toml"))

FAILING = """
[campaign]
name = "faults"
seed = 4
on_error = "{on_error}"

[[step]]
procedure = "reg_write"
register = "V_READ"
value = 0.25

[[step]]
procedure = "reg_read"
register = "V_READ"

[[axis]]
param = "setup.link_drop"      # fault injection: the simulated link drops 99 % of frames
values = [0.0, 0.99, 0.0, 0.0]
"""


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _plan(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_failing_point_is_recorded_and_the_rest_complete(tmp_path, capsys):
    plan, out = _plan(tmp_path, FAILING.format(on_error="continue")), tmp_path / "c.h5"
    code, stdout, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0", "--json")
    assert code == 0, err
    lines = [json.loads(x) for x in stdout.splitlines()]      # strict JSON, one object per line
    points, summary = lines[:-1], lines[-1]
    assert [p["event"] for p in points] == ["point"] * 4 and summary["event"] == "summary"
    assert [p["status"] for p in sorted(points, key=lambda p: p["index"])] == ["ok", "failed", "ok", "ok"]
    assert (summary["done"], summary["failed"], summary["pending"]) == (3, 1, 0)
    cols, attrs = read_table(out)
    bad = int(np.flatnonzero(cols["index"] == 1)[0])
    assert cols["status"][bad] == 1
    assert cols["error"][bad].startswith("ChipTimeout: ") and "no reply" in cols["error"][bad]
    assert math.isnan(cols["reg_read.value"][bad])
    for i in np.flatnonzero(cols["index"] != 1):
        assert cols["status"][i] == 0 and cols["error"][i] == ""
        assert cols["reg_read.value"][i] == pytest.approx(0.25)          # the register really was set
    with h5py.File(out, "r") as f:
        assert f["points/000001"].attrs["status"] == 1
        assert "no reply" in f["points/000001"].attrs["error"]
    code, stdout, _ = _run(capsys, "campaign", "status", str(out), "--json")
    st = json.loads(stdout)
    assert code == 0 and (st["done"], st["failed"], st["pending"], st["n_points"]) == (3, 1, 0, 4)
    assert st["errors"][0]["index"] == 1 and "no reply" in st["errors"][0]["error"]
    code, stdout, _ = _run(capsys, "campaign", "status", str(out))
    assert "3 done, 1 failed, 0 pending of 4" in stdout and "point 1:" in stdout


def test_on_error_stop_stops_the_campaign(tmp_path, capsys):
    plan, out = _plan(tmp_path, FAILING.format(on_error="stop")), tmp_path / "c.h5"
    code, stdout, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0", "--json")
    summary = json.loads(stdout.splitlines()[-1])
    assert code == 1 and summary["state"] == "failed" and "point 1 failed" in summary["reason"]
    assert (summary["done"], summary["failed"], summary["pending"]) == (1, 1, 2)
    with h5py.File(out, "r") as f:
        assert f.attrs["state"] == "failed" and int(f.attrs["committed"]) == 2


def test_export_csv_matches_the_table(tmp_path, capsys):
    plan, out = _plan(tmp_path, FAILING.format(on_error="continue")), tmp_path / "c.h5"
    assert _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")[0] == 0
    dest = tmp_path / "t.csv"
    code, stdout, err = _run(capsys, "campaign", "export", str(out), "--csv", str(dest), "--json")
    assert code == 0, err and json.loads(stdout)["rows"] == 4
    rows = list(csv.DictReader(dest.open()))
    assert list(rows[0]) == ["index", "setup.link_drop", "status", "reg_write.in_force", "reg_read.value",
                             "wall_s", "error"]
    by = {int(r["index"]): r for r in rows}
    assert by[1]["status"] == "failed" and by[1]["reg_read.value"] == "" and "no reply" in by[1]["error"]
    assert float(by[0]["reg_read.value"]) == pytest.approx(0.25) and by[0]["setup.link_drop"] == "0.0"
    assert float(by[1]["setup.link_drop"]) == 0.99
    code, _, err = _run(capsys, "campaign", "export", str(out), "--csv", str(dest))
    assert code == 2 and "exists" in err                                     # no silent overwrite


def test_status_of_a_non_campaign_file(tmp_path, capsys):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.attrs["kind"] = "infer"
    code, _, err = _run(capsys, "campaign", "status", str(p))
    assert code == 2 and "not a campaign file" in err
    code, _, err = _run(capsys, "campaign", "status", str(tmp_path / "missing.h5"))
    assert code == 2 and "no such campaign file" in err


@pytest.mark.parametrize("plan", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_plan_validates(plan, capsys):
    code, stdout, err = _run(capsys, "campaign", "validate", str(plan), "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["valid"] and info["n_points"] >= 6


def test_shipped_plans_cover_the_issue():
    names = {p.stem for p in SHIPPED}
    assert {"time_scaling", "read_voltage", "retention", "die_to_die", "wv_tolerance"} <= names
    ts = load_plan(ROOT / "campaigns" / "time_scaling.toml")
    acc = next(a for a in ts.axes if a.param == "infer.acceleration").values
    assert min(acc) == 1 and max(acc) == 1e5                        # 1x .. 100,000x
    ret = load_plan(ROOT / "campaigns" / "retention.toml")
    assert max(next(a for a in ret.axes if a.param == "wait.wait_s").values) >= 1e5
    d2d = load_plan(ROOT / "campaigns" / "die_to_die.toml")
    assert len(next(a for a in d2d.axes if a.param == "setup.chip_seed").values) >= 5


def _small_time_scaling(tmp_path: Path) -> Path:
    """The shipped time-scaling plan at CI size: ideal chip only, 24 samples, no power step."""
    text = (ROOT / "campaigns" / "time_scaling.toml").read_text()
    small, n = re.subn(r"samples = 96", "samples = 24", text)
    assert n == 1
    small, n = re.subn(r'\[\[step\]\]\nprocedure = "power"\nsamples = \d+[^\n]*\n', "", small)
    assert n == 1
    small, n = re.subn(r'values = \["ideal", "typical"\]', 'values = ["ideal"]', small)
    assert n == 1
    p = tmp_path / "time_scaling_small.toml"
    p.write_text(small)
    return p


def test_time_scaling_accuracy_constant_at_ideal(tmp_path, capsys):
    plan, out = _small_time_scaling(tmp_path), tmp_path / "ts.h5"
    code, stdout, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0", "--json")
    assert code == 0, err
    cols, _ = read_table(out)
    o = np.argsort(cols["infer.acceleration"])
    k = cols["infer.acceleration"][o]
    acc = cols["infer.accuracy"][o]
    assert len(k) >= 4 and k.max() / k.min() >= 1e4                     # >= 4 factors spanning 1e4x
    assert np.all(cols["status"] == 0)
    assert np.all(acc == acc[0]) and acc[0] >= 0.5, acc                 # flat, and far above chance (1/11)
    # the factor really reached the chip: chip time per sample = 300 steps x 5 ms / k + 14.31 us latency
    expected = 300 * 5e-3 / k + 14.31e-6
    assert cols["infer.chip_s_per_sample"][o] == pytest.approx(expected, rel=1e-6)
    # spike for spike: the output counts of every factor equal those at 1x
    with h5py.File(out, "r") as f:
        counts = [f[f"points/{int(i):06d}/infer/output_counts"][()] for i in cols["index"][o]]
    for c in counts[1:]:
        assert np.array_equal(c, counts[0])


@pytest.mark.slow
def test_shipped_time_scaling_with_power_runs(tmp_path):
    """The whole shipped plan (power steps on the built-in simulated bench with its SMUs), on 2
    local workers; every point on a fresh die of its own (nothing in the per-user die home)."""
    import os
    import subprocess
    import sys

    out, home = tmp_path / "ts.h5", tmp_path / "dies"
    home.mkdir()
    r = subprocess.run([sys.executable, "-m", "bench", "campaign", "run", str(ROOT / "campaigns" / "time_scaling.toml"),
                        "--out", str(out), "--workers", "2", "--json"], capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "SNNBENCH_DIE_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    cols, _ = read_table(out)
    assert np.all(cols["status"] == 0)
    ideal = cols["setup.fidelity"] == "ideal"
    assert len(set(cols["infer.accuracy"][ideal].tolist())) == 1
    e = cols["power.energy_per_sample_j"]
    assert np.all(np.isfinite(e) & (e > 0))
    assert list(home.iterdir()) == []


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_report_pngs_and_html_in_own_process(tmp_path, capsys):
    import subprocess
    import sys

    plan = _plan(tmp_path, """
        [campaign]
        name = "rep"
        seed = 1
        repeats = 2
        [[step]]
        procedure = "program"
        pattern = "ramp"
        [[step]]
        procedure = "wait"
        [[step]]
        procedure = "read"
        [[axis]]
        name = "elapsed_s"
        param = "wait.wait_s"
        values = [1.0, 100.0, 10000.0]
        unit = "s"
    """)
    out = tmp_path / "c.h5"
    assert _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")[0] == 0
    r = subprocess.run([sys.executable, "-m", "bench", "campaign", "report", str(out), "--out",
                        str(tmp_path / "rep"), "--json"], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    names = {Path(p).name for p in rep["figures"]}
    assert {"read.error_rms_us.png", "level_drift.png", "program.pulses_per_cell.png"} <= names
    for p in rep["figures"]:
        w, h = _png_size(Path(p))
        assert w >= 800 and h >= 400
    page = Path(rep["report"]).read_text()
    assert all(n in page for n in names)
    assert "<td>done</td><td>6</td>" in page and "<td>failed</td><td>0</td>" in page
    assert 'procedure = &quot;wait&quot;' in page                         # the plan is on the page


def test_finetune_step_then_infer(tmp_path, capsys):
    """The finetune adapter runs bench.finetune on the point's chip; the next infer step maps the
    tuned model (its programming is fresh: the runner was dropped)."""
    plan, out = _plan(tmp_path, """
        [campaign]
        name = "ft"
        seed = 1
        [setup]
        fidelity = "typical"
        [[step]]
        procedure = "finetune"
        max_rounds = 1
        samples = 24
        [[step]]
        procedure = "infer"
        samples = 8
    """), tmp_path / "c.h5"
    code, stdout, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")
    assert code == 0, err
    cols, _ = read_table(out)
    assert cols["status"][0] == 0, cols["error"][0]
    assert cols["finetune.rounds"][0] == 1
    assert cols["finetune.cells_reprogrammed"][0] >= 0
    assert 0.0 <= cols["finetune.chip_accuracy_after"][0] <= 1.0
    assert 0.0 <= cols["infer.accuracy"][0] <= 1.0


def test_live_view_reads_the_campaign_file(tmp_path, capsys):
    """The agreed layout, end to end: the live view's reader (issue 12) understands what the
    campaign writes, including a failed point and the grid shape."""
    from bench.view.model import read_snapshot

    plan, out = _plan(tmp_path, FAILING.format(on_error="continue")), tmp_path / "c.h5"
    assert _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")[0] == 0
    snap = read_snapshot(out)
    assert snap.kind == "campaign" and snap.committed == 4
    assert snap.campaign.grid_shape == (4, 1)
    assert snap.campaign.counts == {"done": 3, "failed": 1, "skipped": 0, "pending": 0}
    assert snap.campaign.status.tolist() == [0, 1, 0, 0]
