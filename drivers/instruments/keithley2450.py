"""Keithley 2450 SourceMeter (SCPI command set).

Dialogue (short forms)::

    *IDN?                                   -> KEITHLEY INSTRUMENTS,MODEL 2450,<sn>,<fw>
    *RST / *CLS ; :SYST:LFR?
    :SOUR:FUNC VOLT ; :SENS:FUNC "CURR"
    :SOUR:VOLT:ILIM <A>                     (compliance, before output on)
    :SENS:CURR:NPLC <n>
    :SOUR:VOLT <V> ; :OUTP ON|OFF ; :OUTP?
    :MEAS:CURR? ; :MEAS:VOLT?
    :TRAC:CLE "defbuffer1" ; :TRIG:LOAD "SimpleLoop", <N>, <delay s>, "defbuffer1" ; :INIT
    *WAI ; :TRAC:DATA? 1, <N>, "defbuffer1", READ, REL
    :SYST:ERR?                              -> <code>,"<message>"
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
                                      min_interval_s=0.0)}
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

    def _arm(self, n_points: int, interval_s: float) -> None:
        delay = max(0.0, interval_s - self.aperture_s)
        self.write(f':TRAC:CLE "{self.buffer}"')
        self.write(f':TRIG:LOAD "SimpleLoop", {n_points}, {delay:.9g}, "{self.buffer}"')
        self.write(":INIT")

    def _fetch(self, n_points: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        self.write("*WAI")
        reply = self.ask(f':TRAC:DATA? 1, {n_points}, "{self.buffer}", READ, REL', timeout_s=timeout_s)
        try:
            values = parse_floats(reply)
        except ValueError:
            raise InstrumentError(f"{self.label}: unparsable buffer data {reply[:60]!r}") from None
        if values.size != 2 * n_points:
            self.check_errors("buffer read")
            raise InstrumentError(f"{self.label}: expected {n_points} readings, got {values.size / 2:g}")
        return values[0::2].copy(), values[1::2].copy()
