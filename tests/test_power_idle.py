"""Power integration subtracts the idle baseline: on a chip whose rails leak as much as the
run draws, the net energy per sample is the run's alone, and the idle power reported is
I_leak x V per rail (hand-computed from the leakage currents set here)."""
from __future__ import annotations

import threading

import pytest

import json

import h5py
import numpy as np

from bench.power import RailSetup, measure_power
from bench.runstore import RunFile
from drivers.instruments import open_smus, safety
from drivers.pechip import PEChip
from sim_backend.chip import VirtualChip
from sim_backend.firmware import VirtualFirmware
from sim_backend.instruments import serve_instruments
from sim_backend.link import LinkModel
from sim_backend.physics.energy import reference_workload
from sim_backend.physics.params import COMPONENT_RAIL
from sim_backend.server import _Pump, serve_tcp
from sim_backend.world import SimWorld

LEAK_A = {"VDDA": 5e-3, "VDDD": 4e-3, "VDDIO": 2e-3}
RAIL_V = {"VDDA": 1.8, "VDDD": 1.8, "VDDIO": 3.3}


@pytest.fixture
def leaky_bench():
    chip = VirtualChip(chip_seed=1, run_seed=0, fidelity="ideal", idle_current_a=tuple(LEAK_A.items()))
    world = SimWorld(chip)
    fw = VirtualFirmware(chip, lock=world.lock)
    fw.world = world
    stop = threading.Event()
    url, _ = serve_tcp(_Pump(fw, LinkModel()), "127.0.0.1", 0, stop)
    smu, stop_smu = serve_instruments(world)
    try:
        yield chip, url, smu
    finally:
        safety.shutdown_all()
        stop.set()
        stop_smu()


def test_idle_baseline_is_subtracted_per_rail(leaky_bench, tmp_path):
    """Protects the idle-baseline subtraction of the power integration: here the leakage is
    ~24 mW against ~44 mW of run power, so leaving it in would be off by more than half."""
    chip, url, smu = leaky_bench
    spikes, g = reference_workload(16, 0)
    cfgs = [dict(d, max_voltage_v=3.6, max_current_a=0.2) for d in smu]
    setups = [RailSetup(d["rail"], d["voltage_v"], 0.1, 0.01) for d in smu]
    with RunFile(tmp_path / "p.h5", "power") as run, PEChip(url) as pe:
        smus = open_smus(cfgs)
        try:
            res = measure_power(pe, smus, setups, spikes=spikes, conductances_s=g, run=run)
        finally:
            for s in smus:
                s.close()
    _check_run_file(tmp_path / "p.h5", res, g, {d["rail"]: d["voltage_v"] for d in smu})
    idle_w = {r: LEAK_A[r] * RAIL_V[r] for r in LEAK_A}
    assert res["idle_power_w"] == pytest.approx(sum(idle_w.values()), rel=0.01)
    run = chip.last_run["energy_j"]                     # the run's components, no leakage
    for rail, r in res["rails"].items():
        assert r["idle_power_w"] == pytest.approx(idle_w[rail], rel=0.01)
        want = sum(e for c, e in run.items() if COMPONENT_RAIL[c] == rail) / 16
        assert r["energy_per_sample_j"] == pytest.approx(want, rel=0.02), rail
    assert res["energy_per_sample_j"] == pytest.approx(sum(run.values()) / 16, rel=0.02)


def _check_run_file(path, res: dict, g: np.ndarray, volts: dict) -> None:
    """What the run file must hold (bench/power.py module docstring, docs/power.md)."""
    assert {d["rail"] for d in res["smu"]} == set(volts)
    with h5py.File(path, "r") as f:
        assert f["program/targets_s"].attrs["units"] == "S" and f["program/g_s"].attrs["units"] == "S"
        np.testing.assert_array_equal(f["program/targets_s"][()], g)
        for rail, v in volts.items():
            for kind in ("idle", "run"):
                a = f[f"{kind}/{rail}"].attrs
                assert a["voltage_v"] == pytest.approx(v) and 0 < a["aperture_s"] <= a["period_s"]
                assert f[f"{kind}/{rail}/current_a"].attrs["units"] == "A"
            assert f[f"idle/{rail}/current_a"].shape == (100,)
        assert int(f["run/chunk_samples"][()].sum()) == 16
        stored = json.loads(f.attrs["result_json"])
        assert stored["energy_per_sample_j"] == pytest.approx(res["energy_per_sample_j"])
        assert json.loads(f.attrs["sop_definitions"]) == ["dense", "event"]
