"""Issue 14 end to end through the CLI: compliance, a link killed mid-trace, power during the
accuracy pass on the board's hardware trigger, shipped station files, strict JSON, SIGTERM.

The bench is in-process (virtual firmware on socket://, SCPI/TSP simulators on 127.0.0.1 via
pyvisa-py, one shared SimWorld), reached through a station TOML like the lab's.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim_backend  # noqa: F401
from bench.cli import _jsonable, main
from bench.data.synth import generate
from bench.network.model import Network
from bench.network.modelfile import save_model
from bench.programming import schedule_for_station
from bench.station import load_station
from drivers.instruments import safety
from sim_backend.chip import VirtualChip
from sim_backend.firmware import VirtualFirmware
from sim_backend.instruments import serve_instruments
from sim_backend.link import LinkModel
from sim_backend.server import _Pump, serve_tcp
from sim_backend.world import SimWorld
from tests.strict_json import loads_strict

ROOT = Path(__file__).resolve().parents[1]


class Bench:
    """Chip on socket://, three SMUs (2450 VDDA, B2901A VDDD, 2601B VDDIO), one world."""

    def __init__(self) -> None:
        self.chip = VirtualChip(chip_seed=1, run_seed=0, fidelity="ideal")
        self.world = SimWorld(self.chip)
        self.fw = VirtualFirmware(self.chip, lock=self.world.lock)
        self.fw.world = self.world
        self._stop = threading.Event()
        self.url, _ = serve_tcp(_Pump(self.fw, LinkModel()), "127.0.0.1", 0, self._stop)
        self.smu, self._stop_smu = serve_instruments(self.world)
        self.servers = self._stop_smu.servers

    def station(self, path: Path, *, limits: dict[str, float] | None = None, trigger: bool = True) -> Path:
        lines = [f'[chip]\nurl = "{self.url}"\ntimeout_s = 5.0\n']
        for d in self.smu:
            lim = (limits or {}).get(d["rail"], 0.1)
            lines.append(f'[[smu]]\nresource = "{d["resource"]}"\nmodel = "{d["model"]}"\nrail = "{d["rail"]}"\n'
                         f'voltage_v = {d["voltage_v"]}\ncurrent_limit_a = {lim}\nmax_voltage_v = 3.6\n'
                         f'max_current_a = 0.2\nnplc = 0.01\ntrigger_line = {1 if trigger else 0}\n')
        path.write_text("\n".join(lines))
        return path

    def close(self) -> None:
        self._stop.set()
        self._stop_smu()


@pytest.fixture
def bench():
    b = Bench()
    yield b
    safety.shutdown_all()
    b.close()


def _run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# --- compliance ------------------------------------------------------------------------------

def test_rail_in_compliance_fails_power_naming_rail_limit_fraction_and_keeps_flags(bench, tmp_path, capsys):
    # VDDA draws ~15 mA while the chip runs (idle: ~2 uA): a 5 mA limit clamps every run point
    st = bench.station(tmp_path / "st.toml", limits={"VDDA": 5e-3})
    out = tmp_path / "p.h5"
    code, so, se = _run(capsys, "--station", str(st), "power", "--samples", "64", "--idle-points", "10",
                        "--no-program", "--out", str(out), "--json")
    assert code == 1, se
    err = se.strip().splitlines()
    assert len(err) == 1 and "rail VDDA" in err[0] and "0.005 A" in err[0], se
    assert "% of" in err[0] and "VDDD" not in err[0] and "VDDIO" not in err[0]
    assert so == ""
    with h5py.File(out, "r") as f:
        flags = f["run/VDDA/compliance"][:]
        assert flags.dtype == bool and flags.any()
        assert not f["run/VDDD/compliance"][:].any()
        assert not f["idle/VDDA/compliance"][:].any()
    for srv in bench.servers:                      # and every rail ended at 0 V, off
        assert srv.state()["output"] is False and srv.state()["level_v"] == 0.0


# --- link killed mid-trace ---------------------------------------------------------------------

@pytest.mark.parametrize("index,how", [(0, "kill"), (1, "stop")])
def test_link_killed_mid_trace_exits_1_within_10s_naming_the_rail_last(bench, tmp_path, capsys, index, how):
    """2450 reset by a crash (RST); B2901A closed in order (FIN: pyvisa-py alone would wait for
    its timeout).  Both noticed within seconds; the rail left on is the last stderr line."""
    st = bench.station(tmp_path / "st.toml")
    srv = bench.servers[index]
    rail, model = bench.smu[index]["rail"], bench.smu[index]["model"]
    seen = threading.Event()

    def killer():   # the idle trace is 2000 points (~0.46 s): kill once it is armed
        while not seen.is_set():
            if any(line.startswith((":INIT", ":init")) for line in list(srv.log)):
                time.sleep(0.05)
                getattr(srv, how)()
                seen.set()
                return
            time.sleep(0.002)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    t0 = time.monotonic()
    code, so, se = _run(capsys, "--station", str(st), "power", "--samples", "4", "--idle-points", "2000",
                        "--no-program", "--out", str(tmp_path / "p.h5"))
    elapsed = time.monotonic() - t0
    seen.set()
    assert code == 1, se
    assert elapsed < 10, elapsed
    last = se.strip().splitlines()[-1]
    assert last == (f"{rail} ({model} at {bench.smu[index]['resource']}) could not be confirmed off "
                    f"\u2014 it may still be at {bench.smu[index]['voltage_v']:g} V"), se
    # the other rails were confirmed off and are not named
    others = [d["rail"] for i, d in enumerate(bench.smu) if i != index]
    assert not any(line.startswith(o + " (") for o in others for line in se.splitlines())
    for i, s in enumerate(bench.servers):
        if i != index:
            assert s.state()["output"] is False


# --- power during the accuracy pass ------------------------------------------------------------

@pytest.fixture(scope="module")
def gesture(tmp_path_factory):
    d = tmp_path_factory.mktemp("g14")
    generate(d / "syn", seed=0, per_class=4)
    save_model(Network.create((800, 480, 120, 11), seed=0, init_scale=3.0), d / "m.h5")
    return d


def _chip_run_spy(chip: VirtualChip) -> dict:
    """Sum the chip model's own energy counters over every RUN (test-side spy)."""
    acc = {"j": 0.0, "n": 0}
    orig = chip.run

    def run(batch, *a, **k):
        out = orig(batch, *a, **k)
        acc["j"] += float(sum(chip.last_run["energy_j"].values()))
        acc["n"] += int(chip.last_run["n"])
        return out
    chip.run = run
    return acc


def test_infer_measures_power_during_the_pass_on_the_trigger(bench, gesture, tmp_path, capsys):
    st = bench.station(tmp_path / "st.toml")
    spy = _chip_run_spy(bench.chip)
    out = tmp_path / "infer.h5"
    code, so, se = _run(capsys, "--station", str(st), "infer", "--model", str(gesture / "m.h5"),
                        "--data", str(gesture / "syn"), "--limit", "22", "--batch", "11",
                        "--out", str(out), "--json")
    assert code == 0, se
    d = loads_strict(so)
    pw = d["power"]
    assert d["samples"] == 22
    assert pw["hardware_trigger"] is True and pw["samples"] == 22 and pw["batches"] == 2
    truth = spy["j"] / spy["n"]
    assert spy["n"] == 22
    assert pw["energy_per_sample_j"] == pytest.approx(truth, rel=0.02)
    with h5py.File(out, "r") as f:
        assert f["power_inpass/batch_energy_j"].shape == (2,)
        assert "power_inpass/run/VDDA/compliance" in f
        assert f["chip_input_packed"].shape[0] == 22
    for srv in bench.servers:
        assert srv.state()["output"] is False
    # the replay of the same chip-layer inputs on the same chip agrees too
    spy["j"], spy["n"] = 0.0, 0
    code, so, se = _run(capsys, "--station", str(st), "power", "--replay", str(out), "--no-program",
                        "--idle-points", "20", "--out", str(tmp_path / "replay.h5"), "--json")
    assert code == 0, se
    rp = loads_strict(so)
    assert rp["samples"] == 22 and rp["replay"] == str(out)
    assert rp["energy_per_sample_j"] == pytest.approx(pw["energy_per_sample_j"], rel=0.02)
    assert rp["energy_per_sample_j"] == pytest.approx(spy["j"] / spy["n"], rel=0.02)


def test_infer_without_trigger_lines_says_why_no_in_pass_power(bench, gesture, tmp_path, capsys):
    st = bench.station(tmp_path / "st.toml", trigger=False)
    code, so, se = _run(capsys, "--station", str(st), "infer", "--model", str(gesture / "m.h5"),
                        "--data", str(gesture / "syn"), "--limit", "4", "--batch", "4",
                        "--out", str(tmp_path / "i.h5"), "--json")
    assert code == 0, se
    d = loads_strict(so)
    assert d["power"] is None and "trigger_line" in d["power_reason"]


# --- station files, strict JSON, SIGTERM ----------------------------------------------------

def test_every_shipped_station_file_loads_and_accepts_the_default_schedules(capsys):
    files = sorted((ROOT / "bench" / "stations").glob("*.toml"))
    assert files, "no station files shipped"
    for f in files:
        st = load_station(f)
        schedule_for_station(st)               # the default write-verify schedule fits its limits
        code, so, se = _run(capsys, "--station", str(f), "power", "--dry-run", "--json")
        assert code == 0, (f, se)
        d = loads_strict(so)
        assert d["dry_run"] is True and len(d["rails"]) == len(st.smu)
    lab = load_station(ROOT / "bench" / "stations" / "lab_example.toml")
    assert {s.rail for s in lab.smu} == {"VDDA", "VDDD", "VDDIO"}
    assert all(s.trigger_line >= 1 for s in lab.smu)


def test_jsonable_turns_non_finite_figures_into_null_with_a_reason():
    import json

    r = _jsonable({"tsops_per_w": {"dense": float("nan"), "event": float("inf")}, "x": np.float64("-inf"),
                   "y_reason": "given", "y": float("nan"), "ok": np.float32(1.5), "l": [1.0, float("nan")]})
    text = json.dumps(r, allow_nan=False)        # would raise on any NaN left
    d = loads_strict(text)
    assert d["tsops_per_w"]["dense"] is None and "nan" in d["tsops_per_w"]["dense_reason"]
    assert d["tsops_per_w"]["event"] is None and d["tsops_per_w"]["event_reason"]
    assert d["x"] is None and d["x_reason"]
    assert d["y"] is None and d["y_reason"] == "given"
    assert d["ok"] == 1.5 and d["l"] == [1.0, None]


def test_power_json_with_non_positive_net_energy_is_strict(bench, tmp_path, capsys, monkeypatch):
    """QA: TSOPS/W is NaN when net energy <= 0; --json crashed with a traceback."""
    import bench.power as bp

    monkeypatch.setattr(bp, "window_excess_energy_j", lambda *a, **k: 0.0)
    st = bench.station(tmp_path / "st.toml")
    code, so, se = _run(capsys, "--station", str(st), "power", "--samples", "4", "--idle-points", "10",
                        "--no-program", "--out", str(tmp_path / "p.h5"), "--json")
    assert code == 0, se
    d = loads_strict(so)
    assert d["tsops_per_w"]["dense"] is None and "not positive" in d["tsops_per_w_reason"]


def test_sigterm_inside_the_safety_guard_exits_143(tmp_path):
    child = (
        "import sys, time\n"
        "from bench import cli\n"
        "from drivers.instruments import safety\n"
        "def slow(args):\n"
        "    with safety.guard():\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(30)\n"
        "    return {}\n"
        "cli.build_parser_orig = cli.build_parser\n"
        "def bp():\n"
        "    p = cli.build_parser_orig()\n"
        "    p.set_defaults(func=slow)\n"
        "    return p\n"
        "cli.build_parser = bp\n"
        "sys.exit(cli.main(['--json']))\n")
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 143
        assert "terminated" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dry_run_refuses_a_trigger_line_the_model_does_not_have(tmp_path, capsys):
    text = (ROOT / "bench" / "stations" / "lab_example.toml").read_text()
    bad = tmp_path / "bad.toml"
    # the 2450's digital I/O has lines 1..6 (2450 Reference Manual, digital I/O)
    bad.write_text(text.replace("trigger_line = 1", "trigger_line = 7", 1))
    code, so, se = _run(capsys, "--station", str(bad), "power", "--dry-run", "--json")
    assert code == 2 and so == ""
    assert "trigger_line 7" in se and "2450" in se and "1..6" in se and len(se.strip().splitlines()) == 1
