"""Power procedure end to end: virtual chip over TCP + coupled SMUs over pyvisa-py."""
from __future__ import annotations

import json
import threading

import h5py
import numpy as np
import pytest

from tests.strict_json import loads_strict

from bench.cli import main
from bench.errors import MeasurementError
from bench.power import PowerOptions, RailSetup, measure_power
from drivers.errors import InstrumentError
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


class Bench:
    """In-process simulated bench: chip on socket://, SMUs on TCPIP SOCKET, one shared world."""

    def __init__(self, fidelity: str = "typical") -> None:
        self.chip = VirtualChip(chip_seed=1, run_seed=0, fidelity=fidelity)
        self.world = SimWorld(self.chip)
        self.fw = VirtualFirmware(self.chip, lock=self.world.lock)
        self.fw.world = self.world
        self._stop = threading.Event()
        self.url, _ = serve_tcp(_Pump(self.fw, LinkModel()), "127.0.0.1", 0, self._stop)
        self.smu, self._stop_smu = serve_instruments(self.world)
        self.servers = self._stop_smu.servers

    def cfgs(self):
        return [dict(d, max_voltage_v=3.6, max_current_a=0.2) for d in self.smu]

    def setups(self):
        return [RailSetup(d["rail"], d["voltage_v"], 0.1, 0.01) for d in self.smu]

    def close(self):
        self._stop.set()
        self._stop_smu()


@pytest.fixture
def bench():
    b = Bench()
    yield b
    safety.shutdown_all()
    b.close()


def _chip_truth(chip: VirtualChip, runs_before: int):
    lr = chip.last_run
    assert chip.counters["runs"] == runs_before + 1
    e = sum(lr["energy_j"].values())
    return e / lr["n"], e / lr["activity"].t_enabled_s, lr["activity"].t_enabled_s / lr["n"]


def test_energy_per_sample_matches_chip_counters_within_2_percent(bench, tmp_path):
    from bench.runstore import RunFile

    spikes, g = reference_workload(32, 0)
    with RunFile(tmp_path / "p.h5", "power") as run, PEChip(bench.url) as pe:
        smus = open_smus(bench.cfgs())
        runs0 = bench.chip.counters["runs"]
        try:
            res = measure_power(pe, smus, bench.setups(), spikes=spikes, conductances_s=g, run=run)
        finally:
            for s in smus:
                s.close()
    e_chip, p_chip, t_chip = _chip_truth(bench.chip, runs0)
    assert res["energy_per_sample_j"] == pytest.approx(e_chip, rel=0.02)
    assert res["average_power_w"] == pytest.approx(p_chip, rel=0.02)
    assert res["latency_s"] == pytest.approx(t_chip, rel=1e-9)
    # per rail against the chip's own per-component counters of that run
    for rail, r in res["rails"].items():
        chip_rail = sum(e for c, e in bench.chip.last_run["energy_j"].items() if COMPONENT_RAIL[c] == rail)
        assert r["energy_per_sample_j"] * 32 == pytest.approx(chip_rail, rel=0.02)
    # near the published calibration (43.83 mW, 1.94 uJ, 44.31 us)
    assert res["average_power_w"] == pytest.approx(43.83e-3, rel=0.15)
    assert res["latency_s"] == pytest.approx(44.31e-6, rel=1e-3)
    assert set(res["sops_per_sample"]) == set(res["tsops_per_w"]) == {"dense", "event"}
    assert res["tsops_per_w"]["dense"] == pytest.approx(
        res["sops_per_sample"]["dense"] / res["energy_per_sample_j"] / 1e12)
    with h5py.File(tmp_path / "p.h5", "r") as f:
        for rail in ("VDDA", "VDDD", "VDDIO"):
            assert f[f"run/{rail}/current_a"].attrs["units"] == "A"
            assert f[f"idle/{rail}/current_a"].shape == (100,)
        assert f.attrs["complete"]
    for srv in bench.servers:
        assert srv.state()["output"] is False and srv.state()["level_v"] == 0.0


def test_chunked_runs_sum_to_the_chip_counters(bench):
    spikes, _ = reference_workload(12, 3)
    e0 = sum(bench.chip.energy_j.values())
    with PEChip(bench.url) as pe:
        smus = open_smus(bench.cfgs())
        try:
            res = measure_power(pe, smus, bench.setups(), spikes=spikes, conductances_s=None,
                                options=PowerOptions(chunk_samples=5))
        finally:
            for s in smus:
                s.close()
    assert res["chunks"] == 3
    e_runs = sum(bench.chip.energy_j.values()) - e0       # component energies only (no leakage)
    assert res["energy_per_sample_j"] * 12 == pytest.approx(e_runs, rel=0.02)


def test_simulator_killed_mid_measurement_keeps_what_was_measured(bench, tmp_path):
    from bench.runstore import RunFile

    spikes, g = reference_workload(8, 0)
    armed = []

    def on_event(name, info):
        armed.append(name)
        if len(armed) == 2:            # the run trace (the first arm is the idle baseline)
            bench.servers[1].kill()

    path = tmp_path / "killed.h5"
    with pytest.raises(InstrumentError, match="VDDD|TCPIP0"):
        with safety.guard(), RunFile(path, "power") as run, PEChip(bench.url) as pe:
            smus = open_smus(bench.cfgs(), timeout_s=2)
            measure_power(pe, smus, bench.setups(), spikes=spikes, conductances_s=None, run=run,
                          options=PowerOptions(on_event=on_event, fetch_timeout_s=2))
    with h5py.File(path, "r") as f:
        assert not f.attrs["complete"]
        assert "InstrumentError" in f.attrs["error"]
        for rail in ("VDDA", "VDDD", "VDDIO"):
            assert f[f"idle/{rail}/current_a"].shape == (100,)     # idle baseline kept
        assert f["run/VDDA/current_a"].shape[0] > 0                # fetched before the dead one
    # the surviving SMUs were still shut down
    for i in (0, 2):
        assert bench.servers[i].state()["output"] is False
        assert bench.servers[i].state()["level_v"] == 0.0


def test_cli_against_simulated_bench(bench, tmp_path, capsys):
    out = tmp_path / "cli.h5"
    specs = [f"--smu={d['rail']}={d['model']}@{d['resource']}" for d in bench.smu]
    runs0 = bench.chip.counters["runs"]
    rc = main(["power", "--chip", bench.url, *specs, "--samples", "16", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1
    res = loads_strict(lines[0])
    for key in ("average_power_w", "energy_per_sample_j", "latency_s", "sops_per_sample", "tsops_per_w"):
        assert key in res
    e_chip, p_chip, _ = _chip_truth(bench.chip, runs0)
    assert res["energy_per_sample_j"] == pytest.approx(e_chip, rel=0.02)
    assert res["average_power_w"] == pytest.approx(p_chip, rel=0.02)
    with h5py.File(out, "r") as f:
        assert f.attrs["kind"] == "power" and f.attrs["complete"]
        assert json.loads(f.attrs["instruments"])[0]["identity"].startswith("KEITHLEY")


def test_cli_bad_inputs_are_one_line_errors(bench, tmp_path, capsys):
    out = str(tmp_path / "x.h5")
    d = bench.smu[0]
    cases = [
        (["power", "--chip", bench.url, "--smu", f"VDDA=2601B@{d['resource']}", "--out", out], 1,
         "wrong instrument"),
        (["power", "--chip", bench.url, "--smu", "VDDA=2450@TCPIP0::127.0.0.1::1::SOCKET", "--out", out], 1,
         "connection refused"),
        (["power", "--chip", bench.url, "--smu", "VDDA=HP4156@TCPIP0::127.0.0.1::1::SOCKET", "--out", out], 2,
         "unknown SMU model"),
        (["power", "--chip", bench.url, "--samples", "0", "--out", out], 2, "--samples"),
        (["power", "--chip", bench.url, "--model", "m.h5", "--data", "d", "--out", out], 2, "unrecognized"),
    ]
    for argv, code, text in cases:
        try:
            rc = main(argv)
        except SystemExit as exc:   # argparse-level errors (--samples 0, unknown options)
            rc = exc.code
        err = capsys.readouterr().err.strip()
        assert rc == code, (argv, err)
        assert len(err.splitlines()) == 1 and text in err, err
    for srv in bench.servers:
        assert srv.state()["output"] is False


def test_station_limits_refuse_before_anything_is_sent(bench, tmp_path, capsys):
    station = tmp_path / "st.toml"
    d = bench.smu[0]
    station.write_text(f'''
[chip]
url = "{bench.url}"
[[smu]]
resource = "{d['resource']}"
model = "2450"
rail = "VDDA"
voltage_v = 1.8
current_limit_a = 0.05
max_voltage_v = 1.5
''')
    rc = main(["--station", str(station), "power", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "exceeds" in err
    assert not any(line.startswith(":SOUR:VOLT 1.8") for line in bench.servers[0].log)
