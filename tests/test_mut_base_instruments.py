"""Instrument plumbing details the mutation run found unchecked (issue 18): a VISA timeout
known by its code alone, enum controls read back by token and by number, the parsers' errors
and empty replies, the unknown-model and current-limit messages, and the aperture read from
the instrument before this session set an NPLC.  Expected values: the SCPI/TSP replies below
and the docstrings; arithmetic by hand."""
from __future__ import annotations

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
