"""Station configuration: which chip and instruments, and the safety limits.

A station is a TOML file validated on load; every error names the file, the field, the
value and the limit.  With no file the built-in simulated bench is used (``chip.url =
"sim"``: a ``snnbench sim serve`` subprocess with the virtual chip and virtual SMUs).

Example (see ``bench/stations/lab_example.toml``)::

    [chip]
    url = "/dev/ttyUSB0"          # any pyserial URL; "sim" = built-in simulated bench
    timeout_s = 2.0

    [link]                        # model of the physical link, for modelled wall time
    baud = 3_000_000
    latency_s = 1e-3

    [limits]                      # nothing outside these ever reaches hardware
    v_set_max_v = 4.0

    [[smu]]
    resource = "TCPIP0::192.0.2.10::inst0::INSTR"
    model = "2450"
    rail = "VDDA"
    voltage_v = 1.8
    current_limit_a = 0.05
    trigger_line = 1              # the board's trigger output wired to digital I/O line 1
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from drivers.limits import ChipLimits as Limits


@dataclass(frozen=True)
class SmuConfig:
    """One SMU channel powering one supply rail."""

    resource: str
    model: str
    rail: str
    voltage_v: float
    current_limit_a: float
    channel: int = 1
    max_voltage_v: float = 3.6
    """Station limit on this rail's source voltage."""
    max_current_a: float = 0.2
    """Station limit on this rail's current compliance."""
    nplc: float = 0.01
    trigger_line: int = 0
    """Hardware trigger input of this SMU wired to the board's trigger output (2450 digital
    I/O line, B2900 external trigger input EXT<n>, 2600B digio line); 0 = not wired.  With a
    line, ``power`` and the in-pass measurement of ``infer``/``demo`` arm the trace on it."""


@dataclass(frozen=True)
class ChipConfig:
    url: str = "sim"
    timeout_s: float = 2.0
    retries: int = 5
    fidelity: str = "typical"
    seed: int = 1
    run_seed: int = 0
    die: str = ""
    """Simulated chip only: "" = a fresh die per command (not persisted); "default" = the
    per-user default die (``bench.dies``); otherwise a die file path (relative to the station
    file).  The built-in simulated bench uses "default"."""


@dataclass(frozen=True)
class LinkConfig:
    """The physical link's model, used to report modelled wall time."""

    baud: float = 3_000_000.0
    latency_s: float = 1e-3


@dataclass(frozen=True)
class Station:
    chip: ChipConfig = field(default_factory=ChipConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    limits: Limits = field(default_factory=Limits)
    smu: tuple[SmuConfig, ...] = ()
    source: str = "<built-in simulated bench>"

    @property
    def simulated(self) -> bool:
        return self.chip.url == "sim"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["smu"] = [dataclasses.asdict(s) for s in self.smu]
        return d


_NONNEGATIVE = {"retries", "seed", "run_seed", "latency_s", "trigger_line"}
_POSITIVE = {
    "timeout_s", "baud", "voltage_v", "current_limit_a", "max_voltage_v", "max_current_a",
    "nplc", "pulse_width_min_s", "pulse_width_max_s", "dt_min_s", "dt_max_s",
    "v_set_max_v", "v_reset_max_v", "v_wl_max_v", "v_read_max_v", "v_spike_max_v",
    "max_pulses_per_cell",
}
# Absolute ceilings: a station file cannot raise a limit past what the chip survives.
_CEILINGS = {
    "timeout_s": 3600.0, "retries": 100, "baud": 1e9, "latency_s": 10.0,
    "v_set_max_v": 5.0, "v_reset_max_v": 5.0, "v_wl_max_v": 5.0, "v_read_max_v": 1.0,
    "v_spike_max_v": 1.0, "pulse_width_max_s": 1e-3, "max_pulses_per_cell": 10_000,
    "trigger_line": 14,
}


def _build(cls: type, table: Any, where: str, src: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{src}: [{where}] must be a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"{src}: unknown field {where}.{key} (known: {', '.join(sorted(fields))})")
        f = fields[key]
        expected = f.type if isinstance(f.type, str) else f.type.__name__
        if expected in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{src}: {where}.{key} must be a number, got {value!r}")
            if expected == "int" and not float(value).is_integer():
                raise ConfigError(f"{src}: {where}.{key} must be an integer, got {value!r}")
            value = int(value) if expected == "int" else float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{src}: {where}.{key} must be finite, got {value!r}")
            if key in _POSITIVE and value <= 0:
                raise ConfigError(f"{src}: {where}.{key} must be > 0, got {value!r}")
            if key in _NONNEGATIVE and value < 0:
                raise ConfigError(f"{src}: {where}.{key} must be >= 0, got {value!r}")
            if key in _CEILINGS and value > _CEILINGS[key]:
                raise ConfigError(
                    f"{src}: {where}.{key} = {value!r} exceeds the chip's absolute maximum {_CEILINGS[key]!r}")
        elif expected == "str" and not isinstance(value, str):
            raise ConfigError(f"{src}: {where}.{key} must be a string, got {value!r}")
        kwargs[key] = value
    missing = [n for n, f in fields.items()
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and n not in kwargs]
    if missing:
        raise ConfigError(f"{src}: [{where}] is missing required field(s): {', '.join(missing)}")
    return cls(**kwargs)


def parse_station(data: dict[str, Any], source: str = "<station>") -> Station:
    """Validate a station mapping (as loaded from TOML) and return a :class:`Station`."""
    known = {"chip", "link", "limits", "smu"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: unknown section [{key}] (known: {', '.join(sorted(known))})")
    chip = _build(ChipConfig, data.get("chip", {}), "chip", source)
    if chip.fidelity not in ("ideal", "typical", "worst"):
        raise ConfigError(f"{source}: chip.fidelity must be ideal, typical or worst, got {chip.fidelity!r}")
    if chip.url != "sim":
        from drivers.transport import url_problem

        problem = url_problem(chip.url)
        if problem:
            raise ConfigError(f"{source}: chip.url = {chip.url!r}: {problem}")
    link = _build(LinkConfig, data.get("link", {}), "link", source)
    limits = _build(Limits, data.get("limits", {}), "limits", source)
    if limits.dt_min_s > limits.dt_max_s:
        raise ConfigError(f"{source}: limits.dt_min_s ({limits.dt_min_s}) exceeds limits.dt_max_s ({limits.dt_max_s})")
    if limits.pulse_width_min_s > limits.pulse_width_max_s:
        raise ConfigError(f"{source}: limits.pulse_width_min_s ({limits.pulse_width_min_s}) "
                          f"exceeds limits.pulse_width_max_s ({limits.pulse_width_max_s})")
    smu_tables = data.get("smu", [])
    if not isinstance(smu_tables, list):
        raise ConfigError(f"{source}: [[smu]] must be an array of tables")
    smus = []
    for i, t in enumerate(smu_tables):
        s = _build(SmuConfig, t, f"smu[{i}]", source)
        if s.voltage_v > s.max_voltage_v:
            raise ConfigError(f"{source}: smu[{i}].voltage_v = {s.voltage_v} exceeds "
                              f"smu[{i}].max_voltage_v = {s.max_voltage_v}")
        if s.current_limit_a > s.max_current_a:
            raise ConfigError(f"{source}: smu[{i}].current_limit_a = {s.current_limit_a} exceeds "
                              f"smu[{i}].max_current_a = {s.max_current_a}")
        smus.append(s)
    rails = [s.rail for s in smus]
    dup = {r for r in rails if rails.count(r) > 1}
    if dup:
        raise ConfigError(f"{source}: rail(s) {', '.join(sorted(dup))} assigned to more than one SMU")
    return Station(chip=chip, link=link, limits=limits, smu=tuple(smus), source=source)


def load_station(path: str | Path | None) -> Station:
    """Load and validate a station TOML file; ``None`` gives the built-in simulated bench."""
    if path is None:
        return Station(chip=ChipConfig(die="default"))
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read station file ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return parse_station(data, str(p))
