"""The steps a campaign point is built from: typed parameters + an adapter to a bench procedure.

Each :class:`Procedure` declares its parameters (type, unit, bounds, station limit; in the
PyMeasure ``Parameter`` spirit), the scalar results it produces (the campaign table's
columns) and a ``run(ctx, **params)`` that calls the bench's existing code:

=============  ==============================================  =================================
procedure      calls                                           scalar results
=============  ==============================================  =================================
reg_write      ``PEChip.write_register``                       in_force (value after DAC rounding)
reg_read       ``PEChip.read_register``                        value
program        ``bench.programming.program_array`` (pattern)   within_tolerance, pulses_per_cell,
               or ``HybridRunner.prepare`` (``model``)         stuck_cells, success, chip_s
read           ``bench.programming.read_map``                  mean_g_us, error_mean_us,
                                                               error_std_us, error_rms_us
wait           ``PEChip.wait`` (chip time)                     chip_s
infer          ``HybridRunner.run`` on the synthetic test set  accuracy, software_accuracy,
                                                               drop_points, model_check,
                                                               chip_s_per_sample, dt_s
power          ``bench.power.measure_power`` (SMU traces)       energy_per_sample_j, average_power_w,
                                                               latency_s, tsops_per_w_dense
finetune       ``bench.finetune.finetune`` (chip in the loop)   rounds, val_accuracy_before/_best,
                                                               chip_accuracy_before/_after,
                                                               cells_reprogrammed
=============  ==============================================  =================================

Parameter names carry their unit at this edge (``tolerance_us``, ``v_read_v``, ``wait_s``);
inside, everything is SI.  Validation (:meth:`Procedure.check`) never touches hardware.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One typed procedure parameter (plan-edge units in its name)."""

    name: str
    kind: type
    unit: str = ""
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    limit: str | None = None
    """Station limit (``ChipLimits`` field) the SI value must not exceed."""
    si: float = 1.0
    """Factor from the plan's unit to SI (``tolerance_us`` -> 1e-6)."""
    doc: str = ""

    def check(self, value: Any, limits) -> str | None:
        """A one-line problem with ``value`` (None when fine)."""
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
            if not math.isfinite(value):
                return f"must be finite, got {value!r}"
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"must be an integer, got {value!r}"
        elif self.kind is str:
            if not isinstance(value, str):
                return f"must be a string, got {value!r}"
        elif self.kind is bool and not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and value < self.low:
            return f"= {value!r}{unit} is below the minimum {self.low:g}{unit}"
        if self.high is not None and value > self.high:
            return f"= {value!r}{unit} is above the maximum {self.high:g}{unit}"
        if self.limit is not None and limits is not None:
            lim = getattr(limits, self.limit)
            if value * self.si > lim:
                return (f"= {value!r}{unit} exceeds the station limit {self.limit} = "
                        f"{lim / self.si:g}{unit}")
        return None


@dataclass
class Context:
    """What a point's steps share: the open chip, the station, and state set by earlier steps."""

    chip: Any
    station: Any
    seed: np.random.SeedSequence
    data_dir: str | None = None
    targets_s: np.ndarray | None = None
    """Conductance targets of the last programming step (S)."""
    runner: Any = None
    """The hybrid network runner once the model's chip layer is mapped."""
    net: Any = None
    smus: list[Any] = field(default_factory=list)
    """Open SMUs of the bench (only when a step needs them: ``power``)."""
    smu_configs: list[Any] = field(default_factory=list)
    chip_inputs: np.ndarray | None = None
    """Input spikes the chip layer saw in the last ``infer`` (samples, steps, rows)."""
    arrays: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)

    def rng(self, stream: int) -> np.random.Generator:
        """A generator for this point's ``stream`` (independent of every other point)."""
        return np.random.default_rng(np.random.SeedSequence(self.seed.entropy,
                                                            spawn_key=(*self.seed.spawn_key, stream)))


@dataclass(frozen=True)
class Procedure:
    name: str
    params: tuple[Param, ...]
    results: tuple[str, ...]
    run: Callable[..., dict[str, float]]
    doc: str
    check_extra: Callable[[dict[str, Any], Any], list[str]] | None = None
    """Cross-parameter checks (values already typed): list of one-line problems."""

    @property
    def param_by_name(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}

    def check(self, values: dict[str, Any], limits) -> list[str]:
        """Problems of one complete set of parameter values (``name: problem``)."""
        out = []
        for p in self.params:
            if p.name in values:
                msg = p.check(values[p.name], limits)
                if msg:
                    out.append(f"{p.name} {msg}")
        if not out and self.check_extra is not None:
            out += self.check_extra(values, limits)
        return out


# --- adapters ----------------------------------------------------------------------------------
def _register_problems(values: dict[str, Any], limits) -> list[str]:
    from drivers.errors import LimitError
    from firmware_iface.spec import REGISTER_BY_NAME

    reg = REGISTER_BY_NAME[values["register"]]
    value = values.get("value")
    if value is None:
        return []
    code = reg.to_code(value)
    if not reg.min_code <= code <= reg.max_code:
        return [f"value = {value!r} {reg.unit} is outside register {reg.name}'s range "
                f"[{reg.to_si(reg.min_code):g}, {reg.to_si(reg.max_code):g}] {reg.unit}"]
    try:
        lim = {"V_READ": "v_read_max_v", "V_SPIKE": "v_spike_max_v"}.get(reg.name)
        if lim:
            limits.check(f"register {reg.name}", value, lim, low=1e-3)
        if reg.name == "TIME_STEP":
            limits.check("time step", value, "dt_max_s", low=limits.dt_min_s)
    except LimitError as exc:
        return [f"value: {str(exc).split('; nothing')[0]}"]
    return []


def _writable_registers() -> tuple[str, ...]:
    from firmware_iface.spec import REGISTERS

    return tuple(r.name for r in REGISTERS if r.writable)


def _all_registers() -> tuple[str, ...]:
    from firmware_iface.spec import REGISTERS

    return tuple(r.name for r in REGISTERS)


def reg_write(ctx: Context, register: str, value: float) -> dict[str, float]:
    return {"in_force": float(ctx.chip.write_register(register, value))}


def reg_read(ctx: Context, register: str) -> dict[str, float]:
    return {"value": float(ctx.chip.read_register(register))}


def _schedule(tolerance_us: float, limits):
    from bench import programming as P

    schedule = P.default_schedule(tolerance_us * 1e-6, limits=limits)
    P.validate_schedule(schedule, limits)
    return schedule


def _schedule_problems(values: dict[str, Any], limits) -> list[str]:
    from bench.errors import BenchError
    from drivers.errors import DriverError

    try:
        _schedule(values["tolerance_us"], limits)
    except (BenchError, DriverError, ValueError) as exc:
        return [f"tolerance_us = {values['tolerance_us']!r}: pulse schedule refused ({exc})"]
    return []


def _pattern_levels(pattern: str, shape: tuple[int, int], rng: np.random.Generator, n_levels: int) -> np.ndarray:
    if pattern == "random":
        return rng.integers(0, n_levels, size=shape)
    if pattern == "checkerboard":
        r, c = np.indices(shape)
        return np.where((r + c) % 2 == 0, n_levels - 1, 0)
    # "ramp": every level equally often, row by row
    return (np.arange(shape[0] * shape[1]) % n_levels).reshape(shape)


def program(ctx: Context, pattern: str, tolerance_us: float, mode: str) -> dict[str, float]:
    from bench import programming as P

    schedule = _schedule(tolerance_us, ctx.station.limits)
    tol = tolerance_us * 1e-6
    if pattern == "model":
        runner = _runner(ctx, schedule=schedule)
        layers = runner.prepare()
        st = layers[runner.plan.chip_layers[-1]]
        res, targets = st.program_result, st.targets_s
    else:
        info = ctx.chip.info()
        levels = _pattern_levels(pattern, (info.rows, info.columns), ctx.rng(1), len(info.levels_s))
        targets = np.asarray(info.levels_s, dtype=np.float64)[levels]
        res = P.program_array(ctx.chip, targets, schedule, mode=mode)
    ctx.targets_s = targets
    ctx.arrays["program/targets_s"] = (targets, "S")
    pulses = res.as_map(res.pulses.astype(float), targets.shape, 0.0)
    ctx.arrays["program/pulses"] = (pulses, "pulses")
    ok = np.abs(res.g_s - res.targets_s) <= tol
    return {"within_tolerance": float(np.mean(ok[~res.stuck])) if (~res.stuck).any() else 0.0,
            "pulses_per_cell": float(res.pulses.mean()), "stuck_cells": float(res.stuck.sum()),
            "success": float(res.success.mean()), "chip_s": float(res.link.chip_seconds)}


def read(ctx: Context, v_read_v: float, averages: int) -> dict[str, float]:
    from bench import programming as P

    g = P.read_map(ctx.chip, averages=averages, v_read_v=v_read_v)
    ctx.arrays["read/g_s"] = (g, "S")
    out = {"mean_g_us": float(g.mean() * 1e6), "error_mean_us": math.nan, "error_std_us": math.nan,
           "error_rms_us": math.nan}
    if ctx.targets_s is not None:
        err = g - ctx.targets_s
        out.update(error_mean_us=float(err.mean() * 1e6), error_std_us=float(err.std() * 1e6),
                   error_rms_us=float(np.sqrt(np.mean(err ** 2)) * 1e6))
        levels = np.asarray(ctx.chip.info().levels_s)
        idx = np.abs(ctx.targets_s[..., None] - levels).argmin(-1)
        mean = np.array([err[idx == k].mean() if (idx == k).any() else np.nan for k in range(levels.size)])
        std = np.array([err[idx == k].std() if (idx == k).any() else np.nan for k in range(levels.size)])
        ctx.arrays["read/level_error_mean_s"] = (mean, "S")
        ctx.arrays["read/level_error_std_s"] = (std, "S")
    return out


def wait(ctx: Context, wait_s: float) -> dict[str, float]:
    return {"chip_s": float(ctx.chip.wait(wait_s))}


def _net(ctx: Context):
    if ctx.net is None:
        from bench.demo import REFERENCE_MODEL
        from bench.network.modelfile import load_model

        ctx.net = load_model(REFERENCE_MODEL)
    return ctx.net


def _runner(ctx: Context, *, schedule=None, acceleration: float | None = None):
    from bench.hybrid import HybridRunner, plan_network
    from bench.streaming import TimeBase

    net = _net(ctx)
    if ctx.runner is None:
        ctx.runner = HybridRunner(net, ctx.chip, plan=plan_network(net, ctx.chip.info()),
                                  timebase=TimeBase.for_network(net, acceleration),
                                  schedule=schedule or _schedule(5.0, ctx.station.limits),
                                  baud=ctx.station.link.baud, latency_s=ctx.station.link.latency_s,
                                  threads=1)
    return ctx.runner


def _timebase_problems(values: dict[str, Any], limits) -> list[str]:
    from bench.errors import BenchError
    from bench.streaming import TimeBase

    try:
        tb = TimeBase(acceleration=values["acceleration"])
    except BenchError as exc:
        return [f"acceleration: {exc}"]
    if not limits.dt_min_s * (1 - 1e-9) <= tb.dt_s <= limits.dt_max_s * (1 + 1e-9):
        return [f"acceleration = {values['acceleration']!r} gives a chip step of {tb.dt_s:g} s, outside "
                f"the station's [{limits.dt_min_s:g}, {limits.dt_max_s:g}] s (dt_min_s, dt_max_s)"]
    return []


def infer(ctx: Context, samples: int, acceleration: float) -> dict[str, float]:
    from bench.data.dataset import load_split
    from bench.data.preprocess import batch_to_spikes
    from bench.commands.infer import preprocess_config
    from bench.scoring import Comparison, Score, predict
    from bench.streaming import TimeBase

    net = _net(ctx)
    runner = _runner(ctx, acceleration=acceleration)
    tb = TimeBase.for_network(net, acceleration)
    if runner.timebase != tb:  # programmed by an earlier step at another time base
        runner.timebase = runner.streamer.timebase = tb
        if runner.layers:
            runner.streamer.configure(net.layers[runner.plan.chip_layers[-1]].neuron)
    if not runner.layers:
        runner.prepare()
    if ctx.data_dir is None or not Path(ctx.data_dir).is_dir():  # a worker on another machine
        from bench.demo import synthetic_set

        ctx.data_dir = str(synthetic_set(0))
    part = load_split(ctx.data_dir, "test", limit=samples,
                      sensor=(int(net.input.sensor_width), int(net.input.sensor_height)))
    x = batch_to_spikes(part, preprocess_config(net))
    labels = np.array([s.label for s in part], dtype=np.int64)
    res = runner.run(x)
    k = net.n_classes
    chip, sw = Score(predict(res.outputs, k), labels, k), Score(predict(res.software_outputs, k), labels, k)
    cmp = Comparison(sw, chip)
    counts = res.outputs.sum(axis=1)
    ctx.arrays["infer/output_counts"] = (counts.astype(np.int32), "spikes")
    ctx.arrays["infer/labels"] = (labels, "class")
    h = res.chip_inputs[runner.plan.chip_layers[-1]]
    ctx.chip_inputs = np.zeros(h.shape[:2] + (ctx.chip.info().rows,), bool)
    ctx.chip_inputs[:, :, :h.shape[2]] = h
    checks = np.ones(len(part), bool)
    for v in res.model_check.values():
        checks &= v
    return {"accuracy": chip.accuracy, "software_accuracy": sw.accuracy, "drop_points": cmp.drop_points,
            "model_check": float(checks.mean()), "chip_s_per_sample": res.seconds["chip_seconds"] / len(part),
            "dt_s": tb.dt_s}


def power(ctx: Context, samples: int) -> dict[str, float]:
    """``bench.power.measure_power`` with the bench's SMUs: the chip-layer inputs of the last
    ``infer`` step (its first ``samples``), or the chip model's reference workload."""
    from bench.errors import MeasurementError
    from bench.power import PowerOptions, RailSetup, ReferenceWorkload, measure_power

    if not ctx.smus:
        raise MeasurementError("power: this bench has no SMUs")
    setups = [RailSetup(c.rail, c.voltage_v, c.current_limit_a, c.nplc) for c in ctx.smu_configs]
    if ctx.chip_inputs is not None:
        spikes: Any = ctx.chip_inputs[:samples]
    else:
        spikes = ReferenceWorkload(samples, seed=int(ctx.seed.generate_state(1)[0] >> 1))
    n = int(spikes.shape[0]) if hasattr(spikes, "shape") else samples
    pw = measure_power(ctx.chip, ctx.smus, setups, spikes=spikes, options=PowerOptions(samples=n, program=False))
    return {"energy_per_sample_j": float(pw["energy_per_sample_j"]), "average_power_w": float(pw["average_power_w"]),
            "latency_s": float(pw["latency_s"]), "tsops_per_w_dense": float(pw["tsops_per_w"]["dense"])}


def finetune(ctx: Context, max_rounds: int, lr: float, samples: int) -> dict[str, float]:
    """``bench.finetune.finetune`` of the reference model's chip layer on this point's chip
    (train split: the last subjects held out; test split for chip accuracy before/after).
    The tuned weights stay programmed; a later ``infer`` step maps the tuned model again."""
    from bench.commands.infer import preprocess_config
    from bench.data.dataset import load_split
    from bench.data.preprocess import batch_to_spikes
    from bench.demo import synthetic_set
    from bench.finetune import FinetuneConfig, finetune as tune, split_by_subject
    from bench.streaming import TimeBase

    net = _net(ctx)
    if ctx.data_dir is None or not Path(ctx.data_dir).is_dir():
        ctx.data_dir = str(synthetic_set(0))
    sensor = (int(net.input.sensor_width), int(net.input.sensor_height))
    pcfg = preprocess_config(net)
    tune_s, val_s, _ = split_by_subject(load_split(ctx.data_dir, "train", samples, sensor=sensor), 2)
    test_s = load_split(ctx.data_dir, "test", samples, sensor=sensor)

    def arr(ss):
        return batch_to_spikes(ss, pcfg), np.array([q.label for q in ss], dtype=np.int64)

    (xt, yt), (xv, yv), (xs, ys) = arr(tune_s), arr(val_s or test_s), arr(test_s)
    cfg = FinetuneConfig(lr=lr, max_rounds=max_rounds, batch_size=min(64, len(yt)),
                         seed=int(ctx.seed.generate_state(1)[0] >> 1))
    res = tune(net, ctx.chip, xt, yt, xv, yv, cfg, schedule=_schedule(5.0, ctx.station.limits),
               timebase=TimeBase.for_network(net), baud=ctx.station.link.baud,
               latency_s=ctx.station.link.latency_s, x_test=xs, y_test=ys)
    ctx.runner = None  # the model changed: the next infer maps and programs the tuned layer
    return {k: float(res[k]) for k in ("rounds", "val_accuracy_before", "val_accuracy_best",
                                       "chip_accuracy_before", "chip_accuracy_after", "cells_reprogrammed")}


def _procedures() -> dict[str, Procedure]:
    from drivers.pechip import MAX_WAIT_S

    regs_w, regs = _writable_registers(), _all_registers()
    procs = [
        Procedure("reg_write", (Param("register", str, choices=regs_w, doc="register name"),
                                Param("value", float, doc="value in the register's SI unit")),
                  ("in_force",), reg_write, "write a bias/DAC register", _register_problems),
        Procedure("reg_read", (Param("register", str, choices=regs),), ("value",), reg_read,
                  "read a register"),
        Procedure("program", (Param("pattern", str, default="random",
                                    choices=("random", "checkerboard", "ramp", "model")),
                              Param("tolerance_us", float, "uS", default=5.0, low=0.1, high=50.0, si=1e-6),
                              Param("mode", str, default="board", choices=("board", "host"))),
                  ("within_tolerance", "pulses_per_cell", "stuck_cells", "success", "chip_s"), program,
                  "write-verify a level pattern or the reference model's chip layer", _schedule_problems),
        Procedure("read", (Param("v_read_v", float, "V", default=0.2, low=1e-3, limit="v_read_max_v"),
                           Param("averages", int, default=8, low=1, high=65535)),
                  ("mean_g_us", "error_mean_us", "error_std_us", "error_rms_us"), read,
                  "read the conductance map (error against the last programmed targets)"),
        Procedure("wait", (Param("wait_s", float, "s", low=0.0, high=MAX_WAIT_S),), ("chip_s",), wait,
                  "let chip time pass (retention)"),
        Procedure("infer", (Param("samples", int, default=32, low=1, high=288),
                            Param("acceleration", float, default=50_000.0, low=0.0)),
                  ("accuracy", "software_accuracy", "drop_points", "model_check", "chip_s_per_sample", "dt_s"),
                  infer, "classify synthetic gesture test samples with the reference hybrid network",
                  _timebase_problems),
        Procedure("power", (Param("samples", int, default=32, low=1, high=4096),),
                  ("energy_per_sample_j", "average_power_w", "latency_s", "tsops_per_w_dense"), power,
                  "energy per sample from the supply rails' SMU traces (the last infer's chip-layer inputs)"),
        Procedure("finetune", (Param("max_rounds", int, default=5, low=1, high=50),
                               Param("lr", float, default=0.1, low=1e-6, high=10.0),
                               Param("samples", int, default=176, low=8, high=1176)),
                  ("rounds", "val_accuracy_before", "val_accuracy_best", "chip_accuracy_before",
                   "chip_accuracy_after", "cells_reprogrammed"), finetune,
                  "chip-in-the-loop fine-tuning of the reference model's chip layer"),
    ]
    return {p.name: p for p in procs}


PROCEDURES: dict[str, Procedure] = _procedures()
