"""Campaign plans: TOML text -> a validated, typed :class:`Plan` expanded into points.

A plan (see ``campaigns/*.toml``)::

    [campaign]
    name = "read_voltage"        # required
    seed = 1                     # campaign seed: point i runs with SeedSequence([seed, i])
    repeats = 2                  # each grid point this many times (the grid's last dimension)
    on_error = "continue"        # or "stop"
    description = "..."

    [station]                    # optional; omitted = the built-in simulated bench
    file = "lab.toml"            # a station TOML (path relative to the plan file)

    [setup]                      # simulated chip of each point (simulated bench only)
    fidelity = "typical"         # ideal | typical | worst
    chip_seed = 1                # a different die per seed
    link_drop = 0.0              # fault injection: frames the simulated link drops

    [[step]]                     # run in order at every point
    procedure = "program"        # reg_write reg_read program read wait infer
    name = "program"             # optional (default: the procedure name; unique)
    tolerance_us = 5

    [[axis]]
    param = "read.v_read_v"      # "<step name>.<param>" or "setup.<field>"
    values = [0.1, 0.2]          # or linspace / logspace = {start, stop, num}, or seeds = N
    zip = "a"                    # optional: axes with the same zip group are paired
    unit = "V"                   # optional (default: the parameter's)

Points: the zip groups and the other axes form the grid's dimensions in order of first
appearance (first = slowest), ``repeats`` is the last dimension; a point's index is its flat
C-order position.  ``seeds = N`` gives N distinct 31-bit seeds spawned from the campaign
seed (``SeedSequence(seed).generate_state``), so a "die" axis is reproducible and
independent of the grid.  No expression is ever evaluated.

:func:`load_plan` lists *every* problem (unknown keys, wrong types, values outside the
parameter's bounds or the station's limits, empty axes, zips of unequal length, unknown
procedures or parameters, combinations that cannot run) in one :class:`PlanError`.
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.campaign.procedures import PROCEDURES, REQUIRED, Param
from bench.errors import BenchError

CAMPAIGN_KEYS = {"name": str, "seed": int, "repeats": int, "on_error": str, "description": str}
SETUP_PARAMS = {
    "fidelity": Param("fidelity", str, choices=("ideal", "typical", "worst"), default="typical"),
    "chip_seed": Param("chip_seed", int, low=0, high=2**31 - 1, default=1),
    "link_drop": Param("link_drop", float, low=0.0, high=0.999, default=0.0,
                       doc="fault injection: probability the simulated link drops a frame"),
}
AXIS_KEYS = {"param", "name", "values", "linspace", "logspace", "seeds", "zip", "unit"}
MAX_POINTS = 1_000_000


class PlanError(BenchError):
    """An invalid plan: ``problems`` holds one line per problem; the message summarises."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, list(problems)
        n = len(self.problems)
        super().__init__(f"{source}: {n} problem{'s' * (n != 1)} in the plan (one per line below)"
                         if n > 1 else f"{source}: {self.problems[0] if n else 'invalid plan'}")

    @property
    def details(self) -> list[str]:
        """One line per problem (the CLI prints them under the summary line)."""
        return [f"{self.source}: {p}" for p in self.problems] if len(self.problems) > 1 else []


@dataclass(frozen=True)
class Step:
    name: str
    procedure: str
    params: dict[str, Any]
    """Fixed parameter values (defaults filled in); swept ones are overridden per point."""


@dataclass(frozen=True)
class Axis:
    name: str
    param: str
    """``setup.<field>`` or ``<step>.<param>``."""
    values: tuple[Any, ...]
    unit: str = ""
    zip: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "param": self.param, "values": list(self.values), "unit": self.unit,
                "zip": self.zip}


@dataclass(frozen=True)
class Plan:
    name: str
    seed: int
    repeats: int
    on_error: str
    description: str
    station_file: str | None
    """Station TOML (None: the built-in simulated bench)."""
    physical: bool
    """The station is hardware (its points are serialised on it), not a simulated bench."""
    setup: dict[str, Any]
    steps: tuple[Step, ...]
    axes: tuple[Axis, ...]
    text: str
    source: str
    dims: tuple[tuple[int, ...], ...] = field(default=())
    """Axis indices of each grid dimension (a zip group is one dimension)."""

    # --- identity -------------------------------------------------------------------------
    def normalised(self) -> dict[str, Any]:
        """Everything that decides what the points compute (not comments, not file layout)."""
        return {"name": self.name, "seed": self.seed, "repeats": self.repeats, "on_error": self.on_error,
                "station_file": self.station_file, "setup": self.setup,
                "steps": [{"name": s.name, "procedure": s.procedure, "params": s.params} for s in self.steps],
                "axes": [a.as_dict() for a in self.axes]}

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.normalised(), sort_keys=True).encode()).hexdigest()

    @property
    def simulated(self) -> bool:
        return not self.physical

    # --- expansion ----------------------------------------------------------------------
    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(len(self.axes[d[0]].values) for d in self.dims) + (self.repeats,)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.grid_shape))

    def axis_values(self, index: int) -> dict[str, Any]:
        """Axis name -> value at flat point ``index``."""
        pos = np.unravel_index(index, self.grid_shape)
        out = {}
        for d, axes in enumerate(self.dims):
            for a in axes:
                out[self.axes[a].name] = self.axes[a].values[pos[d]]
        return out

    def repeat(self, index: int) -> int:
        return int(index % self.repeats)

    def point_params(self, index: int) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]:
        """(setup, [(step name, procedure, params)]) of point ``index``."""
        setup = dict(self.setup)
        steps = {s.name: dict(s.params) for s in self.steps}
        vals = self.axis_values(index)
        for a in self.axes:
            head, _, tail = a.param.partition(".")
            (setup if head == "setup" else steps[head])[tail] = vals[a.name]
        return setup, [(s.name, s.procedure, steps[s.name]) for s in self.steps]

    def result_columns(self) -> list[str]:
        return [f"{s.name}.{r}" for s in self.steps for r in PROCEDURES[s.procedure].results]


def _type_name(v: Any) -> str:
    return type(v).__name__


def _spawn_seeds(seed: int, axis_no: int, n: int) -> tuple[int, ...]:
    ss = np.random.SeedSequence([seed, 0x5EED, axis_no])
    return tuple(int(x) for x in (ss.generate_state(n, np.uint32) >> 1))


def _range(spec: Any, kind: str, where: str, problems: list[str]) -> tuple[float, ...]:
    if not isinstance(spec, dict):
        problems.append(f"{where}.{kind} must be a table {{start, stop, num}}, got {spec!r}")
        return ()
    extra = set(spec) - {"start", "stop", "num"}
    if extra:
        problems.append(f"{where}.{kind}: unknown key(s) {', '.join(sorted(extra))} (known: start, stop, num)")
    missing = {"start", "stop", "num"} - set(spec)
    if missing:
        problems.append(f"{where}.{kind}: missing {', '.join(sorted(missing))}")
        return ()
    start, stop, num = spec["start"], spec["stop"], spec["num"]
    ok = True
    for k, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            problems.append(f"{where}.{kind}.{k} must be a finite number, got {v!r}")
            ok = False
    if isinstance(num, bool) or not isinstance(num, int):
        problems.append(f"{where}.{kind}.num must be an integer, got {num!r}")
        return ()
    if num < 1:
        problems.append(f"{where}: empty axis ({kind}.num = {num})")
        return ()
    if not ok:
        return ()
    if kind == "logspace":
        if start <= 0 or stop <= 0:
            problems.append(f"{where}.logspace: start and stop must be > 0, got {start!r}, {stop!r}")
            return ()
        vals = np.geomspace(start, stop, num)
    else:
        vals = np.linspace(start, stop, num)
    # shortest decimal of each value: the plan's numbers, not binary noise (1e4 not 9999.999...)
    return tuple(float(f"{v:.12g}") for v in vals)


def parse_plan(text: str, source: str = "<plan>", base_dir: Path | None = None) -> Plan:
    """Validate plan ``text``; raise :class:`PlanError` with every problem found."""
    from bench.errors import ConfigError
    from bench.station import load_station

    problems: list[str] = []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(source, [f"not valid TOML ({exc})"]) from None
    for key in data:
        if key not in ("campaign", "station", "setup", "step", "axis"):
            problems.append(f"unknown section [{key}] (known: campaign, station, setup, step, axis)")

    # [campaign]
    camp = data.get("campaign")
    if not isinstance(camp, dict):
        problems.append("missing [campaign] table (name, seed, ...)")
        camp = {}
    for k, v in camp.items():
        if k not in CAMPAIGN_KEYS:
            problems.append(f"unknown key campaign.{k} (known: {', '.join(CAMPAIGN_KEYS)})")
        elif CAMPAIGN_KEYS[k] is int and (isinstance(v, bool) or not isinstance(v, int)):
            problems.append(f"campaign.{k} must be an integer, got {v!r} ({_type_name(v)})")
        elif CAMPAIGN_KEYS[k] is str and not isinstance(v, str):
            problems.append(f"campaign.{k} must be a string, got {v!r} ({_type_name(v)})")
    name = camp.get("name") if isinstance(camp.get("name"), str) else ""
    if "name" not in camp:
        problems.append("campaign.name is required")
    elif isinstance(camp["name"], str) and not name.strip():
        problems.append("campaign.name must not be empty")
    seed = camp.get("seed", 0)
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    if not 0 <= seed < 2**63:
        problems.append(f"campaign.seed must be in [0, 2^63), got {seed}")
    repeats = camp.get("repeats", 1)
    repeats = repeats if isinstance(repeats, int) and not isinstance(repeats, bool) else 1
    if repeats < 1:
        problems.append(f"campaign.repeats must be >= 1, got {repeats}")
        repeats = 1
    on_error = camp.get("on_error", "continue")
    if isinstance(on_error, str) and on_error not in ("continue", "stop"):
        problems.append(f"campaign.on_error must be continue or stop, got {on_error!r}")

    # [station]
    station_file, station = None, None
    st = data.get("station", {})
    if not isinstance(st, dict):
        problems.append(f"[station] must be a table, got {st!r}")
        st = {}
    for k in st:
        if k != "file":
            problems.append(f"unknown key station.{k} (known: file)")
    if "file" in st:
        if not isinstance(st["file"], str):
            problems.append(f"station.file must be a string, got {st['file']!r}")
        else:
            p = Path(st["file"])
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            station_file = str(p)
    try:
        station = load_station(station_file)
    except ConfigError as exc:
        problems.append(f"station: {exc}")
        station = load_station(None)
    limits = station.limits

    # [setup]
    setup = {k: p.default for k, p in SETUP_PARAMS.items()}
    raw_setup = data.get("setup", {})
    if not isinstance(raw_setup, dict):
        problems.append(f"[setup] must be a table, got {raw_setup!r}")
        raw_setup = {}
    for k, v in raw_setup.items():
        if k not in SETUP_PARAMS:
            problems.append(f"unknown key setup.{k} (known: {', '.join(SETUP_PARAMS)})")
            continue
        msg = SETUP_PARAMS[k].check(v, None)
        if msg:
            problems.append(f"setup.{k} {msg}")
        else:
            setup[k] = v
    if raw_setup and station_file is not None and not station.simulated:
        problems.append(f"[setup] ({', '.join(raw_setup)}) sets the simulated chip, but the station "
                        f"{station_file} is physical hardware")

    # [[step]]
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("the plan has no [[step]] (at least one procedure to run per point)")
        raw_steps = raw_steps if isinstance(raw_steps, list) else []
    steps: list[Step] = []
    for i, t in enumerate(raw_steps):
        where = f"step[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where} must be a table")
            continue
        proc_name = t.get("procedure")
        if proc_name not in PROCEDURES:
            problems.append(f"{where}.procedure {proc_name!r} is unknown (known: {', '.join(PROCEDURES)})")
            continue
        proc = PROCEDURES[proc_name]
        sname = t.get("name", proc_name)
        if not isinstance(sname, str) or not sname or "." in sname or "/" in sname:
            problems.append(f"{where}.name must be a non-empty string without '.' or '/', got {sname!r}")
            sname = f"{proc_name}{i}"
        if sname == "setup" or any(s.name == sname for s in steps):
            problems.append(f"{where}.name {sname!r} is used twice (give the steps distinct names)")
        params = {}
        for k, v in t.items():
            if k in ("procedure", "name"):
                continue
            if k not in proc.param_by_name:
                problems.append(f"unknown key {where}.{k} for procedure {proc_name} "
                                f"(known: {', '.join(proc.param_by_name) or 'none'})")
                continue
            params[k] = float(v) if proc.param_by_name[k].kind is float and type(v) is int else v
        for p in proc.params:
            if p.name not in params and p.default is not REQUIRED:
                params[p.name] = p.default
        steps.append(Step(sname, proc_name, params))
    step_by_name = {s.name: s for s in steps}

    # [[axis]]
    raw_axes = data.get("axis", [])
    if not isinstance(raw_axes, list):
        problems.append("[[axis]] must be an array of tables")
        raw_axes = []
    axes: list[Axis] = []
    targets: set[str] = set()
    for i, t in enumerate(raw_axes):
        where = f"axis[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where} must be a table")
            continue
        for k in t:
            if k not in AXIS_KEYS:
                problems.append(f"unknown key {where}.{k} (known: {', '.join(sorted(AXIS_KEYS))})")
        param = t.get("param")
        if not isinstance(param, str) or "." not in param:
            problems.append(f"{where}.param must name '<step>.<parameter>' or 'setup.<field>', got {param!r}")
            continue
        head, _, tail = param.partition(".")
        if head == "setup":
            spec = SETUP_PARAMS.get(tail)
            if spec is None:
                problems.append(f"{where}.param {param!r}: setup has no field {tail!r} "
                                f"(known: {', '.join(SETUP_PARAMS)})")
                continue
            if station_file is not None and not station.simulated:
                problems.append(f"{where}.param {param!r} sets the simulated chip, but the station is physical")
        elif head in step_by_name:
            spec = PROCEDURES[step_by_name[head].procedure].param_by_name.get(tail)
            if spec is None:
                problems.append(f"{where}.param {param!r}: procedure {step_by_name[head].procedure} has no "
                                f"parameter {tail!r}")
                continue
        else:
            problems.append(f"{where}.param {param!r}: no step named {head!r} "
                            f"(steps: {', '.join(step_by_name) or 'none'})")
            continue
        if param in targets:
            problems.append(f"{where}.param {param!r} is swept by two axes")
        targets.add(param)
        sources = [k for k in ("values", "linspace", "logspace", "seeds") if k in t]
        if len(sources) != 1:
            problems.append(f"{where} needs exactly one of values, linspace, logspace, seeds "
                            f"(got {', '.join(sources) or 'none'})")
            continue
        src = sources[0]
        if src == "values":
            vals = t["values"]
            if not isinstance(vals, list):
                problems.append(f"{where}.values must be a list, got {vals!r}")
                continue
            if not vals:
                problems.append(f"{where} ({param}): empty axis (values = [])")
                continue
            vals = tuple(float(v) if spec.kind is float and type(v) is int else v for v in vals)
        elif src == "seeds":
            n = t["seeds"]
            if isinstance(n, bool) or not isinstance(n, int):
                problems.append(f"{where}.seeds must be an integer count, got {n!r}")
                continue
            if n < 1:
                problems.append(f"{where} ({param}): empty axis (seeds = {n})")
                continue
            if spec.kind is not int:
                problems.append(f"{where}.seeds: parameter {param} takes {spec.kind.__name__}, not seeds")
                continue
            vals = _spawn_seeds(seed, i, n)
        else:
            if spec.kind is not float and spec.kind is not int:
                problems.append(f"{where}.{src}: parameter {param} takes {spec.kind.__name__}, not numbers")
                continue
            vals = _range(t[src], src, where, problems)
            if not vals:
                continue
            if spec.kind is int:
                vals = tuple(int(round(v)) for v in vals)
        bad = [(v, m) for v in vals if (m := spec.check(v, limits))]
        for v, m in bad[:3]:
            problems.append(f"{where} ({param}) value {m}")
        if len(bad) > 3:
            problems.append(f"{where} ({param}): {len(bad) - 3} more values out of bounds")
        zip_group = t.get("zip")
        if zip_group is not None and not isinstance(zip_group, str):
            problems.append(f"{where}.zip must be a string group name, got {zip_group!r}")
            zip_group = None
        unit = t.get("unit", spec.unit)
        if not isinstance(unit, str):
            problems.append(f"{where}.unit must be a string, got {unit!r}")
            unit = spec.unit
        aname = t.get("name", param)
        if not isinstance(aname, str) or not aname or "/" in aname:
            problems.append(f"{where}.name must be a non-empty string without '/', got {aname!r}")
            aname = param
        if any(a.name == aname for a in axes):
            problems.append(f"{where}.name {aname!r} is used by two axes")
        axes.append(Axis(aname, param, tuple(vals), unit, zip_group))

    # grid dimensions: zip groups paired (equal lengths), other axes one dimension each
    dims: list[tuple[int, ...]] = []
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(axes):
        if a.zip is None:
            dims.append((i,))
        elif a.zip in groups:
            groups[a.zip].append(i)
        else:
            groups[a.zip] = [i]
            dims.append(("zip", a.zip))  # type: ignore[arg-type]
    dims = [tuple(groups[d[1]]) if d and d[0] == "zip" else d for d in dims]
    for g, members in groups.items():
        lens = {axes[m].name: len(axes[m].values) for m in members}
        if len(set(lens.values())) > 1:
            problems.append(f"zip group {g!r} pairs axes of unequal length: "
                            + ", ".join(f"{k} has {v}" for k, v in lens.items()))

    # fixed parameters (and required ones that no axis supplies)
    for s in steps:
        proc = PROCEDURES[s.procedure]
        for p in proc.params:
            swept = f"{s.name}.{p.name}" in targets
            if p.name not in s.params and not swept:
                problems.append(f"step {s.name!r} ({s.procedure}) needs {p.name!r} (no default, no axis)")
            elif p.name in s.params and not swept:
                m = p.check(s.params[p.name], limits)
                if m:
                    problems.append(f"step {s.name!r}.{p.name} {m}")

    columns = {f"{s.name}.{r}" for s in steps for r in PROCEDURES[s.procedure].results}
    for a in axes:
        if a.name in columns or a.name in ("index", "commit_order", "status", "wall_s", "error"):
            problems.append(f"axis name {a.name!r} clashes with a table column (give the axis another name)")

    n_points = int(np.prod([len(axes[d[0]].values) for d in dims] + [repeats])) if dims else repeats
    if n_points > MAX_POINTS:
        problems.append(f"the plan expands to {n_points} points, more than {MAX_POINTS}")

    plan = Plan(name=name, seed=seed, repeats=repeats, on_error=on_error if isinstance(on_error, str) else "continue",
                description=camp.get("description", "") if isinstance(camp.get("description", ""), str) else "",
                station_file=station_file, physical=not station.simulated, setup=setup, steps=tuple(steps),
                axes=tuple(axes), text=text,
                source=source, dims=tuple(dims))

    # cross-parameter checks, per distinct combination the points really use (also when other
    # problems were found, as long as the grid itself expands: every problem is listed at once)
    grid_ok = not any(p.startswith(("zip group", "the plan expands")) for p in problems)
    if grid_ok and steps:
        seen: set[str] = set()
        for idx in range(0, plan.n_points, plan.repeats):
            _, point_steps = plan.point_params(idx)
            for sname, proc_name, params in point_steps:
                key = json.dumps([sname, params], sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                proc = PROCEDURES[proc_name]
                try:  # single parameters were checked above; here only their combination
                    found = ([] if proc.check_extra is None
                             or any(proc.param_by_name[k].check(v, limits) for k, v in params.items()
                                    if k in proc.param_by_name)
                             else proc.check_extra(params, limits))
                except (KeyError, TypeError):  # a missing or mistyped parameter, reported above
                    found = []
                for m in found:
                    msg = f"step {sname!r} {m}"
                    if not any(msg in p for p in problems):
                        problems.append(msg + (f" (point {idx})" if plan.axes else ""))
                if len(problems) > 20:
                    break
    if problems:
        raise PlanError(source, problems)
    return plan


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file (every problem listed; the file must be UTF-8 TOML)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PlanError(str(p), ["no such plan file"]) from None
    except IsADirectoryError:
        raise PlanError(str(p), ["is a directory, not a plan file"]) from None
    except OSError as exc:
        raise PlanError(str(p), [f"cannot read the plan ({exc.strerror or exc})"]) from None
    except UnicodeDecodeError as exc:
        raise PlanError(str(p), [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return parse_plan(text, str(p), p.resolve().parent)


def plan_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """What changed between two normalised plans, one entry per differing field."""
    out: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{path} added ({json.dumps(new[k])})")
            elif k not in new:
                out.append(f"{path} removed (was {json.dumps(old[k])})")
            else:
                out += plan_difference(old[k], new[k], path)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            out += plan_difference(a, b, f"{prefix}[{i}]")
    elif old != new:
        out.append(f"{prefix}: {json.dumps(old)} -> {json.dumps(new)}")
    return out
