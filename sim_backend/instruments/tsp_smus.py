"""Simulated Keithley 2600B series (TSP): the Lua statements the driver uses.

Accepted statement forms (``smuX`` = ``smua`` or ``smub`` when the model has it)::

    *IDN?   reset()   smuX.reset()   errorqueue.clear()   waitcomplete()   smuX.abort()
    smuX.<attr> = <number | smuX.CONSTANT>     (source.levelv, source.limiti, source.func,
        source.output, measure.nplc, measure.count, measure.interval, nvbuffer1.collecttimestamps, ...)
    print(<expr>)   expr: smuX.<attr>, smuX.measure.i() / v() / p(), errorqueue.count,
        errorqueue.next(), localnode.linefreq, localnode.model, smuX.nvbuffer1.n
    smuX.nvbuffer1.clear()   smuX.measure.overlappedi(smuX.nvbuffer1)
    printbuffer(<a>, <b>, smuX.nvbuffer1.readings | .timestamps)

Hardware trigger (2600B Reference Manual, "Triggering" / "Digital I/O" and the SMU trigger
model)::

    digio.trigger[<n>].mode = digio.TRIG_RISINGA
    smuX.trigger.arm.stimulus = digio.trigger[<n>].EVENT_ID
    smuX.trigger.measure.i(smuX.nvbuffer1) ; smuX.trigger.measure.action = smuX.ENABLE
    smuX.trigger.count = <N> ; trigger.timer[1].delay = <s>
    smuX.trigger.measure.stimulus = trigger.timer[1].EVENT_ID ; smuX.trigger.initiate()

waits for the board's trigger line, then takes N readings paced by the timer.  A reading
takes aperture + overhead; a timer event arriving earlier waits (``stretch``, see
channel.py).  ``print(smuX.source.compliance)`` is ``true`` while the source is in its
limit; ``printbuffer(..., smuX.nvbuffer1.statuses)`` has bit 6 (64, "source function was
limited because the complementary function would be over the compliance limit") per
reading (bufferVar.statuses).  Timestamps are absolute (seconds since the timestamp origin,
here the world's start).

Anything else is a Lua syntax/runtime error in the error queue (-285 / -286); out-of-range
values are 1102 "Parameter too big" / 1103 "Parameter too small".
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from sim_backend.instruments.channel import SimChannel, point_spacing
from sim_backend.instruments.server import InstrumentServer, parse_number

_CONST = {"OUTPUT_ON": 1.0, "OUTPUT_OFF": 0.0, "OUTPUT_DCVOLTS": 1.0, "OUTPUT_DCAMPS": 0.0,
          "AUTORANGE_ON": 1.0, "AUTORANGE_OFF": 0.0, "ENABLE": 1.0, "DISABLE": 0.0}
_ATTRS = ("source.levelv", "source.limiti", "source.func", "source.output", "measure.nplc",
          "measure.count", "measure.interval", "nvbuffer1.collecttimestamps", "source.rangev",
          "source.autorangev", "measure.autorangei", "measure.rangei", "nvbuffer1.appendmode")
_RX_ASSIGN = re.compile(r"^(smu[ab])\.([a-z0-9_.]+)\s*=\s*(\S+)$")
_RX_PRINT = re.compile(r"^print\((.*)\)$")
_RX_PRINTBUF = re.compile(r"^printbuffer\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(smu[ab])\.nvbuffer1\.(readings|timestamps|statuses)\s*\)$")
_RX_DIGIO = re.compile(r"^digio\.trigger\[(\d+)\]\.mode\s*=\s*digio\.TRIG_(RISINGA|RISINGM|FALLING|EITHER|BYPASS)$")
_RX_TIMER = re.compile(r"^trigger\.timer\[1\]\.delay\s*=\s*(\S+)$")
_RX_TRIG = re.compile(r"^(smu[ab])\.trigger\.(arm\.stimulus|measure\.action|count|measure\.stimulus)\s*=\s*(\S+)$")
_RX_TRIG_CALL = re.compile(r"^(smu[ab])\.trigger\.(initiate\(\)|measure\.i\(\s*(smu[ab])\.nvbuffer1\s*\))$")
_RX_CALL = re.compile(r"^(smu[ab])\.(reset|abort|nvbuffer1\.clear)\(\)$")
_RX_OVERLAP = re.compile(r"^(smu[ab])\.measure\.overlappedi\(\s*(smu[ab])\.nvbuffer1\s*\)$")


def _num(v: float) -> str:
    return f"{v:.5e}"


class _Err(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


class Keithley2600Server(InstrumentServer):
    vmax, imax = 40.4, 3.03
    overhead_s = 25e-6

    def __init__(self, world: Any, rails: dict[int, str] | str, model: str = "2601B",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        if isinstance(rails, str):
            rails = {1: rails}
        self.model = model
        self.idn = f"Keithley Instruments Inc., Model {model}, 4471234, 4.0.4"
        self.world = world
        n_ch = 1 if model[3] in "15" and model != "2604B" and model != "2614B" else 2
        self.smus: dict[str, SimChannel] = {}
        for ch, rail in rails.items():
            if ch > n_ch:
                raise ValueError(f"{model} has {n_ch} channel(s)")
            self.smus["smua" if ch == 1 else "smub"] = SimChannel(
                world, rail, max_voltage_v=self.vmax, max_current_a=self.imax,
                min_current_limit_a=10e-9, nplc_range=(0.001, 25.0), overhead_s=self.overhead_s)
        self.n_channels = n_ch
        self.meta: dict[str, dict[str, float]] = {k: {"count": 1.0, "interval": 0.0, "stamps": 0.0}
                                                  for k in self.smus}
        for c in self.smus.values():
            c.limit_a = 0.1  # 2600B default limiti
        self.digio: dict[int, str] = {}
        self.timer_delay_s = 10e-6
        self.trig: dict[str, dict[str, Any]] = {k: {} for k in self.smus}
        listeners = getattr(world, "trigger_listeners", None)
        if listeners is not None:
            listeners.append(self._on_trigger)

    def _on_trigger(self, t_s: float) -> None:
        for c in self.smus.values():
            c.on_trigger(t_s)

    def _unsubscribe(self) -> None:
        listeners = getattr(self.world, "trigger_listeners", None)
        if listeners is not None and self._on_trigger in listeners:
            listeners.remove(self._on_trigger)

    def stop(self) -> None:
        self._unsubscribe()
        super().stop()

    def kill(self) -> None:
        self._unsubscribe()
        super().kill()

    @property
    def channels(self) -> dict[int, SimChannel]:
        return {1 if k == "smua" else 2: v for k, v in self.smus.items()}

    def _smu(self, name: str) -> SimChannel:
        if name not in self.smus:
            if name == "smub" and self.n_channels == 1:
                raise _Err(-286, "TSP Runtime error at line 1: attempt to index global `smub' (a nil value)")
            raise _Err(-286, f"TSP Runtime error at line 1: {name} is not connected to a rail")
        return self.smus[name]

    def handle(self, line: str) -> str | None:
        try:
            return self._statement(line.strip())
        except _Err as e:
            self.errors.push(e.code, e.msg)
            return None

    def _statement(self, s: str) -> str | None:
        if s == "*IDN?":
            return self.idn
        if s in ("*RST", "reset()"):
            for name, c in self.smus.items():
                c.reset()
                c.limit_a = 0.1
                self.meta[name] = {"count": 1.0, "interval": 0.0, "stamps": 0.0}
            return None
        if s in ("*CLS", "errorqueue.clear()"):
            self.errors.clear()
            return None
        if s in ("waitcomplete()", "*WAI"):
            for c in self.smus.values():
                c.complete()
            return None
        if s == "*OPC?":
            for c in self.smus.values():
                c.complete()
            return "1"
        m = _RX_CALL.match(s)
        if m:
            c = self._smu(m.group(1))
            if m.group(2) == "reset":
                c.reset()
                c.limit_a = 0.1
                self.meta[m.group(1)] = {"count": 1.0, "interval": 0.0, "stamps": 0.0}
            else:  # abort / nvbuffer1.clear
                c.acq = None
            return None
        m = _RX_DIGIO.match(s)
        if m:
            line = int(m.group(1))
            if not 1 <= line <= 14:
                raise _Err(-286, "TSP Runtime error at line 1: digio trigger line out of range")
            self.digio[line] = m.group(2)
            return None
        m = _RX_TIMER.match(s)
        if m:
            v = self._value("", m.group(1))
            self._check(v, 1e-6, 1e5)
            self.timer_delay_s = v
            return None
        m = _RX_TRIG.match(s)
        if m:
            self._smu(m.group(1))
            self.trig[m.group(1)][m.group(2)] = m.group(3)
            return None
        m = _RX_TRIG_CALL.match(s)
        if m:
            name = m.group(1)
            c = self._smu(name)
            if m.group(2).startswith("measure.i"):
                self.trig[name]["buffer"] = m.group(3)
                return None
            self._initiate(name, c)
            return None
        m = _RX_OVERLAP.match(s)
        if m:
            if m.group(1) != m.group(2):
                raise _Err(-286, "TSP Runtime error at line 1: buffer belongs to another SMU")
            c, meta = self._smu(m.group(1)), self.meta[m.group(1)]
            c.arm(int(meta["count"]), point_spacing(meta["interval"], c.measure_s, "stretch"))
            return None
        m = _RX_ASSIGN.match(s)
        if m:
            self._assign(m.group(1), m.group(2), m.group(3))
            return None
        m = _RX_PRINTBUF.match(s)
        if m:
            return self._printbuffer(int(m.group(1)), int(m.group(2)), m.group(3), m.group(4))
        m = _RX_PRINT.match(s)
        if m:
            return self._print(m.group(1).strip())
        raise _Err(-285, f"TSP Syntax error at line 1: unexpected symbol near `{s[:20]}'")

    def _initiate(self, name: str, c: SimChannel) -> None:
        """smuX.trigger.initiate(): the SMU trigger model armed as configured."""
        t = self.trig[name]
        stim = t.get("arm.stimulus", "0")
        m = re.fullmatch(r"digio\.trigger\[(\d+)\]\.EVENT_ID", stim)
        external = m is not None
        if external and self.digio.get(int(m.group(1)), "BYPASS") == "BYPASS":
            raise _Err(-286, f"TSP Runtime error: digio.trigger[{m.group(1)}] is not a trigger input")
        if t.get("buffer") != name or t.get("measure.action") != f"{name}.ENABLE":
            raise _Err(-286, "TSP Runtime error: no measure action into nvbuffer1 configured")
        count = int(self._value(name, t.get("count", "1")))
        self._check(count, 1, 60_000)
        paced = t.get("measure.stimulus") == "trigger.timer[1].EVENT_ID"
        interval = self.timer_delay_s if paced else 0.0
        c.arm(count, point_spacing(interval, c.measure_s, "stretch"), external=external)

    def _value(self, name: str, text: str) -> float:
        prefix = f"{name}."
        if text.startswith(prefix) and text[len(prefix):] in _CONST:
            return _CONST[text[len(prefix):]]
        try:
            return parse_number(text)
        except ValueError:
            raise _Err(-286, f"TSP Runtime error at line 1: attempt to assign {text!r}") from None

    def _check(self, v: float, lo: float, hi: float) -> None:
        if v > hi:
            raise _Err(1102, "Parameter too big")
        if v < lo:
            raise _Err(1103, "Parameter too small")

    def _assign(self, name: str, attr: str, text: str) -> None:
        c = self._smu(name)
        if attr not in _ATTRS:
            raise _Err(-286, f"TSP Runtime error at line 1: unknown attribute {name}.{attr}")
        v = self._value(name, text)
        if attr == "source.levelv":
            self._check(v, -self.vmax, self.vmax)
            c.level_v = v
        elif attr == "source.limiti":
            self._check(v, c.min_current_limit_a, self.imax)
            c.limit_a = v
        elif attr == "source.func":
            c.source_func = "VOLT" if v else "CURR"
        elif attr == "source.output":
            c.set_output(bool(v))
        elif attr == "measure.nplc":
            self._check(v, *c.nplc_range)
            c.nplc = v
        elif attr == "measure.count":
            self._check(v, 1, 60_000)
            self.meta[name]["count"] = float(int(v))
        elif attr == "measure.interval":
            self._check(v, 0.0, 1.0)
            self.meta[name]["interval"] = v
        elif attr == "nvbuffer1.collecttimestamps":
            self.meta[name]["stamps"] = v

    def _print(self, expr: str) -> str:
        if expr == "errorqueue.count":
            return _num(len(self.errors))
        if expr == "errorqueue.next()":
            code, msg = self.errors.pop()
            if code == 0:
                msg = "Queue Is Empty"
            return f"{_num(code)}\t{msg}\t{_num(0 if code == 0 else 2)}\t{_num(0)}"
        if expr == "localnode.linefreq":
            return _num(next(iter(self.smus.values())).line_frequency_hz)
        if expr == "localnode.model":
            return self.model
        m = re.fullmatch(r"(smu[ab])\.measure\.([ivp])\(\)", expr)
        if m:
            c = self._smu(m.group(1))
            i, v = c.read()
            return _num({"i": i, "v": v, "p": i * v}[m.group(2)])
        m = re.fullmatch(r"(smu[ab])\.([a-z0-9_.]+)", expr)
        if m:
            name, attr = m.groups()
            c = self._smu(name)
            if attr == "source.compliance":
                return "true" if (c.in_limit_now() or c.last_compliance) else "false"
            if attr == "nvbuffer1.n":
                return _num(c.count_while_waiting())
            values = {"source.levelv": c.level_v, "source.limiti": c.limit_a,
                      "source.output": float(c.output), "measure.nplc": c.nplc,
                      "source.func": 1.0 if c.source_func == "VOLT" else 0.0,
                      "measure.count": self.meta[name]["count"],
                      "measure.interval": self.meta[name]["interval"]}
            if attr in values:
                return _num(values[attr])
        raise _Err(-286, f"TSP Runtime error at line 1: cannot evaluate {expr[:30]!r}")

    def _printbuffer(self, a: int, b: int, name: str, what: str) -> str:
        c = self._smu(name)
        vals, times, comp = c.buffer()
        if not 1 <= a <= b <= len(vals):
            raise _Err(-286, "TSP Runtime error at line 1: index out of range")
        data = {"readings": vals, "timestamps": times,
                "statuses": np.where(comp, 64.0, 0.0)}[what][a - 1:b]
        return ", ".join(map(repr, np.asarray(data, dtype=float).tolist()))

    def state(self, channel: int = 1) -> dict[str, Any]:
        c = self.channels[channel]
        return {"output": c.output, "level_v": c.level_v, "limit_a": c.limit_a, "nplc": c.nplc,
                "rail": c.rail, "errors": list(self.errors.q)}
