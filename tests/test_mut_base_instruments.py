"""Instrument plumbing details the mutation run found unchecked (issue 18): a VISA timeout
known by its code alone, enum controls read back by token and by number, the parsers' errors
and empty replies, the unknown-model and current-limit messages, and the aperture read from
the instrument before this session set an NPLC.  Expected values: the SCPI/TSP replies below
and the docstrings; arithmetic by hand."""
from __future__ import annotations

import time

import numpy as np
import pytest

from drivers.errors import InstrumentError, LimitError
from drivers.instruments import Keithley2450, ProtocolAdapter, safety
from drivers.instruments.base import Instrument, _visa_reason, control, parse_float, parse_floats

OPEN_2450 = [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b"), ("*RST", None), ("*CLS", None),
             (":SYST:LFR?", "50")]


def _open(dialogue):
    smu = Keithley2450(ProtocolAdapter(dialogue), max_voltage_v=3.6, max_current_a=0.2)
    safety.unregister(smu)
    return smu


def test_a_visa_timeout_is_known_by_its_status_code_alone():
    assert _visa_reason(RuntimeError("VI_ERROR_TMO (-1073807339)")) == "timeout: no reply"


class _Box(Instrument):
    state = control(":OUTP?", ":OUTP {value}", "Output.", map_values={True: "ON", False: "OFF"})
    mode = control("print(smua.source.output)", None, "TSP enum.", map_values={True: "1", False: "0"})


def test_enum_controls_read_back_every_token_and_tsp_numbers():
    box = _Box(ProtocolAdapter([(":OUTP?", "OFF"), (":OUTP?", "on"), ("print(smua.source.output)", "1.00000e+00"),
                                ("print(smua.source.output)", "0.00000e+00")]))
    assert box.state is False           # the second entry of the map, not the first
    assert box.state is True            # tokens compare case-insensitively
    assert box.mode is True             # TSP prints enums as floats: 1.00000e+00 == "1"
    assert box.mode is False


def test_an_enum_reply_matching_no_token_is_an_instrument_error():
    box = _Box(ProtocolAdapter([(":OUTP?", "MAYBE")]))
    with pytest.raises(InstrumentError, match="unparsable reply 'MAYBE' to ':OUTP\\?'"):
        box.state


def test_parsers_name_the_reply_and_accept_an_empty_list():
    with pytest.raises(ValueError, match="^garbage$"):
        parse_float("garbage")
    with pytest.raises(ValueError, match="^1, x$"):
        parse_floats("1, x")
    empty = parse_floats("  ")
    assert empty.shape == (0,) and empty.dtype == np.float64


def test_an_unknown_model_lists_the_known_ones():
    with pytest.raises(InstrumentError, match=r"model '2460' is not a Keithley 2450 \(known: 2450\)$"):
        Keithley2450(ProtocolAdapter([]), model="2460", max_voltage_v=3.6, max_current_a=0.2)


def test_a_current_limit_out_of_range_says_current_limit():
    smu = _open(OPEN_2450)
    with pytest.raises(LimitError, match=r"current limit 0\.5 A outside the allowed range \[1e-09, 0\.2\] A"):
        smu.configure(1.0, 0.5)


def test_aperture_before_any_nplc_is_set_asks_the_instrument():
    """NPLC 0.5 at 50 Hz: 0.5 / 50 = 10 ms."""
    smu = _open(OPEN_2450 + [(":SENS:CURR:NPLC?", "0.5")])
    assert smu.aperture_s == pytest.approx(0.01)


OK_SCPI = '0,"No error"'
ARM_3_AT_1MS = [(':SENS:FUNC "CURR"', None), (':TRAC:CLE "defbuffer1"', None),
                # delay = interval 1 ms - aperture 200 us (NPLC 0.01 at 50 Hz) - overhead 30 us
                (':TRIG:LOAD "SimpleLoop", 3, 0.00077, "defbuffer1"', None), (":INIT", None)]


def test_check_errors_without_a_context_names_none():
    smu = _open(OPEN_2450 + [(":SYST:ERR?", '-113,"Undefined header"'), (":SYST:ERR?", OK_SCPI)])
    with pytest.raises(InstrumentError, match=r"^SMU 2450 ch1 at <expected-protocol>: instrument reported "
                                              r"error\(s\): -113 Undefined header$"):
        smu.check_errors()


def test_an_error_after_arming_says_so():
    smu = _open(OPEN_2450 + [(":SENS:CURR:NPLC 0.01", None), *ARM_3_AT_1MS,
                             (":SYST:ERR?", '-221,"Settings conflict"'), (":SYST:ERR?", OK_SCPI)])
    smu.nplc = 0.01
    with pytest.raises(InstrumentError, match=r"error\(s\) after arming the trace: -221 Settings conflict$"):
        smu.arm_trace(3, 1e-3)


def test_a_trigger_line_the_model_lacks_is_refused_naming_its_inputs():
    smu = _open(OPEN_2450 + [(":SENS:CURR:NPLC 0.01", None)])
    smu.nplc = 0.01
    with pytest.raises(LimitError, match=r"trigger line 7 outside the 2450's trigger inputs 1\.\.6; nothing was sent$"):
        smu.arm_trace(3, 1e-3, trigger_line=7)


def test_closing_twice_shuts_the_rail_down_once():
    """The second close sends nothing (the dialogue below has exactly one shutdown)."""
    smu = _open(OPEN_2450 + [(":SOUR:VOLT 0", None), (":OUTP OFF", None), (":OUTP?", "0")])
    smu.close()
    smu.close()
    smu.adapter.assert_done()


class _Ticking(Keithley2450):
    """A 2450 whose acquisition progresses in real time (one reading per interval)."""

    def _acquired(self) -> int:
        n, interval, _ = self._armed
        return min(n, int((time.monotonic() - self._armed_at) / interval))

    def _fetch(self, n_points, timeout_s):
        return np.full(n_points, 1e-3), np.arange(n_points) * 0.02, np.zeros(n_points)


def test_a_slow_trace_that_keeps_progressing_is_not_a_stall():
    """20 readings at 20 ms (0.4 s) with the stall limit at max(2 x 0.05, 3 x 0.02) = 0.1 s:
    readings keep coming, so the wait must follow them and not call it a stall."""
    smu = _Ticking(ProtocolAdapter(OPEN_2450), max_voltage_v=3.6, max_current_a=0.2)
    safety.unregister(smu)
    smu._nplc = 0.01
    smu.probe_timeout_s = 0.05
    smu._armed, smu._armed_at, smu._armed_line = (20, 0.02, 0.0), time.monotonic(), None
    tr = smu.fetch_trace(timeout_s=5.0)
    assert tr.current_a.shape == (20,)


def test_visa_query_with_its_own_timeout_puts_the_session_timeout_back():
    """A probe with a short timeout (0.5 s) must not leave the session at it: the next
    ordinary query waits the adapter's 5 s again.  Against a simulated SMU over TCP/VISA."""
    from drivers.instruments.base import VisaAdapter
    from sim_backend.instruments import StubWorld, serve_instruments

    desc, stop = serve_instruments(StubWorld())
    try:
        ad = VisaAdapter(desc[0]["resource"], timeout_s=5.0)
        try:
            assert ad.query("*IDN?", timeout_s=0.5)
            assert ad._res.timeout == 5000
            assert ad._dirty is False          # a completed query leaves nothing to drain
        finally:
            ad.close()
    finally:
        stop()


def test_a_failed_visa_write_names_the_command_and_its_cause(monkeypatch):
    """Kills VisaAdapter.write_5 (the cause dropped from the message): a transport error while
    writing (here the resource's write raises EIO after the link was found alive) is an
    InstrumentError naming the resource, the command and the OS cause.  Against a simulated
    SMU over TCP/VISA."""
    import errno

    from drivers.instruments.base import VisaAdapter
    from sim_backend.instruments import StubWorld, serve_instruments

    desc, stop = serve_instruments(StubWorld())
    try:
        ad = VisaAdapter(desc[0]["resource"], timeout_s=5.0)
        try:
            def broken(message):
                raise OSError(errno.EIO, "Input/output error")

            monkeypatch.setattr(ad._res, "write", broken)
            with pytest.raises(InstrumentError) as info:
                ad.write(":SOUR:VOLT 1")
            assert str(info.value) == (f"{desc[0]['resource']}: write ':SOUR:VOLT 1' failed "
                                       "([Errno 5] Input/output error)")
        finally:
            ad.close()
    finally:
        stop()
