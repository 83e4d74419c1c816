"""SMU drivers against simulators that behave as the makers' manuals say (issue 14).

Each test pins one behaviour of a real instrument (aperture overhead and lost timer ticks,
absolute vs relative timestamps, compliance flags, the 2450's active-function switch,
hardware trigger inputs, a dead link) and checks the driver copes.  Expected values come from
the stub world's analytic currents (``StubWorld``: idle + rectangular bursts), never from the
driver.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time

import numpy as np
import pytest

from drivers.errors import InstrumentError, LimitError
from drivers.instruments import open_smu, safety
from drivers.instruments.base import VisaAdapter
from sim_backend.instruments import (Keithley2450Server, Keithley2600Server, KeysightB2900Server, StubWorld,
                                     serve_instruments)

LIMITS = {"max_voltage_v": 3.6, "max_current_a": 0.2}


@pytest.fixture
def world():
    return StubWorld()


@pytest.fixture
def bench(world):
    desc, stop = serve_instruments(world)
    yield desc, stop
    safety.shutdown_all()
    safety.clear_unconfirmed()
    stop()


def _open(d, **kw):
    return open_smu({**d, **LIMITS}, **kw)


def _staircase(world, rail, steps_ma=(2.0, 5.0, 3.0, 8.0, 1.0), each_s=4e-3):
    """A varying load: bursts of different heights back to back (analytic truth in the world)."""
    t0 = world.clock_s()
    for ma in steps_ma:
        world.run(each_s, {rail: ma * 1e-3})
    return t0


# --- B2900: aperture overhead and lost timer ticks ---------------------------------------------

def test_b2900_interval_equal_to_aperture_is_refused_naming_both_figures_or_moved_up(bench):
    desc, _ = bench
    with _open(desc[1]) as smu:                          # B2901A on VDDD
        smu.configure(1.8, 0.1, 0.01)                    # aperture 200 us at 50 Hz
        smu.enable()
        with pytest.raises(LimitError) as exc:
            smu.arm_trace(50, 200e-6)
        msg = str(exc.value)
        assert "200 us" in msg and "220 us" in msg and "overhead 20 us" in msg
        used = smu.arm_trace(50, 200e-6, adjust=True)
        assert used == pytest.approx(220e-6)
        tr = smu.fetch_trace()
        assert tr.time_s == pytest.approx(np.arange(50) * 220e-6)   # no tick lost
        assert tr.lost_points == 0


def test_b2900_lost_ticks_points_two_periods_apart_and_energy_within_1_percent(bench, world):
    """A driver that believed the aperture alone fits the timer period (the old behaviour)
    gets points 2 periods apart; integrating over the instrument's timestamps still gives the
    true energy, a nominal-period integral misses half of it."""
    desc, _ = bench
    with _open(desc[1]) as smu:
        smu.configure(1.8, 0.1, 0.01)
        smu.enable()
        smu.range = dataclasses.replace(smu.range, overhead_s=0.0)     # the old, naive driver
        n = 60
        smu.arm_trace(n, 200e-6)
        t0 = _staircase(world, "VDDD")
        tr = smu.fetch_trace()
        assert np.diff(tr.time_s) == pytest.approx(np.full(n - 1, 400e-6))
        assert tr.lost_points == n - 1
        # 60 apertures of 200 us over a span of 59 x 400 + 200 us
        assert tr.covered_fraction == pytest.approx(60 * 200 / (59 * 400 + 200), rel=1e-9)
        truth = world.energy_j("VDDD", t0, t0 + tr.duration_s)
        assert tr.energy_j() == pytest.approx(truth, rel=0.01)
        nominal = float(np.sum(tr.current_a)) * tr.voltage_v * tr.period_s
        assert abs(nominal - truth) / truth > 0.4                       # the bug this replaces


def test_b2900_timestamps_are_absolute_and_traces_relative_to_the_trigger(bench, world):
    desc, _ = bench
    world.advance_to(12.5)                               # the timer was reset long ago
    ad = VisaAdapter(desc[1]["resource"])
    try:
        for cmd in (":SENS1:CURR:NPLC 0.01", ":TRIG1:ACQ:SOUR TIM", ":TRIG1:ACQ:TIM 0.001",
                    ":TRIG1:ACQ:COUN 3", ":INIT:ACQ (@1)"):
            ad.write(cmd)
        assert ad.query("*OPC?") == "1"
        stamps = [float(x) for x in ad.query(":FETC:ARR:TIME? (@1)").split(",")]
        assert stamps == pytest.approx([12.5, 12.501, 12.502])
    finally:
        ad.close()
    with _open(desc[1]) as smu:
        smu.configure(1.8, 0.1, 0.01)
        smu.enable()
        smu.arm_trace(3, 1e-3)
        tr = smu.fetch_trace()
        assert tr.time_s == pytest.approx([0.0, 1e-3, 2e-3])
        assert tr.meta["stamps_t0_s"] > 12.5


def test_2450_rel_timestamps_and_2600b_absolute_ones_both_relative_to_the_trigger(bench, world):
    desc, _ = bench
    world.advance_to(3.0)
    for d in (desc[0], desc[2]):
        with _open(d) as smu:
            smu.configure(d["voltage_v"], 0.1, 0.01)
            smu.enable()
            smu.arm_trace(4, 1e-3)
            tr = smu.fetch_trace()
            assert tr.time_s == pytest.approx([0.0, 1e-3, 2e-3, 3e-3])


# --- compliance ---------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [0, 1, 2])
def test_single_readings_and_traces_carry_the_compliance_flag(bench, world, index):
    desc, _ = bench
    d = desc[index]
    with _open(d) as smu:
        smu.configure(d["voltage_v"], 0.1, 0.01)
        smu.enable()
        r = smu.read_current()
        assert r.compliance is False and r.value == pytest.approx(world.idle_a[d["rail"]])
        smu.current_limit = 1e-4                         # below the idle draw (>= 0.2 mA)
        r = smu.read_current()
        assert r.compliance is True and r.value == pytest.approx(1e-4)
        smu.arm_trace(5, 1e-3)
        tr = smu.fetch_trace()
        assert tr.compliance.all() and tr.compliance_fraction == 1.0


# --- 2450 :MEAS:VOLT? switches the active function -----------------------------------------------

def test_2450_meas_volt_switches_the_function_and_the_driver_sets_it_back(bench, world):
    desc, _ = bench
    d = desc[0]
    with _open(d) as smu:
        smu.configure(1.8, 0.1, 0.01)
        smu.enable()
        assert smu.measure_voltage() == pytest.approx(1.8)
        # what a driver that did not set the function again would get: volts in the buffer
        smu.write(':TRIG:LOAD "SimpleLoop", 3, 0.001, "defbuffer1"')
        smu.write(":INIT")
        smu.write("*WAI")
        raw = [float(x) for x in smu.ask(':TRAC:DATA? 1, 3, "defbuffer1", READ').split(",")]
        assert raw == pytest.approx([1.8] * 3)
        smu.measure_voltage()
        smu.arm_trace(3, 1e-3)                           # sets :SENS:FUNC "CURR" first
        tr = smu.fetch_trace()
        assert tr.current_a == pytest.approx([world.idle_a["VDDA"]] * 3)


# --- hardware trigger inputs ----------------------------------------------------------------------

@pytest.mark.parametrize("index", [0, 1, 2])
def test_trace_armed_on_the_trigger_line_starts_at_the_board_trigger(bench, world, index):
    desc, _ = bench
    d = desc[index]
    with _open(d) as smu:
        smu.configure(d["voltage_v"], 0.1, 0.01)
        smu.enable()
        smu.arm_trace(40, 250e-6, trigger_line=1)
        world.run(3e-3, {d["rail"]: 20e-3})              # before the trigger: not recorded
        t_trig = world.clock_s()
        world.trigger(t_trig)
        world.run(4e-3, {d["rail"]: 6e-3})
        world.trigger(world.clock_s())                   # later edges are ignored (arm count 1)
        tr = smu.fetch_trace()
        assert tr.time_s == pytest.approx(np.arange(40) * 250e-6)
        assert tr.current_a[:16] == pytest.approx(world.idle_a[d["rail"]] + 6e-3)
        assert tr.current_a[16:] == pytest.approx(world.idle_a[d["rail"]])
        truth = world.energy_j(d["rail"], t_trig, t_trig + tr.duration_s)
        assert tr.energy_j() == pytest.approx(truth, rel=0.01)


def test_trace_on_a_trigger_that_never_comes_fails_without_hanging(bench):
    desc, _ = bench
    with _open(desc[1]) as smu:
        smu.configure(1.8, 0.1, 0.01)
        smu.enable()
        smu.arm_trace(5, 1e-3, trigger_line=2)
        t = time.monotonic()
        with pytest.raises(InstrumentError):
            smu.fetch_trace(timeout_s=30)
        assert time.monotonic() - t < 6


def test_firmware_raises_the_trigger_at_run_start_or_each_sample():
    import threading as th

    from drivers.pechip import PEChip
    from sim_backend.chip import VirtualChip
    from sim_backend.firmware import VirtualFirmware
    from sim_backend.link import LinkModel
    from sim_backend.physics.energy import reference_workload
    from sim_backend.server import _Pump, serve_tcp
    from sim_backend.world import SimWorld

    chip = VirtualChip(chip_seed=1, run_seed=0, fidelity="ideal")
    w = SimWorld(chip)
    fw = VirtualFirmware(chip, lock=w.lock)
    fw.world = w
    stop = th.Event()
    url, _ = serve_tcp(_Pump(fw, LinkModel()), "127.0.0.1", 0, stop)
    edges: list[float] = []
    w.trigger_listeners.append(edges.append)
    spikes, _ = reference_workload(3, 0)
    try:
        with PEChip(url) as pe:
            assert pe.read_register("TRIG_MODE") == 0
            pe.upload_spikes(spikes, slot=0)
            pe.run(3, slot=0)
            assert edges == []                            # off by default
            pe.write_register("TRIG_MODE", 1)
            t0 = chip.clock_s
            pe.run(3, slot=0)
            assert edges == [pytest.approx(t0)]
            edges.clear()
            pe.write_register("TRIG_MODE", 2)
            t0 = chip.clock_s
            pe.run(3, slot=0)
            per = (chip.clock_s - t0) / 3
            assert edges == pytest.approx([t0, t0 + per, t0 + 2 * per])
            with pytest.raises(Exception, match="OUT_OF_RANGE|range"):
                pe.write_register("TRIG_MODE", 3)
    finally:
        stop.set()


# --- a dead link --------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["kill", "stop"])
def test_link_lost_mid_trace_noticed_within_seconds_and_rail_reported(world, how):
    srv = KeysightB2900Server(world, "VDDD").start()
    smu = open_smu({"resource": srv.resource, "model": "B2901A", "rail": "VDDD", **LIMITS}, timeout_s=60)
    try:
        smu.configure(1.8, 0.1, 0.01)
        smu.enable()
        smu.arm_trace(20_000, 250e-6)                    # a 5 s acquisition
        getattr(srv, how)()                              # the link dies while it runs
        t = time.monotonic()
        with pytest.raises(InstrumentError, match="VDDD"):
            smu.fetch_trace(timeout_s=60)
        assert time.monotonic() - t < 3
        safety.clear_unconfirmed()
        t = time.monotonic()
        with pytest.raises(InstrumentError):
            smu.close()
        assert time.monotonic() - t < 3
        assert safety.unconfirmed() == [f"VDDD (B2901A at {srv.resource}) could not be confirmed off "
                                        "\u2014 it may still be at 1.8 V"]
    finally:
        safety.clear_unconfirmed()
        safety.unregister(smu)
        srv.kill()


def test_adapter_sees_a_peer_that_closed_the_link_at_once():
    """pyvisa-py reads a closed TCP socket as 'no data yet' until its timeout; the adapter's own
    check sees the end of stream before sending anything."""
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    ad = VisaAdapter(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=60)
    try:
        conn, _ = srv.accept()
        ad.check_alive()                                 # connected: fine
        conn.close()                                     # orderly close (FIN), no RST
        time.sleep(0.1)
        t = time.monotonic()
        with pytest.raises(InstrumentError, match="connection lost"):
            ad.query("*IDN?")
        assert time.monotonic() - t < 1
    finally:
        ad.close()
        srv.close()


@pytest.mark.parametrize("t0_s", [0.0, 1234.5678, 1e5 + 0.123, 30 * 86400 + 0.7])
def test_simulated_acquisition_completes_at_its_end_on_an_old_chip_clock(t0_s):
    """A die that persists between commands carries a chip clock of days: an acquisition
    armed there must still count all its points once the clock reaches the last point's end
    (floating-point rounding of ``now - t0`` once left the last one out: 'trace stalled,
    99 of 100 readings').  Hand-derived: point k (0-based) ends at t0 + k * period + aperture."""
    from sim_backend.instruments.channel import Acquisition

    period, aperture, n = 4e-4, 2e-4, 100
    a = Acquisition(t0_s, n, period, aperture, 1.8, 0.1, True)
    assert a.completed(t0_s + (n - 1) * period + aperture) == n
    assert a.completed(t0_s + 49 * period + aperture) == 50
    assert a.completed(t0_s + 49 * period + aperture - period / 2) == 49
    assert a.completed(t0_s + aperture / 2) == 0
