"""Keithley 2600B series System SourceMeter (TSP: Lua statements; ``smua``/``smub``).

Dialogue for channel ``smuX`` (``smua`` = channel 1, ``smub`` = channel 2)::

    *IDN?                                   -> Keithley Instruments Inc., Model 2602B, <sn>, <fw>
    smuX.reset() ; errorqueue.clear() ; print(localnode.linefreq)
    smuX.source.func = smuX.OUTPUT_DCVOLTS
    smuX.source.limiti = <A>                (compliance, before output on)
    smuX.measure.nplc = <n>
    smuX.source.levelv = <V> ; smuX.source.output = smuX.OUTPUT_ON|OUTPUT_OFF
    print(smuX.measure.i()) ; print(smuX.measure.v()) ; print(smuX.measure.p())
    smuX.nvbuffer1.clear() ; smuX.nvbuffer1.collecttimestamps = 1
    smuX.measure.count = <N> ; smuX.measure.interval = <s> ; smuX.measure.overlappedi(smuX.nvbuffer1)
    waitcomplete() ; printbuffer(1, <N>, smuX.nvbuffer1.readings) ; printbuffer(1, <N>, smuX.nvbuffer1.timestamps)
    smuX.measure.count = 1
    hardware trigger on digital I/O line <n> instead (SMU trigger model, paced by timer 1):
      digio.trigger[<n>].mode = digio.TRIG_RISINGA ; smuX.nvbuffer1.clear()
      smuX.trigger.arm.stimulus = digio.trigger[<n>].EVENT_ID
      smuX.trigger.measure.i(smuX.nvbuffer1) ; smuX.trigger.measure.action = smuX.ENABLE
      smuX.trigger.count = <N> ; trigger.timer[1].delay = <s>
      smuX.trigger.measure.stimulus = trigger.timer[1].EVENT_ID ; smuX.trigger.initiate()
    printbuffer(1, <N>, smuX.nvbuffer1.statuses)   (bit 6, 64: source limited = compliance)
    print(smuX.source.compliance)           -> true while the source is in its limit
    print(errorqueue.count)                 (link probe while acquiring)
    print(errorqueue.next())                -> <code>\t<message>\t<severity>\t<node>

Timing: a reading takes the aperture plus an overhead (``overhead_s``, a model figure);
``measure.interval`` shorter than that is stretched by the instrument.  Timestamps are
absolute (since the timestamp origin); ``fetch_trace`` makes them relative to the first
reading (2600B Reference Manual, bufferVar.timestamps / bufferVar.statuses).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from drivers.errors import InstrumentError
from drivers.instruments.base import (InstrumentRange, Smu, control, measurement, parse_bool,
                                      parse_float, parse_floats)


def _k26(channels: int, vmax: float = 40.4, imax: float = 3.03) -> InstrumentRange:
    return InstrumentRange(max_voltage_v=vmax, max_current_a=imax, min_current_limit_a=10e-9,
                           nplc_min=0.001, nplc_max=25.0, buffer_points=60_000,
                           min_interval_s=0.0, channels=channels, max_interval_s=1.0, overhead_s=25e-6,
                           trigger_lines=14)


class Keithley2600(Smu):
    family = "Keithley 2600B"
    makers = ("KEITHLEY",)
    ranges = {"2601B": _k26(1), "2602B": _k26(2), "2604B": _k26(2),
              "2611B": _k26(1, 202.0, 1.515), "2612B": _k26(2, 202.0, 1.515), "2614B": _k26(2, 202.0, 1.515),
              "2634B": _k26(2, 202.0, 1.515), "2635B": _k26(1, 202.0, 1.515), "2636B": _k26(2, 202.0, 1.515)}

    source_voltage = control("print({smu}.source.levelv)", "{smu}.source.levelv = {value}",
                             "Source level (V).", validator=Smu._voltage_validator(),
                             on_set=Smu._on_voltage)
    current_limit = control("print({smu}.source.limiti)", "{smu}.source.limiti = {value}",
                            "Current limit (compliance) (A).", validator=Smu._current_validator(),
                            on_set=Smu._on_limit)
    nplc = control("print({smu}.measure.nplc)", "{smu}.measure.nplc = {value}", "Integration time (PLC).",
                   validator=Smu._nplc_validator(), on_set=Smu._on_nplc)
    output_enabled = measurement("print({smu}.source.output)", "Output state.", get_process=parse_bool)
    current = measurement("print({smu}.measure.i())", "One current reading (A).")
    voltage = measurement("print({smu}.measure.v())", "One voltage reading (V).")
    power = measurement("print({smu}.measure.p())", "One power reading (W).")

    @property
    def smu(self) -> str:
        return "smua" if self.channel == 1 else "smub"

    def fmt(self) -> dict[str, Any]:
        return {"smu": self.smu}

    def reset(self) -> None:
        self.write(f"{self.smu}.reset()")
        self.write("errorqueue.clear()")
        self._level_v = 0.0

    def query_line_frequency(self) -> float:
        return float(parse_float(self.ask("print(localnode.linefreq)")))

    def next_error(self) -> tuple[int, str]:
        reply = self.ask("print(errorqueue.next())")
        parts = reply.split("\t")
        try:
            code = int(float(parts[0]))
        except ValueError:
            raise InstrumentError(f"{self.label}: unparsable error-queue reply {reply!r}") from None
        return code, (parts[1] if len(parts) > 1 else "")

    def _configure_source(self) -> None:
        self.write(f"{self.smu}.source.func = {self.smu}.OUTPUT_DCVOLTS")

    def _write_output(self, on: bool) -> None:
        self.write(f"{self.smu}.source.output = {self.smu}.{'OUTPUT_ON' if on else 'OUTPUT_OFF'}")

    def measure_current(self) -> float:
        return self.current

    def measure_voltage(self) -> float:
        return self.voltage

    def measure_power(self) -> float:
        return self.power

    def _probe(self) -> None:
        self.ask("print(errorqueue.count)", timeout_s=self.probe_timeout_s)

    def in_compliance(self) -> bool:
        return parse_bool(self.ask(f"print({self.smu}.source.compliance)"))

    def _arm(self, n_points: int, interval_s: float, trigger_line: int | None) -> None:
        s = self.smu
        self.write(f"{s}.nvbuffer1.clear()")
        self.write(f"{s}.nvbuffer1.collecttimestamps = 1")
        if trigger_line is None:
            self.write(f"{s}.measure.count = {n_points}")
            self.write(f"{s}.measure.interval = {interval_s:.9g}")
            self.write(f"{s}.measure.overlappedi({s}.nvbuffer1)")
            return
        n = trigger_line
        self.write(f"digio.trigger[{n}].mode = digio.TRIG_RISINGA")
        self.write(f"{s}.trigger.arm.stimulus = digio.trigger[{n}].EVENT_ID")
        self.write(f"{s}.trigger.measure.i({s}.nvbuffer1)")
        self.write(f"{s}.trigger.measure.action = {s}.ENABLE")
        self.write(f"{s}.trigger.count = {n_points}")
        self.write(f"trigger.timer[1].delay = {interval_s:.9g}")
        self.write(f"{s}.trigger.measure.stimulus = trigger.timer[1].EVENT_ID")
        self.write(f"{s}.trigger.initiate()")

    def _fetch(self, n_points: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.smu
        self.write("waitcomplete()")
        try:
            current = parse_floats(self.ask(f"printbuffer(1, {n_points}, {s}.nvbuffer1.readings)",
                                            timeout_s=timeout_s))
            stamps = parse_floats(self.ask(f"printbuffer(1, {n_points}, {s}.nvbuffer1.timestamps)",
                                           timeout_s=timeout_s))
            status = parse_floats(self.ask(f"printbuffer(1, {n_points}, {s}.nvbuffer1.statuses)",
                                           timeout_s=timeout_s))
        except ValueError as exc:
            raise InstrumentError(f"{self.label}: unparsable buffer data {str(exc)!r}") from None
        self.write(f"{s}.measure.count = 1")
        if current.size != n_points or stamps.size != n_points or status.size != n_points:
            self.check_errors("buffer read")
            raise InstrumentError(f"{self.label}: expected {n_points} readings, got {current.size}")
        return current, stamps, (status.astype(np.int64) & 64) != 0
