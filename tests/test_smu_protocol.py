"""Pinned command sequences of each SMU driver (expected-protocol tests, no I/O)."""
from __future__ import annotations

import pytest

from drivers.errors import InstrumentError, LimitError
from drivers.instruments import (Keithley2450, Keithley2600, KeysightB2900, ProtocolAdapter, safety,
                                 smu_class)

IDN_2450 = "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b"
IDN_B2902 = "Keysight Technologies,B2902A,MY51140111,3.4.2011.5100"
IDN_2602 = "Keithley Instruments Inc., Model 2602B, 4471234, 4.0.4"
OK_SCPI = '0,"No error"'
OK_B29 = '+0,"No error"'
OK_TSP = "0.00000e+00\tQueue Is Empty\t0.00000e+00\t0.00000e+00"

OPEN_2450 = [("*IDN?", IDN_2450), ("*RST", None), ("*CLS", None), (":SYST:LFR?", "50")]
OPEN_B29_CH2 = [("*IDN?", IDN_B2902), ("*CLS", None), (":OUTP2 OFF", None), (":SOUR2:VOLT 0", None),
                (":SYST:LFR?", "+50")]
OPEN_2602_B = [("*IDN?", IDN_2602), ("smub.reset()", None), ("errorqueue.clear()", None),
               ("print(localnode.linefreq)", "5.00000e+01")]


def _open(cls, dialogue, **kw):
    adapter = ProtocolAdapter(dialogue)
    kw.setdefault("max_voltage_v", 3.6)
    kw.setdefault("max_current_a", 0.2)
    smu = cls(adapter, **kw)
    safety.unregister(smu)
    return smu, adapter


def test_factory_picks_driver_by_model():
    assert smu_class("2450") is Keithley2450
    assert smu_class("b2902a") is KeysightB2900
    assert smu_class("2601B") is Keithley2600
    with pytest.raises(InstrumentError, match="unknown SMU model"):
        smu_class("HP4156")


def test_2450_full_session():
    smu, ad = _open(Keithley2450, OPEN_2450 + [
        (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None),
        (":SOUR:VOLT:ILIM 0.05", None), (":SENS:CURR:NPLC 0.01", None), (":SYST:ERR?", OK_SCPI),
        (":SOUR:VOLT 0", None), (":OUTP ON", None),
        (":SOUR:VOLT 0.225", None), (":SOUR:VOLT 0.45", None), (":SOUR:VOLT 0.675", None),
        (":SOUR:VOLT 0.9", None), (":SOUR:VOLT 1.125", None), (":SOUR:VOLT 1.35", None),
        (":SOUR:VOLT 1.575", None), (":SOUR:VOLT 1.8", None), (":SYST:ERR?", OK_SCPI),
        (":OUTP?", "1"), (":MEAS:CURR?", "+1.234000E-03"),
        # the measure function is set again before every trace (:MEAS:VOLT? would have switched it);
        # delay = interval 1 ms - aperture 200 us - overhead 30 us
        (':SENS:FUNC "CURR"', None),
        (':TRAC:CLE "defbuffer1"', None), (':TRIG:LOAD "SimpleLoop", 3, 0.00077, "defbuffer1"', None),
        (":INIT", None), (":SYST:ERR?", OK_SCPI),
        (':TRAC:ACT? "defbuffer1"', "3"),
        ("*WAI", None), (':TRAC:DATA? 1, 3, "defbuffer1", READ, REL, SOURSTAT',
                         "1E-3,0,128,2E-3,1E-3,160,3E-3,2E-3,128"),
        (":SOUR:VOLT 1.575", None), (":SOUR:VOLT 1.35", None), (":SOUR:VOLT 1.125", None),
        (":SOUR:VOLT 0.9", None), (":SOUR:VOLT 0.675", None), (":SOUR:VOLT 0.45", None),
        (":SOUR:VOLT 0.225", None), (":SOUR:VOLT 0", None), (":OUTP OFF", None), (":OUTP?", "0"),
    ], rail="VDDA")
    smu.configure(1.8, 0.05, 0.01)
    smu.enable()
    assert smu.output_enabled is True
    assert smu.measure_current() == pytest.approx(1.234e-3)
    smu.arm_trace(3, 1e-3)
    tr = smu.fetch_trace()
    assert list(tr.current_a) == [1e-3, 2e-3, 3e-3]
    assert list(tr.time_s) == [0, 1e-3, 2e-3]
    assert list(tr.compliance) == [False, True, False]       # SOURSTAT bit 5 (32) = STAT_LIMIT
    # by hand: apertures 0.2 ms x (1 + 2 + 3) mA = 1.2 uC; gaps 0.8 ms bridged by trapezoids
    # 0.8 ms x (1.5 + 2.5) mA = 3.2 uC -> 4.4 uC at 1.8 V
    assert tr.energy_j() == pytest.approx(4.4e-6 * 1.8)
    assert tr.duration_s == pytest.approx(2.2e-3)
    smu.close()
    ad.assert_done()


def test_b2902_channel2_session():
    smu, ad = _open(KeysightB2900, OPEN_B29_CH2 + [
        (":SOUR2:FUNC:MODE VOLT", None), (':SENS2:FUNC "CURR"', None),
        (":SENS2:CURR:PROT 0.1", None), (":SENS2:CURR:NPLC 0.01", None), (":SYST:ERR?", OK_B29),
        (":SOUR2:VOLT 0", None), (":OUTP2 ON", None), (":SOUR2:VOLT 0.2", None), (":SYST:ERR?", OK_B29),
        (":MEAS:VOLT? (@2)", "+2.000000E-01"), (":MEAS:CURR? (@2)", "+5.000000E-04"),
        (":TRAC2:FEED:CONT NEV", None), (":TRAC2:CLE", None), (":TRAC2:FEED SENS", None),
        (":TRAC2:POIN 2", None), (":TRAC2:FEED:CONT NEXT", None),
        (":ARM2:ACQ:SOUR AINT", None),
        (":TRIG2:ACQ:SOUR TIM", None), (":TRIG2:ACQ:TIM 0.0005", None), (":TRIG2:ACQ:COUN 2", None),
        (":INIT:ACQ (@2)", None), (":SYST:ERR?", OK_B29),
        (":TRAC2:POIN:ACT?", "+2"),
        ("*OPC?", "1"), (":FETC:ARR:CURR? (@2)", "+1.0E-03,+2.0E-03"),
        (":FETC:ARR:TIME? (@2)", "+1.2500E+01,+1.2501E+01"),          # absolute: since the timer reset
        (":FETC:ARR:STAT? (@2)", "+0,+2"),
        (":SOUR2:VOLT 0", None), (":OUTP2 OFF", None), (":OUTP2?", "0"),
    ], model="B2902A", channel=2, rail="VDDD")
    smu.configure(0.2, 0.1, 0.01)
    smu.enable()
    assert smu.measure_power() == pytest.approx(1e-4)
    smu.arm_trace(2, 5e-4)
    tr = smu.fetch_trace()
    assert list(tr.current_a) == [1e-3, 2e-3]
    assert tr.time_s == pytest.approx([0.0, 1e-3])     # relative to the trigger; 1 ms apart as stamped
    assert list(tr.compliance) == [False, True]         # status bits 1-2 = compliance
    smu.close()
    ad.assert_done()


def test_2602b_smub_session():
    smu, ad = _open(Keithley2600, OPEN_2602_B + [
        ("smub.source.func = smub.OUTPUT_DCVOLTS", None), ("smub.source.limiti = 0.02", None),
        ("smub.measure.nplc = 0.01", None), ("print(errorqueue.next())", OK_TSP),
        ("smub.source.levelv = 0", None), ("smub.source.output = smub.OUTPUT_ON", None),
        ("smub.source.levelv = 0.25", None), ("smub.source.levelv = 0.5", None),
        ("print(errorqueue.next())", OK_TSP),
        ("print(smub.source.output)", "1.00000e+00"), ("print(smub.measure.p())", "2.00000e-03"),
        ("smub.nvbuffer1.clear()", None), ("smub.nvbuffer1.collecttimestamps = 1", None),
        ("smub.measure.count = 2", None), ("smub.measure.interval = 0.001", None),
        ("smub.measure.overlappedi(smub.nvbuffer1)", None), ("print(errorqueue.next())", OK_TSP),
        ("print(smub.nvbuffer1.n)", "2.00000e+00"),
        ("waitcomplete()", None),
        ("printbuffer(1, 2, smub.nvbuffer1.readings)", "1.0e-03, 3.0e-03"),
        ("printbuffer(1, 2, smub.nvbuffer1.timestamps)", "5.0e+00, 5.001e+00"),
        ("printbuffer(1, 2, smub.nvbuffer1.statuses)", "6.40000e+01, 0.00000e+00"),
        ("smub.measure.count = 1", None),
        ("smub.source.levelv = 0.25", None), ("smub.source.levelv = 0", None),
        ("smub.source.output = smub.OUTPUT_OFF", None), ("print(smub.source.output)", "0.00000e+00"),
    ], model="2602B", channel=2, rail="VDDIO")
    smu.configure(0.5, 0.02, 0.01)
    smu.enable()
    assert smu.output_enabled is True
    assert smu.measure_power() == pytest.approx(2e-3)
    smu.arm_trace(2, 1e-3)
    tr = smu.fetch_trace()
    assert list(tr.current_a) == [1e-3, 3e-3]
    assert tr.time_s == pytest.approx([0.0, 1e-3])
    assert list(tr.compliance) == [True, False]         # statuses bit 6 (64) = compliance
    smu.close()
    ad.assert_done()


@pytest.mark.parametrize("cls,dialogue,kw", [
    (Keithley2450, OPEN_2450, {}),
    (KeysightB2900, OPEN_B29_CH2, {"model": "B2902A", "channel": 2}),
    (Keithley2600, OPEN_2602_B, {"model": "2602B", "channel": 2}),
])
def test_out_of_station_limits_sends_nothing(cls, dialogue, kw):
    kw = {"model": "2450", **kw}
    smu, ad = _open(cls, dialogue, max_voltage_v=2.0, max_current_a=0.05, **kw)
    n = ad.position
    for bad in [(2.5, 0.01), (1.8, 0.06), (-0.1, 0.01), (float("nan"), 0.01), (1.8, 0.0)]:
        with pytest.raises(LimitError):
            smu.configure(*bad)
    with pytest.raises(LimitError):
        smu.configure(1.8, 0.01, nplc=1000.0)
    with pytest.raises(LimitError):
        smu.source_voltage = 2.1
    with pytest.raises(LimitError):
        smu.current_limit = 1.0
    with pytest.raises(LimitError, match="before a current limit"):
        smu.enable(1.0)
    assert ad.position == n, "a refused setpoint must not send anything"


def test_wrong_model_and_bad_idn():
    with pytest.raises(InstrumentError, match="wrong instrument"):
        Keithley2450(ProtocolAdapter([("*IDN?", IDN_2602)]), model="2450", max_voltage_v=3, max_current_a=0.1)
    with pytest.raises(InstrumentError, match="unparsable"):
        Keithley2450(ProtocolAdapter([("*IDN?", "garbage")]), model="2450", max_voltage_v=3, max_current_a=0.1)
    with pytest.raises(InstrumentError, match="channel 2 does not exist"):
        KeysightB2900(ProtocolAdapter([]), model="B2901A", channel=2, max_voltage_v=3, max_current_a=0.1)


def test_error_queue_and_unparsable_replies():
    smu, ad = _open(Keithley2450, OPEN_2450 + [
        (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None), (":SOUR:VOLT:ILIM 0.05", None),
        (":SYST:ERR?", '-222,"Parameter data out of range"'), (":SYST:ERR?", '-113,"Undefined header"'),
        (":SYST:ERR?", OK_SCPI),
        (":MEAS:CURR?", "banana"),
    ])
    with pytest.raises(InstrumentError, match=r"-222 Parameter data out of range; -113 Undefined header"):
        smu.configure(1.0, 0.05)
    with pytest.raises(InstrumentError, match="unparsable reply 'banana'"):
        smu.measure_current()
    ad.assert_done()
