"""Keysight (Agilent) B2900 series SMU, one or two channels (SCPI).

Dialogue for channel ``c`` (short forms)::

    *IDN?                                   -> Keysight Technologies,B2902A,<sn>,<fw>
    *CLS ; :OUTP<c> OFF ; :SOUR<c>:VOLT 0   (no *RST: it would reset the other channel)
    :SYST:LFR?
    :SOUR<c>:FUNC:MODE VOLT ; :SENS<c>:FUNC "CURR"
    :SENS<c>:CURR:PROT <A>                  (compliance, before output on)
    :SENS<c>:CURR:NPLC <n>
    :SOUR<c>:VOLT <V> ; :OUTP<c> ON|OFF ; :OUTP<c>?
    :MEAS:CURR? (@<c>) ; :MEAS:VOLT? (@<c>)
    :ARM<c>:ACQ:SOUR AINT | EXT<n>          (EXT<n>: wait for a trigger at input line n)
    :TRIG<c>:ACQ:SOUR TIM ; :TRIG<c>:ACQ:TIM <s> ; :TRIG<c>:ACQ:COUN <N> ; :INIT:ACQ (@<c>)
    :SYST:ERR:COUN?                         (link probe while acquiring)
    *OPC? ; :FETC:ARR:CURR? (@<c>) ; :FETC:ARR:TIME? (@<c>) ; :FETC:ARR:STAT? (@<c>)
    :SENS<c>:CURR:PROT:TRIP?                -> 1 while the channel is in compliance
    :SYST:ERR?                              -> +<code>,"<message>"

Timing (B2900 User's Guide, measurement time; SCPI Command Reference table 4-5): one reading
takes the aperture plus an overhead, and a timer tick that arrives while a reading is still in
progress is lost ("Acquire Event Lost").  With the timer period equal to the aperture the
points come two periods apart, so this driver refuses (or, asked to, raises) an interval
below ``aperture + overhead_s`` (a model figure: calibrate on the bench from a long trace's
timestamps).  ``:FETC:ARR:TIME?`` timestamps are absolute (since the timer was reset);
``fetch_trace`` makes them relative to the first reading.  ``:FETC:ARR:STAT?`` status words
carry compliance in bits 1-2 (table 1-2, "Bit definitions of status data").
"""
from __future__ import annotations

from typing import Any

import numpy as np

from drivers.errors import InstrumentError
from drivers.instruments.base import InstrumentRange, Smu, control, measurement, parse_bool, parse_floats
from drivers.instruments.keithley2450 import ScpiSmu


def _b29(channels: int) -> InstrumentRange:
    return InstrumentRange(max_voltage_v=210.0, max_current_a=1.515, min_current_limit_a=1e-9,
                           nplc_min=4e-4, nplc_max=100.0, buffer_points=100_000,
                           min_interval_s=1e-5, channels=channels, max_interval_s=1e5, overhead_s=20e-6,
                           trigger_lines=14)


class KeysightB2900(ScpiSmu):
    family = "Keysight B2900"
    makers = ("KEYSIGHT", "AGILENT")
    ranges = {"B2901A": _b29(1), "B2902A": _b29(2), "B2911A": _b29(1), "B2912A": _b29(2),
              "B2901B": _b29(1), "B2902B": _b29(2), "B2911B": _b29(1), "B2912B": _b29(2)}

    source_voltage = control(":SOUR{ch}:VOLT?", ":SOUR{ch}:VOLT {value}", "Source level (V).",
                             validator=Smu._voltage_validator(), on_set=Smu._on_voltage)
    current_limit = control(":SENS{ch}:CURR:PROT?", ":SENS{ch}:CURR:PROT {value}",
                            "Current compliance (A).", validator=Smu._current_validator(),
                            on_set=Smu._on_limit)
    nplc = control(":SENS{ch}:CURR:NPLC?", ":SENS{ch}:CURR:NPLC {value}", "Integration time (PLC).",
                   validator=Smu._nplc_validator(), on_set=Smu._on_nplc)
    output_enabled = measurement(":OUTP{ch}?", "Output state.", get_process=parse_bool)
    current = measurement(":MEAS:CURR? (@{ch})", "One current reading (A).")
    voltage = measurement(":MEAS:VOLT? (@{ch})", "One voltage reading (V).")

    def fmt(self) -> dict[str, Any]:
        return {"ch": self.channel}

    def reset(self) -> None:
        self.write("*CLS")
        self.write(f":OUTP{self.channel} OFF")
        self.write(f":SOUR{self.channel}:VOLT 0")
        self._level_v = 0.0

    def _configure_source(self) -> None:
        self.write(f":SOUR{self.channel}:FUNC:MODE VOLT")
        self.write(f':SENS{self.channel}:FUNC "CURR"')

    def _write_output(self, on: bool) -> None:
        self.write(f":OUTP{self.channel} {'ON' if on else 'OFF'}")

    def measure_current(self) -> float:
        return self.current

    def measure_voltage(self) -> float:
        return self.voltage

    def _probe(self) -> None:
        self.ask(":SYST:ERR:COUN?", timeout_s=self.probe_timeout_s)

    def in_compliance(self) -> bool:
        return parse_bool(self.ask(f":SENS{self.channel}:CURR:PROT:TRIP?"))

    def _arm(self, n_points: int, interval_s: float, trigger_line: int | None) -> None:
        c = self.channel
        self.write(f":ARM{c}:ACQ:SOUR {'AINT' if trigger_line is None else f'EXT{trigger_line}'}")
        self.write(f":TRIG{c}:ACQ:SOUR TIM")
        self.write(f":TRIG{c}:ACQ:TIM {interval_s:.9g}")
        self.write(f":TRIG{c}:ACQ:COUN {n_points}")
        self.write(f":INIT:ACQ (@{c})")

    def _fetch(self, n_points: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.channel
        done = self.ask("*OPC?", timeout_s=timeout_s)
        if done.strip().lstrip("+") != "1":
            raise InstrumentError(f"{self.label}: unparsable *OPC? reply {done!r}")
        try:
            current = parse_floats(self.ask(f":FETC:ARR:CURR? (@{c})", timeout_s=timeout_s))
            times = parse_floats(self.ask(f":FETC:ARR:TIME? (@{c})", timeout_s=timeout_s))
            status = parse_floats(self.ask(f":FETC:ARR:STAT? (@{c})", timeout_s=timeout_s))
        except ValueError as exc:
            raise InstrumentError(f"{self.label}: unparsable buffer data {str(exc)!r}") from None
        if current.size != n_points or times.size != n_points or status.size != n_points:
            self.check_errors("buffer read")
            raise InstrumentError(f"{self.label}: expected {n_points} readings, got {current.size}")
        return current, times, (status.astype(np.int64) & 6) != 0
