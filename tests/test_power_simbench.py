"""``snnbench power`` on the built-in simulated bench (``snnbench sim serve`` subprocess)."""
from __future__ import annotations

import json

import h5py
import pytest

from tests.strict_json import loads_strict

from bench.cli import main
from bench.simbench import SimBench
from drivers.pechip import PEChip


def test_power_cli_default_simulated_bench(tmp_path, capsys):
    out = tmp_path / "p.h5"
    rc = main(["power", "--samples", "32", "--out", str(out), "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = loads_strict(cap.out)
    assert res["simulated"] is True
    assert res["average_power_w"] == pytest.approx(43.83e-3, rel=0.15)
    assert res["energy_per_sample_j"] == pytest.approx(res["average_power_w"] * res["latency_s"], rel=1e-9)
    assert [s["rail"] for s in res["smu"]] == ["VDDA", "VDDD", "VDDIO"]
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] and f["run/VDDIO/current_a"].attrs["units"] == "A"


def test_power_matches_served_chip_energy_counters(tmp_path, capsys):
    """End to end through the served bench: measured vs the chip's own energy counters (2 %)."""
    with SimBench(seed=1) as sim:
        with PEChip(sim.chip_url) as pe:
            e0 = pe.sim_query("energy_j")
            t0 = pe.sim_query("clock_s")
        specs = [f"--smu={d['rail']}={d['model']}@{d['resource']}" for d in sim.smu]
        n = 48
        rc = main(["power", "--chip", sim.chip_url, *specs, "--samples", str(n), "--no-program",
                   "--out", str(tmp_path / "p.h5"), "--json"])
        cap = capsys.readouterr()
        assert rc == 0, cap.err
        res = loads_strict(cap.out)
        with PEChip(sim.chip_url) as pe:
            e1 = pe.sim_query("energy_j")
            t1 = pe.sim_query("clock_s")
    # the counters include leakage over the whole procedure: remove it with the measured idle power
    idle_w = res["idle_power_w"]
    chip_run_j = sum(e1[r] - e0[r] for r in e1) - idle_w * (t1 - t0)
    chip_power_w = chip_run_j / (n * res["latency_s"])
    assert res["energy_per_sample_j"] * n == pytest.approx(chip_run_j, rel=0.02)
    assert res["average_power_w"] == pytest.approx(chip_power_w, rel=0.02)
    for rail, r in res["rails"].items():
        chip_rail = e1[rail] - e0[rail] - r["idle_power_w"] * (t1 - t0)
        assert r["energy_per_sample_j"] * n == pytest.approx(chip_rail, rel=0.02)
