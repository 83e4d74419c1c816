"""Simulated SCPI SMUs: Keithley 2450 and Keysight B2900 series (B2901A / B2902A).

Implements the subset the drivers in ``drivers/instruments`` use, with real state
machines: output state, source level, current limit with compliance, integration time,
error queue (unknown header -113, out-of-range -222, bad data -104/-224, suffix -114),
trigger model and reading buffer in chip time.  See ``channel.py`` for the physics.

Behaviour that follows the makers' manuals (and that a driver written against this
project's own assumptions would get wrong):

- Measurement time = aperture + overhead (``channel.point_spacing``).  B2900: timer ticks
  arriving while a reading is in progress are lost (SCPI Command Reference, table 4-5
  "Acquire Event Lost"), so with ``:TRIG:ACQ:TIM`` equal to the aperture the points come two
  timer periods apart.  2450 SimpleLoop: each reading is aperture + overhead + delay apart.
- Timestamps: B2900 ``:FETC:ARR:TIME?`` is absolute (since the timer reset, here the start of
  the world); 2450 ``:TRAC:DATA? ..., REL`` is relative to the first reading (2450 Reference
  Manual, :TRACe:DATA?, element RELative).
- Compliance: 2450 ``:SOUR:VOLT:ILIM:TRIP?`` (limit tripped now) and the buffer element
  ``SOURSTAT`` whose bit 5 (32, STAT_LIMIT) marks a reading whose source was limited (2450
  Reference Manual, bufferVar.sourcestatuses / :TRACe:DATA?); B2900 ``:FETC:ARR:STAT?``
  status words whose bits 1-2 (2/4/6) mark compliance (B2900 SCPI Command Reference, table 1-2
  "Bit definitions of status data") and ``:SENS:CURR:PROT:TRIP?`` for the present state.
- 2450 ``:MEAS:VOLT?`` / ``:MEAS:CURR?`` switch the active measure function (2450 Reference
  Manual, :MEASure?): a buffered trace started afterwards stores that function's readings.
- Hardware trigger inputs: 2450 digital I/O line as a trigger input in a trigger model
  (``:DIG:LINE<n>:MODE TRIG, IN``, ``:TRIG:BLOC:WAIT <b>, DIG<n>``); B2900 arm source
  ``:ARM:ACQ:SOUR EXT<n>`` (the acquisition waits for a trigger on the external input, then
  runs its timer-paced count).  The board's trigger reaches them through ``world.trigger``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sim_backend.instruments.channel import SimChannel, point_spacing
from sim_backend.instruments.server import (InstrumentServer, channel_list, parse_number, parse_onoff,
                                            parse_scpi, scpi_args, split_commands)

E_UNDEFINED = (-113, "Undefined header")
E_RANGE = (-222, "Parameter data out of range")
E_DATATYPE = (-104, "Data type error")
E_ILLEGAL = (-224, "Illegal parameter value")
E_SUFFIX = (-114, "Header suffix out of range")
E_MISSING = (-109, "Missing parameter")


class _Err(Exception):
    def __init__(self, err: tuple[int, str]) -> None:
        super().__init__(err[1])
        self.err = err


def _num(args: list[str], i: int = 0) -> float:
    if len(args) <= i:
        raise _Err(E_MISSING)
    try:
        return parse_number(args[i])
    except ValueError:
        raise _Err(E_DATATYPE) from None


def _fmt(v: float) -> str:
    return f"{v:+.6E}"


class ScpiSmuServer(InstrumentServer):
    """Common SCPI behaviour; subclasses fill ``self.table`` with header -> handler."""

    idn = ""
    vmax = 210.0
    imax = 1.05
    nplc_range = (0.01, 10.0)

    overhead_s = 0.0
    """Per-reading overhead on top of the aperture (model value, see channel.py)."""
    lineless: frozenset[str] = frozenset()
    """Headers whose numeric suffix is a line / block number, not a channel."""

    def __init__(self, world: Any, rails: dict[int, str], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.world = world
        self.channels = {ch: SimChannel(world, rail, max_voltage_v=self.vmax, max_current_a=self.imax,
                                        nplc_range=self.nplc_range, overhead_s=self.overhead_s)
                         for ch, rail in rails.items()}
        self.table: dict[str, Callable[[SimChannel, list[str], str], str | None]] = {}
        self._suffix: int | None = None
        self._common()
        listeners = getattr(world, "trigger_listeners", None)
        if listeners is not None:     # the board's trigger line, wired to this instrument's input
            listeners.append(self._on_trigger)

    def _on_trigger(self, t_s: float) -> None:
        for c in self.channels.values():
            c.on_trigger(t_s)

    def stop(self) -> None:
        listeners = getattr(self.world, "trigger_listeners", None)
        if listeners is not None and self._on_trigger in listeners:
            listeners.remove(self._on_trigger)
        super().stop()

    def kill(self) -> None:
        listeners = getattr(self.world, "trigger_listeners", None)
        if listeners is not None and self._on_trigger in listeners:
            listeners.remove(self._on_trigger)
        super().kill()

    # ---- dispatch -------------------------------------------------------------------------
    def handle(self, line: str) -> str | None:
        replies = []
        for cmd in split_commands(line):
            r = self._one(cmd)
            if r is not None:
                replies.append(r)
        return ";".join(replies) if replies else None

    def _one(self, cmd: str) -> str | None:
        key, suffix, raw = parse_scpi(cmd)
        fn = self.table.get(key)
        if fn is None:
            self.errors.push(*E_UNDEFINED)
            return None
        chans = channel_list(raw)
        self._suffix = suffix
        ch = suffix if suffix is not None else (chans[0] if chans else 1)
        if key.startswith("*") or key in self.lineless:
            ch = chans[0] if chans and not key.startswith("*") else 1
        if ch not in self.channels:
            self.errors.push(*E_SUFFIX)
            return None
        try:
            return fn(self.channels[ch], scpi_args(raw.split("(@")[0].strip().rstrip(",")), raw)
        except _Err as e:
            self.errors.push(*e.err)
            return None

    # ---- common commands ------------------------------------------------------------------
    def _common(self) -> None:
        t = self.table
        t["*IDN?"] = lambda c, a, r: self.idn
        t["*RST"] = lambda c, a, r: self._reset()
        t["*CLS"] = lambda c, a, r: self.errors.clear()
        t["*WAI"] = lambda c, a, r: self._complete_all()
        t["*OPC?"] = lambda c, a, r: (self._complete_all(), "1")[1]
        t["*OPC"] = lambda c, a, r: None
        t["SYST:ERR?"] = lambda c, a, r: self._error()
        t["SYST:ERR:COUN?"] = lambda c, a, r: f"{len(self.errors):+d}"
        t["SYST:LFR?"] = lambda c, a, r: self._lfr(c)
        # source level, integration time, output and single readings: the same headers on both
        # SCPI families (channel suffixes are stripped before lookup)
        t["SOUR:VOLT"] = lambda c, a, r: self._set_level(c, a)
        t["SOUR:VOLT?"] = lambda c, a, r: _fmt(c.level_v)
        t["SENS:CURR:NPLC"] = lambda c, a, r: self._set_nplc(c, a)
        t["SENS:CURR:NPLC?"] = lambda c, a, r: _fmt(c.nplc)
        t["OUTP"] = lambda c, a, r: self._set_output(c, a)
        t["OUTP?"] = lambda c, a, r: "1" if c.output else "0"
        t["MEAS:CURR?"] = lambda c, a, r: _fmt(c.read()[0])
        t["MEAS:VOLT?"] = lambda c, a, r: _fmt(c.read()[1])

    def _lfr(self, c: SimChannel) -> str:
        return f"{c.line_frequency_hz:g}"

    def _error(self) -> str:
        code, msg = self.errors.pop()
        return f'{code},"{msg}"'

    def _reset(self) -> None:
        for c in self.channels.values():
            c.reset()

    def _complete_all(self) -> None:
        for c in self.channels.values():
            c.complete()

    # ---- helpers for subclasses --------------------------------------------------------------
    def _set_level(self, c: SimChannel, a: list[str]) -> None:
        v = _num(a)
        if abs(v) > self.vmax:
            raise _Err(E_RANGE)
        c.level_v = v

    def _set_limit(self, c: SimChannel, a: list[str]) -> None:
        v = _num(a)
        if not c.min_current_limit_a <= v <= self.imax:
            raise _Err(E_RANGE)
        c.limit_a = v

    def _set_nplc(self, c: SimChannel, a: list[str]) -> None:
        v = _num(a)
        if not self.nplc_range[0] <= v <= self.nplc_range[1]:
            raise _Err(E_RANGE)
        c.nplc = v

    def _set_output(self, c: SimChannel, a: list[str]) -> None:
        if not a:
            raise _Err(E_MISSING)
        try:
            c.set_output(parse_onoff(a[0]))
        except ValueError:
            raise _Err(E_ILLEGAL) from None

    def _func(self, a: list[str], allowed: tuple[str, ...]) -> str:
        if not a:
            raise _Err(E_MISSING)
        f = a[0].strip('"').upper()
        f = {"VOLTAGE": "VOLT", "CURRENT": "CURR", "CURR:DC": "CURR", "VOLT:DC": "VOLT"}.get(f, f)
        if f not in allowed:
            raise _Err(E_ILLEGAL)
        return f

    def state(self, channel: int = 1) -> dict[str, Any]:
        c = self.channels[channel]
        return {"output": c.output, "level_v": c.level_v, "limit_a": c.limit_a, "nplc": c.nplc,
                "rail": c.rail, "errors": list(self.errors.q)}


class Keithley2450Server(ScpiSmuServer):
    model = "2450"
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04412345,1.7.12b"
    vmax, imax, nplc_range = 210.0, 1.05, (0.01, 10.0)
    overhead_s = 30e-6
    lineless = frozenset({"DIG:LINE:MODE", "TRIG:DIG:IN:EDGE"})

    def __init__(self, world: Any, rail: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(world, {1: rail}, host, port)
        self._trigger: tuple[int, float] | None = None
        self.sense_func = "CURR"
        self.dig_modes: dict[int, str] = {}
        self.blocks: dict[int, tuple[str, list[str]]] = {}
        t = self.table
        t["SOUR:FUNC"] = lambda c, a, r: setattr(c, "source_func", self._func(a, ("VOLT", "CURR")))
        t["SOUR:FUNC?"] = lambda c, a, r: c.source_func
        t["SENS:FUNC"] = lambda c, a, r: setattr(self, "sense_func", self._func(a, ("VOLT", "CURR")))
        t["SENS:FUNC?"] = lambda c, a, r: f'"{self.sense_func}:DC"'
        t["SOUR:VOLT:ILIM"] = lambda c, a, r: self._set_limit(c, a)
        t["SOUR:VOLT:ILIM?"] = lambda c, a, r: _fmt(c.limit_a)
        t["READ?"] = lambda c, a, r: _fmt(c.read()[0 if self.sense_func == "CURR" else 1])
        # :MEASure:<function>? makes <function> the active measure function (2450 Reference
        # Manual, :MEASure:<function>?), so a later buffered trace stores that function
        t["MEAS:CURR?"] = lambda c, a, r: self._measure(c, "CURR")
        t["MEAS:VOLT?"] = lambda c, a, r: self._measure(c, "VOLT")
        t["SOUR:VOLT:ILIM:TRIP?"] = lambda c, a, r: "1" if c.in_limit_now() or c.last_compliance else "0"
        t["DIG:LINE:MODE"] = lambda c, a, r: self._dig_mode(a)
        t["TRIG:DIG:IN:EDGE"] = lambda c, a, r: self._dig_edge(a)
        t["TRIG:BLOC:BUFF:CLE"] = lambda c, a, r: self._block(a, "BUFF:CLE")
        t["TRIG:BLOC:WAIT"] = lambda c, a, r: self._block(a, "WAIT")
        t["TRIG:BLOC:MDIG"] = lambda c, a, r: self._block(a, "MDIG")
        t["TRIG:BLOC:DEL:CONS"] = lambda c, a, r: self._block(a, "DEL:CONS")
        t["TRIG:BLOC:BRAN:COUN"] = lambda c, a, r: self._block(a, "BRAN:COUN")
        t["TRAC:CLE"] = lambda c, a, r: self._trace_clear(c, a)
        t["TRAC:ACT?"] = lambda c, a, r: str(c.count_while_waiting())
        t["TRIG:LOAD"] = lambda c, a, r: self._trig_load(a)
        t["INIT"] = lambda c, a, r: self._init(c)
        t["ABOR"] = lambda c, a, r: setattr(c, "acq", None)
        t["TRAC:DATA?"] = lambda c, a, r: self._trace_data(c, a)

    def _buffer_name(self, text: str) -> None:
        if text.strip('"') not in ("defbuffer1", "defbuffer2"):
            raise _Err(E_ILLEGAL)

    def _trace_clear(self, c: SimChannel, a: list[str]) -> None:
        if a:
            self._buffer_name(a[0])
        c.acq = None

    def _measure(self, c: SimChannel, func: str) -> str:
        self.sense_func = func
        i, v = c.read()
        return _fmt(i if func == "CURR" else v)

    def _dig_mode(self, a: list[str]) -> None:
        line = self._suffix or 1
        if not 1 <= line <= 6 or len(a) < 2:
            raise _Err(E_SUFFIX if not 1 <= line <= 6 else E_MISSING)
        self.dig_modes[line] = f"{a[0].upper()},{a[1].upper()}"

    def _dig_edge(self, a: list[str]) -> None:
        line = self._suffix or 1
        if not 1 <= line <= 6 or not a or a[0].upper() not in ("RIS", "RISING", "FALL", "FALLING", "EITH", "EITHER"):
            raise _Err(E_ILLEGAL)

    def _block(self, a: list[str], kind: str) -> None:
        """One trigger-model block (2450 Reference Manual, section "Trigger model blocks")."""
        if not a:
            raise _Err(E_MISSING)
        num = int(_num(a, 0))
        if not 1 <= num <= 63:
            raise _Err(E_RANGE)
        if kind == "WAIT":
            ev = a[1].upper() if len(a) > 1 else ""
            if not ev.startswith("DIG") or not ev[3:].isdigit():
                raise _Err(E_ILLEGAL)
            line = int(ev[3:])
            if self.dig_modes.get(line) != "TRIG,IN":
                raise _Err((-221, "Settings conflict"))   # the line is not a trigger input
        self.blocks[num] = (kind, a[1:])
        self._trigger = None

    def _trig_load(self, a: list[str]) -> None:
        if a and a[0].strip('"') == "Empty":
            self.blocks = {}
            self._trigger = None
            return
        if not a or a[0].strip('"') != "SimpleLoop":
            raise _Err(E_ILLEGAL)
        n = _num(a, 1)
        delay = _num(a, 2) if len(a) > 2 else 0.0
        if len(a) > 3:
            self._buffer_name(a[3])
        if not (1 <= n <= 100_000 and float(n).is_integer()) or not 0 <= delay <= 1e4:
            raise _Err(E_RANGE)
        self._trigger = (int(n), delay)
        self.blocks = {}

    def _from_blocks(self) -> tuple[int, float, bool]:
        """(count, delay, waits for a digital input) of a block-built measure loop."""
        kinds = {k: (kind, args) for k, (kind, args) in self.blocks.items()}
        if not any(kind == "MDIG" for kind, _ in kinds.values()):
            raise _Err((-221, "Settings conflict"))
        delay = next((_num(args) for kind, args in kinds.values() if kind == "DEL:CONS"), 0.0)
        count = next((int(_num(args)) for kind, args in kinds.values() if kind == "BRAN:COUN"), 1)
        external = any(kind == "WAIT" for kind, _ in kinds.values())
        return max(1, count), delay, external

    def _init(self, c: SimChannel) -> None:
        if self.blocks:
            n, delay, external = self._from_blocks()
        elif self._trigger is None:
            n, delay, external = 1, 0.0, False
        else:
            (n, delay), external = self._trigger, False
        c.arm(n, point_spacing(delay, c.measure_s, "delay"), external=external, relative_stamps=True)
        c.acq.sense = self.sense_func  # type: ignore[union-attr]

    def _trace_data(self, c: SimChannel, a: list[str]) -> str | None:
        start, end = int(_num(a, 0)), int(_num(a, 1))
        if len(a) > 2:
            self._buffer_name(a[2])
        elems = [e.upper() for e in a[3:]] or ["READ"]
        vals, times, comp = c.buffer()
        if getattr(c.acq, "sense", "CURR") == "VOLT":     # the active function was voltage
            vals = np.full(len(vals), c.acq.level_v if (c.acq and c.acq.output) else 0.0)
        if not 1 <= start <= end <= len(vals):
            raise _Err(E_RANGE)
        cols = []
        for e in elems:
            if e in ("READ", "READING"):
                cols.append(vals[start - 1:end])
            elif e in ("REL", "RELATIVE"):
                cols.append(times[start - 1:end])
            elif e in ("SOUR", "SOURCE"):
                cols.append(np.full(end - start + 1, c.acq.level_v if c.acq else 0.0))
            elif e in ("SOURSTAT", "SOURSTATUS"):
                # bit 7 (128) output on, bit 5 (32) STAT_LIMIT: source limited by the compliance
                on = 128.0 if (c.acq is not None and c.acq.output) else 0.0
                cols.append(on + 32.0 * comp[start - 1:end].astype(np.float64))
            else:
                raise _Err(E_ILLEGAL)
        flat = np.column_stack(cols).ravel()
        return ",".join(map(repr, flat.tolist()))


class KeysightB2900Server(ScpiSmuServer):
    model = "B2901A"
    vmax, imax, nplc_range = 210.0, 1.515, (4e-4, 100.0)
    overhead_s = 20e-6

    def __init__(self, world: Any, rails: dict[int, str] | str, model: str = "B2901A",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if isinstance(rails, str):
            rails = {1: rails}
        self.model = model
        self.idn = f"Keysight Technologies,{model},MY51140111,3.4.2011.5100"
        super().__init__(world, rails, host, port)
        self._trig: dict[int, dict[str, Any]] = {ch: {"src": "AINT", "tim": 1e-3, "count": 1, "arm": "AINT"}
                                                 for ch in self.channels}
        self._trace: dict[int, dict[str, Any]] = {}
        t = self.table
        t["SOUR:FUNC:MODE"] = lambda c, a, r: setattr(c, "source_func", self._func(a, ("VOLT", "CURR")))
        t["SOUR:FUNC:MODE?"] = lambda c, a, r: c.source_func
        t["SENS:FUNC"] = lambda c, a, r: self._func(a, ("VOLT", "CURR")) and None
        t["SENS:CURR:PROT"] = lambda c, a, r: self._set_limit(c, a)
        t["SENS:CURR:PROT?"] = lambda c, a, r: _fmt(c.limit_a)
        t["SENS:CURR:APER"] = lambda c, a, r: self._set_aperture(c, a)
        t["SENS:CURR:APER?"] = lambda c, a, r: _fmt(c.aperture_s)
        for prefix in ("TRIG:ACQ", "TRIG"):
            t[f"{prefix}:SOUR"] = lambda c, a, r: self._trig_set(c, "src", a)
            t[f"{prefix}:TIM"] = lambda c, a, r: self._trig_set(c, "tim", a)
            t[f"{prefix}:COUN"] = lambda c, a, r: self._trig_set(c, "count", a)
            t[f"{prefix}:TIM?"] = lambda c, a, r: _fmt(self._trig[self._ch(c)]["tim"])
            t[f"{prefix}:COUN?"] = lambda c, a, r: f"+{self._trig[self._ch(c)]['count']}"
        t["ARM:ACQ:SOUR"] = lambda c, a, r: self._arm_source(c, a)
        t["ARM:SOUR"] = lambda c, a, r: self._arm_source(c, a)
        t["ARM:ACQ:SOUR?"] = lambda c, a, r: self._trig[self._ch(c)]["arm"]
        t["SENS:CURR:PROT:TRIP?"] = lambda c, a, r: "1" if c.in_limit_now() or c.last_compliance else "0"
        t["FETC:ARR:STAT?"] = lambda c, a, r: self._fetch(c, "STAT")
        # trace buffer, fed alongside the data buffer; only its count is used (SCPI Command
        # Reference, TRACe subsystem: :TRAC:FEED, :TRAC:FEED:CONT NEXT|NEV, :TRAC:POIN:ACT?)
        t["TRAC:FEED:CONT"] = lambda c, a, r: self._trace_set(c, "cont", a, ("NEV", "NEVER", "NEXT"))
        t["TRAC:FEED"] = lambda c, a, r: self._trace_set(c, "feed", a, ("SENS", "SENSE", "MATH", "LIM", "LIMIT"))
        t["TRAC:CLE"] = lambda c, a, r: None
        t["TRAC:POIN"] = lambda c, a, r: self._trace_set(c, "points", a, None)
        t["TRAC:POIN:ACT?"] = lambda c, a, r: self._trace_count(c)
        t["INIT:ACQ"] = lambda c, a, r: self._init(r)
        t["INIT"] = lambda c, a, r: self._init(r)
        t["ABOR"] = lambda c, a, r: setattr(c, "acq", None)
        t["FETC:ARR:CURR?"] = lambda c, a, r: self._fetch(c, "CURR")
        t["FETC:ARR:TIME?"] = lambda c, a, r: self._fetch(c, "TIME")

    def _lfr(self, c: SimChannel) -> str:
        return f"+{c.line_frequency_hz:g}"

    def _error(self) -> str:
        code, msg = self.errors.pop()
        return f'{code:+d},"{msg}"'

    def _ch(self, c: SimChannel) -> int:
        return next(k for k, v in self.channels.items() if v is c)

    def _set_aperture(self, c: SimChannel, a: list[str]) -> None:
        v = _num(a)
        if not 8e-6 <= v <= 2.0:
            raise _Err(E_RANGE)
        c.nplc = v * c.line_frequency_hz

    def _trig_set(self, c: SimChannel, what: str, a: list[str]) -> None:
        trig = self._trig[self._ch(c)]
        if what == "src":
            if not a or a[0].upper() not in ("AINT", "TIM", "BUS", "TIMER", "AUTO"):
                raise _Err(E_ILLEGAL)
            trig["src"] = "TIM" if a[0].upper().startswith("TIM") else a[0].upper()
        elif what == "tim":
            v = _num(a)
            if not 1e-5 <= v <= 1e5:
                raise _Err(E_RANGE)
            trig["tim"] = v
        else:
            v = _num(a)
            if not (1 <= v <= 100_000 and float(v).is_integer()):
                raise _Err(E_RANGE)
            trig["count"] = int(v)

    def _trace_set(self, c: SimChannel, what: str, a: list[str], allowed: tuple[str, ...] | None) -> None:
        tr = self._trace.setdefault(self._ch(c), {"cont": "NEV", "feed": "SENS", "points": 100_000})
        if allowed is None:
            v = _num(a)
            if not (1 <= v <= 100_000 and float(v).is_integer()):
                raise _Err(E_RANGE)
            tr[what] = int(v)
            return
        if not a or a[0].upper() not in allowed:
            raise _Err(E_ILLEGAL)
        tr[what] = a[0].upper()[:4]

    def _trace_count(self, c: SimChannel) -> str:
        tr = self._trace.get(self._ch(c), {})
        if tr.get("cont") != "NEXT":
            return "+0"
        return f"+{min(c.count_while_waiting(), int(tr.get('points', 100_000)))}"

    def _arm_source(self, c: SimChannel, a: list[str]) -> None:
        """Arm-layer event source: AINT (immediately) or EXT<n> (a trigger on input line n)."""
        src = a[0].upper() if a else ""
        if src in ("AINT", "AUTO", "BUS", "TIM", "TIMER"):
            self._trig[self._ch(c)]["arm"] = "AINT" if src == "AUTO" else src[:4]
        elif src.startswith("EXT") and src[3:].isdigit() and 1 <= int(src[3:]) <= 14:
            self._trig[self._ch(c)]["arm"] = src
        else:
            raise _Err(E_ILLEGAL)

    def _init(self, raw: str) -> None:
        chans = channel_list(raw) or [1]
        for ch in chans:
            if ch not in self.channels:
                raise _Err(E_SUFFIX)
        for ch in chans:
            trig, c = self._trig[ch], self.channels[ch]
            # timer-paced: a tick that arrives while a reading (aperture + overhead) is still
            # in progress is lost, the next reading waits for the next tick
            spacing = (point_spacing(trig["tim"], c.measure_s, "lost_ticks") if trig["src"] == "TIM"
                       else c.measure_s)
            c.arm(trig["count"], spacing, external=trig["arm"].startswith("EXT"))

    def _fetch(self, c: SimChannel, what: str) -> str | None:
        vals, times, comp = c.buffer()
        if c.acq is None or len(vals) == 0:
            raise _Err((-230, "Data corrupt or stale"))
        if what == "STAT":   # table 1-2: bits 1-2 compliance (2 = current limit reached)
            return ",".join(f"{int(x)}" for x in np.where(comp, 2, 0))
        data = vals if what == "CURR" else times
        return ",".join(map(repr, np.asarray(data, dtype=np.float64).tolist()))
