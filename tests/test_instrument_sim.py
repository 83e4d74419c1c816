"""Drivers against the coupled simulators, through pyvisa-py (the real VISA code path)."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from drivers.errors import InstrumentError, LimitError
from drivers.instruments import open_smu, open_smus, safety
from drivers.instruments.base import VisaAdapter
from sim_backend.instruments import (Keithley2450Server, Keithley2600Server, KeysightB2900Server,
                                     StubWorld, make_server, serve_instruments)

LIMITS = {"max_voltage_v": 3.6, "max_current_a": 0.2}


@pytest.fixture
def world():
    return StubWorld()


@pytest.fixture
def bench(world):
    desc, stop = serve_instruments(world)
    yield desc, stop
    safety.shutdown_all()
    stop()


def _cfg(d, **kw):
    return {**d, **LIMITS, **kw}


def test_descriptors(bench):
    desc, _ = bench
    assert [(d["model"], d["rail"], d["channel"]) for d in desc] == [
        ("2450", "VDDA", 1), ("B2901A", "VDDD", 1), ("2601B", "VDDIO", 1)]
    for d in desc:
        assert d["resource"].startswith("TCPIP0::127.0.0.1::") and d["resource"].endswith("::SOCKET")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_driver_path_against_its_simulator(bench, world, index):
    desc, stop = bench
    d = desc[index]
    server = stop.servers[index]
    with open_smu(_cfg(d)) as smu:
        assert smu.output_enabled is False
        assert smu.measure_current() == 0.0           # output off: 0 A
        smu.configure(d["voltage_v"], 0.1, 0.01)
        assert smu.current_limit == pytest.approx(0.1)
        assert smu.nplc == pytest.approx(0.01)
        assert smu.aperture_s == pytest.approx(0.01 / 50)
        smu.enable()
        assert smu.output_enabled is True
        assert smu.source_voltage == pytest.approx(d["voltage_v"])
        idle = world.idle_a[d["rail"]]
        assert smu.measure_current() == pytest.approx(idle)
        assert smu.measure_voltage() == pytest.approx(d["voltage_v"])
        assert smu.measure_power() == pytest.approx(idle * d["voltage_v"])
        # buffered trace covering a burst of activity
        # (200 us aperture + the model's overhead <= 250 us: every model keeps this interval)
        smu.arm_trace(100, 2.5e-4)
        t0 = world.clock_s()
        world.run(5e-3, {d["rail"]: 10e-3})
        tr = smu.fetch_trace(timeout_s=10)
        assert tr.current_a.shape == (100,)
        assert tr.time_s == pytest.approx(np.arange(100) * 2.5e-4)
        assert tr.current_a[:20] == pytest.approx(idle + 10e-3)
        assert tr.current_a[-50:] == pytest.approx(idle)
        assert tr.lost_points == 0 and tr.covered_fraction == pytest.approx(0.2 / 0.25, rel=0.01)
        # over the actual times: only the burst's edge falls into a gap between two apertures
        span = 99 * 2.5e-4 + 2e-4
        assert tr.energy_j() == pytest.approx(world.energy_j(d["rail"], t0, t0 + span), rel=1e-2)
        assert not tr.compliance.any()
        # compliance clamps at the limit, and every point says so
        smu.current_limit = 1e-3
        smu.arm_trace(10, 2.5e-4)
        world.run(2e-3, {d["rail"]: 10e-3})
        tr = smu.fetch_trace()
        assert tr.current_a[:8] == pytest.approx(1e-3)
        assert tr.compliance[:8].all()                  # the 2 ms burst: 8 points in compliance
        assert not tr.compliance[8:].any()              # idle draws exactly the 1 mA limit: not clamped
    st = server.state()
    assert st["output"] is False and st["level_v"] == 0.0


def test_unknown_command_and_out_of_range_go_to_error_queue(bench):
    desc, _ = bench
    with open_smu(_cfg(desc[0])) as k2450:
        k2450.write(":FOO:BAR 1")
        k2450.write(":SOUR:VOLT 500")                 # outside the instrument's 210 V range
        with pytest.raises(InstrumentError, match=r"-113 Undefined header; -222 Parameter data out of range"):
            k2450.check_errors()
        k2450.check_errors()                           # drained
    with open_smu(_cfg(desc[1])) as b29:
        b29.write(":SOUR2:VOLT 1")                    # B2901A has one channel
        with pytest.raises(InstrumentError, match="-114 Header suffix out of range"):
            b29.check_errors()
    with open_smu(_cfg(desc[2])) as k26:
        k26.write("smua.source.levelv = 100")
        k26.write("smub.source.levelv = 1")
        k26.write("bogus statement")
        with pytest.raises(InstrumentError, match="1102 Parameter too big; -286 .*smub.*; -285 TSP Syntax error"):
            k26.check_errors()


def test_exception_mid_measurement_leaves_output_off_at_0v(bench, world):
    desc, stop = bench
    with pytest.raises(RuntimeError):
        with open_smu(_cfg(desc[0])) as smu:
            smu.configure(1.8, 0.1, 0.01)
            smu.enable()
            smu.arm_trace(10, 1e-3)
            raise RuntimeError("boom")
    st = stop.servers[0].state()
    assert st["output"] is False and st["level_v"] == 0.0
    # and through a fresh VISA session the instrument agrees
    with open_smu(_cfg(desc[0])) as smu:
        assert smu.output_enabled is False
        assert smu.source_voltage == 0.0


def test_safety_guard_shuts_down_on_keyboard_interrupt(bench):
    desc, stop = bench
    with pytest.raises(KeyboardInterrupt):
        with safety.guard():
            smus = open_smus([_cfg(d) for d in desc])
            for s, d in zip(smus, desc):
                s.configure(d["voltage_v"], 0.1, 0.01)
                s.enable()
            assert all(srv.state()["output"] for srv in stop.servers)
            raise KeyboardInterrupt
    assert safety.registered() == []
    for srv in stop.servers:
        assert srv.state()["output"] is False and srv.state()["level_v"] == 0.0


def test_wrong_model_unknown_resource_and_dead_server(world):
    srv = Keithley2600Server(world, "VDDIO", model="2601B").start()
    try:
        with pytest.raises(InstrumentError, match="wrong instrument: expected a 2450"):
            open_smu({"resource": srv.resource, "model": "2450", "rail": "VDDIO", **LIMITS})
    finally:
        srv.stop()
    with pytest.raises(InstrumentError, match="connection refused"):
        open_smu({"resource": "TCPIP0::127.0.0.1::1::SOCKET", "model": "2450", **LIMITS})
    with pytest.raises(InstrumentError, match="unknown or unsupported"):
        VisaAdapter("NOTAVISA::thing")


def test_server_killed_mid_measurement_gives_clear_error(world):
    srv = Keithley2450Server(world, "VDDA").start()
    smu = open_smu({"resource": srv.resource, "model": "2450", "rail": "VDDA", **LIMITS}, timeout_s=2)
    smu.configure(1.8, 0.1, 0.01)
    smu.enable()
    smu.arm_trace(10, 1e-3)
    srv.kill()
    t = time.perf_counter()
    with pytest.raises(InstrumentError, match="VDDA|TCPIP0"):
        smu.fetch_trace(timeout_s=2)
    assert time.perf_counter() - t < 5
    with pytest.raises(InstrumentError):
        smu.close()
    assert smu not in safety.registered()


def test_two_channel_b2902a_shares_one_session(world):
    srv = KeysightB2900Server(world, {1: "VDDA", 2: "VDDD"}, model="B2902A").start()
    try:
        cfgs = [{"resource": srv.resource, "model": "B2902A", "channel": c, "rail": r, **LIMITS}
                for c, r in ((1, "VDDA"), (2, "VDDD"))]
        a, b = open_smus(cfgs)
        for s in (a, b):
            s.configure(1.8, 0.1, 0.01)
        a.enable()
        assert srv.channels[1].output and not srv.channels[2].output
        b.enable(1.0)
        assert b.measure_current() == pytest.approx(world.idle_a["VDDD"] * 1.0 / 1.8)
        a.close()
        assert b.output_enabled is True            # closing channel 1 keeps channel 2's session
        b.close()
        assert not srv.channels[2].output
        assert srv.connections == 1
    finally:
        srv.stop()


def test_one_connection_owner_at_a_time(world):
    srv = make_server("2450", world, {1: "VDDA"}).start()
    try:
        with socket.create_connection((srv.host, srv.port)) as first:
            first.sendall(b"*IDN?\n")
            assert first.recv(100).startswith(b"KEITHLEY")
            second = socket.create_connection((srv.host, srv.port))
            second.settimeout(0.3)
            second.sendall(b"*IDN?\n")
            with pytest.raises(socket.timeout):
                second.recv(100)
        second.settimeout(2)
        assert second.recv(100).startswith(b"KEITHLEY")   # served once the first owner left
        second.close()
    finally:
        srv.stop()


def test_trace_interval_shorter_than_aperture_refused(bench):
    desc, _ = bench
    with open_smu(_cfg(desc[0])) as smu:
        smu.configure(1.8, 0.1, 1.0)               # 20 ms aperture at 50 Hz
        with pytest.raises(LimitError, match="sample interval"):
            smu.arm_trace(10, 1e-3)
        with pytest.raises(LimitError, match="trace of"):
            smu.arm_trace(0, 1e-1)


def test_sim_serve_seed_is_validated_by_argparse(capsys):
    """QA: 'sim serve --seed -1' gave numpy's 'expected non-negative integer' without the flag."""
    import argparse

    from sim_backend.server import add_serve_arguments

    p = argparse.ArgumentParser(prog="snnbench sim serve")
    add_serve_arguments(p)
    assert p.parse_args(["--seed", "0"]).seed == 0
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(SystemExit) as exc:
            p.parse_args(["--seed", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--seed" in err and "integer >= 0" in err, err
