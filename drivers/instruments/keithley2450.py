"""Keithley 2450 SourceMeter (SCPI command set).

Dialogue (short forms)::

    *IDN?                                   -> KEITHLEY INSTRUMENTS,MODEL 2450,<sn>,<fw>
    *RST / *CLS ; :SYST:LFR?
    :SOUR:FUNC VOLT ; :SENS:FUNC "CURR"
    :SOUR:VOLT:ILIM <A>                     (compliance, before output on)
    :SENS:CURR:NPLC <n>
    :SOUR:VOLT <V> ; :OUTP ON|OFF ; :OUTP?
    :MEAS:CURR? ; :MEAS:VOLT?
    :SENS:FUNC "CURR"                       (again before every trace: :MEAS:VOLT? switches it)
    :TRAC:CLE "defbuffer1" ; :TRIG:LOAD "SimpleLoop", <N>, <delay s>, "defbuffer1" ; :INIT
    hardware trigger on digital I/O line <n> instead (trigger-model blocks):
      :DIG:LINE<n>:MODE TRIG, IN ; :TRIG:DIG<n>:IN:EDGE RIS ; :TRIG:LOAD "Empty"
      :TRIG:BLOC:BUFF:CLE 1, "defbuffer1" ; :TRIG:BLOC:WAIT 2, DIG<n>
      :TRIG:BLOC:MDIG 3, "defbuffer1" ; :TRIG:BLOC:DEL:CONS 4, <delay s>
      :TRIG:BLOC:BRAN:COUN 5, <N>, 3 ; :INIT
    :SYST:ERR:COUN?                         (link probe while acquiring)
    *WAI ; :TRAC:DATA? 1, <N>, "defbuffer1", READ, REL, SOURSTAT
    :SOUR:VOLT:ILIM:TRIP?                   -> 1 while the source is in its current limit
    :SYST:ERR?                              -> <code>,"<message>"

Timing: one reading takes the aperture plus an overhead (``overhead_s`` below: a model
figure for auto-zero off and this driver's settings -- calibrate it on the bench with a
long trace's REL timestamps), so SimpleLoop's delay is ``interval - aperture - overhead``.
REL timestamps are relative to the first reading; SOURSTAT bit 5 (32, STAT_LIMIT) marks a
reading whose source was limited by the current limit (2450 Reference Manual,
:TRACe:DATA? and bufferVar.sourcestatuses).  ``:MEAS:VOLT?`` makes voltage the active measure
function (:MEASure:<function>?), so traces set the function explicitly first.
"""
from __future__ import annotations

import numpy as np

from drivers.errors import InstrumentError
from drivers.instruments.base import InstrumentRange, Smu, control, measurement, parse_bool, parse_floats


def _scpi_error(reply: str) -> tuple[int, str]:
    code, _, msg = reply.partition(",")
    return int(float(code)), msg.strip().strip('"').split(";")[0]


class ScpiSmu(Smu):
    """What the SCPI SMUs share: line frequency and the standard error queue."""

    def query_line_frequency(self) -> float:
        return float(self.ask(":SYST:LFR?"))

    def next_error(self) -> tuple[int, str]:
        reply = self.ask(":SYST:ERR?")
        try:
            return _scpi_error(reply)
        except ValueError:
            raise InstrumentError(f"{self.label}: unparsable error-queue reply {reply!r}") from None


class Keithley2450(ScpiSmu):
    family = "Keithley 2450"
    makers = ("KEITHLEY",)
    ranges = {"2450": InstrumentRange(max_voltage_v=210.0, max_current_a=1.05, min_current_limit_a=1e-9,
                                      nplc_min=0.01, nplc_max=10.0, buffer_points=100_000,
                                      min_interval_s=0.0, overhead_s=30e-6,
                                      trigger_lines=6)}
    buffer = "defbuffer1"

    source_voltage = control(":SOUR:VOLT?", ":SOUR:VOLT {value}", "Source level (V).",
                             validator=Smu._voltage_validator(), on_set=Smu._on_voltage)
    current_limit = control(":SOUR:VOLT:ILIM?", ":SOUR:VOLT:ILIM {value}",
                            "Current limit (compliance) of the voltage source (A).",
                            validator=Smu._current_validator(), on_set=Smu._on_limit)
    nplc = control(":SENS:CURR:NPLC?", ":SENS:CURR:NPLC {value}", "Current integration time (PLC).",
                   validator=Smu._nplc_validator(), on_set=Smu._on_nplc)
    output_enabled = measurement(":OUTP?", "Output state.", get_process=parse_bool)
    current = measurement(":MEAS:CURR?", "One current reading (A).")
    voltage = measurement(":MEAS:VOLT?", "One voltage reading (V).")

    def reset(self) -> None:
        self.write("*RST")
        self.write("*CLS")
        self._level_v = 0.0

    def _configure_source(self) -> None:
        self.write(":SOUR:FUNC VOLT")
        self.write(':SENS:FUNC "CURR"')

    def _write_output(self, on: bool) -> None:
        self.write(":OUTP ON" if on else ":OUTP OFF")

    def measure_current(self) -> float:
        return self.current

    def measure_voltage(self) -> float:
        return self.voltage

    def _probe(self) -> None:
        self.ask(":SYST:ERR:COUN?", timeout_s=self.probe_timeout_s)

    def in_compliance(self) -> bool:
        return parse_bool(self.ask(":SOUR:VOLT:ILIM:TRIP?"))

    def _arm(self, n_points: int, interval_s: float, trigger_line: int | None) -> None:
        delay = max(0.0, interval_s - self.aperture_s - self.range.overhead_s)
        self.write(':SENS:FUNC "CURR"')
        if trigger_line is None:
            self.write(f':TRAC:CLE "{self.buffer}"')
            self.write(f':TRIG:LOAD "SimpleLoop", {n_points}, {delay:.9g}, "{self.buffer}"')
        else:
            n = trigger_line
            self.write(f":DIG:LINE{n}:MODE TRIG, IN")
            self.write(f":TRIG:DIG{n}:IN:EDGE RIS")
            self.write(':TRIG:LOAD "Empty"')
            self.write(f':TRIG:BLOC:BUFF:CLE 1, "{self.buffer}"')
            self.write(f":TRIG:BLOC:WAIT 2, DIG{n}")
            self.write(f':TRIG:BLOC:MDIG 3, "{self.buffer}"')
            self.write(f":TRIG:BLOC:DEL:CONS 4, {delay:.9g}")
            self.write(f":TRIG:BLOC:BRAN:COUN 5, {n_points}, 3")
        self.write(":INIT")

    def _fetch(self, n_points: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.write("*WAI")
        reply = self.ask(f':TRAC:DATA? 1, {n_points}, "{self.buffer}", READ, REL, SOURSTAT', timeout_s=timeout_s)
        try:
            values = parse_floats(reply)
        except ValueError:
            raise InstrumentError(f"{self.label}: unparsable buffer data {reply[:60]!r}") from None
        if values.size != 3 * n_points:
            self.check_errors("buffer read")
            raise InstrumentError(f"{self.label}: expected {n_points} readings, got {values.size / 3:g}")
        status = values[2::3].astype(np.int64)
        return values[0::3].copy(), values[1::3].copy(), (status & 32) != 0
