"""Power procedure: energy per inference from SMU traces of the chip's supply rails.

Method (alignment-free, so it works with software-armed instruments as well as with a
hardware trigger):

1. program the workload's conductances (board-side write-verify) and upload its spikes;
   power the rails up (compliance first, then 0 V -> ramp);
2. idle baseline: arm every SMU for ``idle_points`` at the sample interval, fetch, and take
   the mean power per rail;
3. per chunk of samples that fits board memory, host memory (``MAX_CHUNK_SAMPLES``) and
   every SMU's buffer: arm every SMU for a trace that covers the expected run time with a
   margin, RUN the chunk back to back, fetch the traces (the workload is generated per chunk);
4. energy per rail = sum(I_k * V * period) over the trace minus idle power x trace duration:
   whatever idle time the trace holds before and after the run cancels, so the run need
   not be aligned with the trace, only covered by it.

Every SMU's aperture equals the sample interval, so the points tile the trace without gaps
and the integral is exact.  The interval defaults to the station's aperture (NPLC / line
frequency); an explicit interval sets every aperture to it and must lie within every SMU's
aperture and timer range (``plan_interval``), otherwise it is a usage error - an aperture
shorter than the interval would sample the rail, missing or over-counting a short run.
Interval, chunk size and trace lengths are checked before anything is programmed or powered.

Reported (all rails, baseline subtracted): ``average_power_w`` = net energy / run time,
``energy_per_sample_j`` = net energy / samples (= average power x latency),
``latency_s`` = run time per sample, ``sops_per_sample`` and ``tsops_per_w`` per SOP
definition of the chip model (``sim_backend.physics.energy``: "dense" = synapses x steps,
"event" = input spikes x fan-out).  Raw traces go to the run file, flushed per rail.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import MeasurementError, UsageError
from drivers.instruments import Smu, Trace

SOP_DEFINITIONS = ("dense", "event")
MAX_SAMPLES = 1_000_000
"""Upper bound of ``--samples`` (about 44 s of chip time; the workload is generated per chunk)."""
MAX_CHUNK_SAMPLES = 4096
"""Samples per RUN at most (host memory: 4096 x 300 x 128 spike bits, ~160 MB as bool)."""
MAX_IDLE_POINTS = 10_000
"""Upper bound of ``--idle-points`` (and never more than the smallest SMU buffer)."""
MAX_MARGIN = 10.0
"""Upper bound of ``--margin`` (the trace covers at most 11 x the expected run time)."""


class ArrayWorkload:
    """A workload held in memory: spikes (n, steps, rows) bool."""

    def __init__(self, spikes: np.ndarray) -> None:
        self.spikes = np.asarray(spikes, dtype=bool)
        if self.spikes.ndim != 3:
            raise MeasurementError(f"power: spikes must be (samples, steps, rows), got shape {self.spikes.shape}")
        self.n_samples, self.steps = int(self.spikes.shape[0]), int(self.spikes.shape[1])

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for i in range(0, self.n_samples, size):
            yield self.spikes[i:i + size]


class ReferenceWorkload:
    """``sim_backend.physics.energy.reference_workload(n, seed)`` generated chunk by chunk.

    Bit-identical to the one-shot function (tested): every sample has its own random stream
    (``energy.reference_chunks``), so memory is bounded by the chunk (the one-shot form needs
    ~38 kB per sample at once).
    """

    steps = 300
    rows = 128

    def __init__(self, n_samples: int, seed: int = 0) -> None:
        if not 1 <= n_samples <= MAX_SAMPLES:
            raise UsageError(f"--samples must be in 1..{MAX_SAMPLES}, got {n_samples}")
        from sim_backend.physics.energy import reference_conductances

        self.n_samples = int(n_samples)
        self.seed = int(seed)
        self.conductances_s = reference_conductances(self.seed)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        from sim_backend.physics.energy import reference_chunks

        yield from reference_chunks(self.n_samples, self.seed, size)


@dataclass
class RailSetup:
    """Per-rail settings (from the station's ``[[smu]]`` entry)."""

    rail: str
    voltage_v: float
    current_limit_a: float
    nplc: float = 0.01


@dataclass
class PowerOptions:
    samples: int = 64
    seed: int = 0
    idle_points: int = 100
    margin: float = 0.25
    """Trace covers (1 + margin) x the expected run time, plus ``pad_points`` intervals."""
    pad_points: int = 4
    chunk_samples: int | None = None
    """Samples per RUN (default: as many as the board's sample memory holds)."""
    interval_s: float | None = None
    program: bool = True
    fetch_timeout_s: float = 60.0
    on_event: Callable[[str, dict], None] | None = None
    """Test hook: called with ("armed", {...}) after arming, etc."""
    extra: dict[str, Any] = field(default_factory=dict)


def power_up(smus: Sequence[Smu], setups: Sequence[RailSetup]) -> None:
    """Configure (compliance first) and enable every rail."""
    for smu, s in zip(smus, setups):
        smu.configure(s.voltage_v, s.current_limit_a, s.nplc)
    for smu, s in zip(smus, setups):
        smu.enable(s.voltage_v)


def aperture_limits_s(smu: Smu) -> tuple[float, float]:
    """Shortest and longest gap-free sample interval of one SMU (aperture = interval).

    The aperture spans NPLC ``[nplc_min, nplc_max]`` of the line period; the timer spans
    ``[min_interval_s, max_interval_s]``.
    """
    r, lf = smu.range, smu.line_frequency_hz
    return max(r.nplc_min / lf, r.min_interval_s), min(r.nplc_max / lf, r.max_interval_s)


def describe_range_us(spans: Sequence[tuple[float, float]]) -> str:
    """'200..200000 us at 50 Hz, 166.667..166667 us at 60 Hz' for (lo, hi) at 50 and 60 Hz."""
    return ", ".join(f"{lo * 1e6:.6g}..{hi * 1e6:.6g} us at {lf} Hz" for (lo, hi), lf in zip(spans, (50, 60)))


def _describe_limits(smu: Smu) -> str:
    r, lf = smu.range, smu.line_frequency_hz
    lo, hi = aperture_limits_s(smu)
    return (f"{smu.model} on {smu.rail or 'its rail'} integrates {lo * 1e6:.6g}..{hi * 1e6:.6g} us "
            f"(NPLC {r.nplc_min:g}..{r.nplc_max:g} at {lf:g} Hz, timer up to {r.max_interval_s:g} s)")


def plan_interval(smus: Sequence[Smu], wanted_s: float | None,
                  apertures_s: Sequence[float | None] | None = None) -> float:
    """The sample interval of every trace: gap-free, i.e. each SMU's aperture equals it.

    The energy integral sum(I_k * V * period) is only right when every point averages over
    its whole period: with an aperture shorter than the interval the points sample the rail
    and a short run is either missed or counted period/aperture times over.  So the interval
    must be one every SMU can integrate over; anything else is a usage error naming
    ``--interval-us`` and the instrument's limits (never silently replaced).

    Default (``wanted_s`` None): the longest configured aperture (or timer minimum) of the
    SMUs (``apertures_s``, e.g. from the station's NPLC, else the instruments' current ones).
    """
    if wanted_s is None:
        aps = list(apertures_s) if apertures_s is not None else [None] * len(smus)
        interval = max(max(a if a is not None else s.aperture_s, s.range.min_interval_s)
                       for s, a in zip(smus, aps))
        flag = f"the SMUs' apertures (station nplc, longest {interval * 1e6:.6g} us)"
    else:
        interval = float(wanted_s)
        if not (math.isfinite(interval) and interval > 0):
            raise UsageError(f"--interval-us must be a finite number > 0, got {interval * 1e6:g}")
        flag = f"--interval-us {interval * 1e6:.6g}"
    lo = max(aperture_limits_s(s)[0] for s in smus)
    hi = min(aperture_limits_s(s)[1] for s in smus)
    for s in smus:
        s_lo, s_hi = aperture_limits_s(s)
        if not s_lo * (1 - 1e-9) <= interval <= s_hi * (1 + 1e-9):
            span = (f"all SMUs together accept {lo * 1e6:.6g}..{hi * 1e6:.6g} us" if lo <= hi
                    else "the SMUs have no interval in common")
            raise UsageError(f"{flag}: not a gap-free sample interval for every SMU (the aperture must "
                             f"equal the interval for an exact energy integral): the {_describe_limits(s)}; "
                             f"{span}")
    return interval


def _match_aperture(smus: Sequence[Smu], interval: float) -> None:
    """Set every SMU's aperture to the interval (gap-free tiling; ``plan_interval`` checked it)."""
    for s in smus:
        if abs(s.aperture_s - interval) > 1e-9 * interval:
            s.nplc = interval * s.line_frequency_hz


def plan_chunk(smus: Sequence[Smu], interval: float, est_sample_s: float, margin: float, pad_points: int,
               slots: int, wanted: int | None = None) -> int:
    """Samples per RUN: fits the board's sample memory, host memory and every SMU's buffer."""
    cap = min(s.range.buffer_points for s in smus)
    per_sample = max(est_sample_s, 1e-12) * (1 + margin)
    by_buffer = int(((cap - pad_points - 1) * interval) // per_sample)
    if by_buffer < 1:
        small = min(smus, key=lambda s: s.range.buffer_points)
        need = math.ceil(per_sample / interval) + pad_points
        raise UsageError(f"--margin {margin:g} / --interval-us {interval * 1e6:.6g}: one sample's trace needs "
                         f"{need} points, more than the {small.model} on {small.rail}'s buffer of {cap}; "
                         "lower --margin or raise --interval-us")
    return max(1, min(slots, MAX_CHUNK_SAMPLES, by_buffer, wanted or slots))


def acquire(smus: Sequence[Smu], n_points: int, interval: float, action: Callable[[], Any] | None,
            timeout_s: float, on_event: Callable[[str, dict], None] | None = None,
            store: Callable[[Smu, Trace], None] | None = None) -> tuple[list[Trace], Any]:
    """Arm all SMUs, perform ``action`` (e.g. RUN), fetch every trace (stored as it comes)."""
    for s in smus:
        s.arm_trace(n_points, interval)
    if on_event:
        on_event("armed", {"points": n_points, "interval_s": interval})
    result = action() if action is not None else None
    traces = []
    for s in smus:
        tr = s.fetch_trace(timeout_s=timeout_s)
        if store is not None:
            store(s, tr)
        traces.append(tr)
    return traces, result


def measure_power(chip: Any, smus: Sequence[Smu], setups: Sequence[RailSetup], *,
                  spikes: Any, conductances_s: np.ndarray | None = None,
                  options: PowerOptions | None = None, run: Any = None) -> dict[str, Any]:
    """Run the procedure (module docstring); ``run`` is an open ``RunFile`` or None.

    ``spikes``: a (samples, steps, rows) bool array, or a workload object with
    ``n_samples``, ``steps`` and ``chunks(size)`` (e.g. :class:`ReferenceWorkload`, generated
    chunk by chunk).  The sample interval, the chunk size and the trace lengths are planned
    and checked against every SMU before anything is programmed or powered.
    """
    opt = options or PowerOptions()
    workload = spikes if hasattr(spikes, "chunks") else ArrayWorkload(spikes)
    n = int(workload.n_samples)
    steps = int(workload.steps)
    if n < 1:
        raise MeasurementError("power: need at least one sample")
    if len(smus) != len(setups) or not smus:
        raise MeasurementError("power: need one SMU per rail (none given)")
    if not (math.isfinite(opt.margin) and 0 <= opt.margin <= MAX_MARGIN):
        raise UsageError(f"--margin must be a number in 0..{MAX_MARGIN:g}, got {opt.margin!r}")
    cap = min(s.range.buffer_points for s in smus)
    if not 1 <= opt.idle_points <= min(cap, MAX_IDLE_POINTS):
        raise UsageError(f"--idle-points must be in 1..{min(cap, MAX_IDLE_POINTS)} (SMU buffer {cap}), "
                         f"got {opt.idle_points}")
    rails = [s.rail for s in setups]
    info = chip.info()

    # 0. plan (before anything is programmed or powered) --------------------------------------
    interval = plan_interval(smus, opt.interval_s,
                             apertures_s=[st.nplc / smu.line_frequency_hz if st.nplc is not None else None
                                          for smu, st in zip(smus, setups)])
    slots = int(getattr(info, "sample_slots", n) or n)
    # latency estimate from the chip's own description (steps x dt + circuit latency)
    try:
        dt_s = float(chip.read_register("TIME_STEP"))
    except Exception:  # noqa: BLE001 - a board without that register: assume the paper's 100 ns
        dt_s = 100e-9
    est_sample_s = steps * dt_s + float(getattr(info, "latency_s", 0.0) or 0.0)
    chunk = min(n, plan_chunk(smus, interval, est_sample_s, opt.margin, opt.pad_points, slots,
                              opt.chunk_samples))

    # 1. program + power up --------------------------------------------------------------
    programmed = None
    if conductances_s is not None and opt.program:
        from firmware_iface.write_verify import PulseSchedule

        g = np.asarray(conductances_s, dtype=np.float64)
        rows, cols = np.nonzero(np.ones_like(g, dtype=bool))
        res = chip.write_verify(rows, cols, g[rows, cols], PulseSchedule())
        programmed = {"cells": int(rows.size), "success": int(np.sum(res.success)),
                      "chip_seconds": float(res.chip_seconds)}
        if run is not None:
            run.write("program/g_s", res.g_s.reshape(g.shape), units="S")
            run.write("program/targets_s", g, units="S")
            run.flush()
    power_up(smus, setups)
    _match_aperture(smus, interval)

    store_index = {"n": 0}

    def store(kind: str, chunk_no: int) -> Callable[[Smu, Trace], None]:
        def _store(smu: Smu, tr: Trace) -> None:
            if run is None:
                return
            base = f"{kind}/{smu.rail}"
            run.append(f"{base}/current_a", tr.current_a, units="A")
            run.append(f"{base}/time_s", tr.time_s, units="s")
            run.append(f"{base}/chunk", np.full(tr.current_a.size, chunk_no, dtype=np.int32))
            run.set_attrs(base, voltage_v=tr.voltage_v, period_s=tr.period_s, aperture_s=tr.aperture_s,
                          model=smu.model, identity=smu.identity, resource=smu.adapter.resource_name)
            run.flush()
            store_index["n"] += 1
        return _store

    def check_tiling(traces: Sequence[Trace]) -> None:
        for s, t in zip(smus, traces):
            if abs(t.aperture_s - t.period_s) > 1e-6 * t.period_s:
                raise MeasurementError(f"power: {s.label}: aperture {t.aperture_s:.6g} s differs from the "
                                       f"interval {t.period_s:.6g} s; the energy integral would be wrong")

    # 2. idle baseline ----------------------------------------------------------------------
    idle_traces, _ = acquire(smus, opt.idle_points, interval, None, opt.fetch_timeout_s,
                             opt.on_event, store("idle", 0))
    check_tiling(idle_traces)
    idle_w = {s.rail: float(np.mean(t.current_a) * t.voltage_v) for s, t in zip(setups, idle_traces)}

    # 3. runs ------------------------------------------------------------------------------------
    gross = {r: 0.0 for r in rails}
    net = {r: 0.0 for r in rails}
    covered_s = {r: 0.0 for r in rails}
    run_s = 0.0
    points = 0
    spike_total = 0.0
    for k, part in enumerate(workload.chunks(chunk)):
        spike_total += float(np.count_nonzero(part))
        chip.upload_spikes(part, slot=0)
        duration = est_sample_s * part.shape[0] * (1 + opt.margin)
        n_points = math.ceil(duration / interval) + opt.pad_points
        traces, t_run = acquire(smus, n_points, interval, lambda p=part: chip.run(p.shape[0], slot=0),
                                opt.fetch_timeout_s, opt.on_event, store("run", k))
        check_tiling(traces)
        t_run = float(t_run)
        cover = min(t.duration_s for t in traces)
        if t_run > cover:
            raise MeasurementError(f"power: the run took {t_run:.6g} s of chip time but the traces "
                                   f"cover only {cover:.6g} s; raise --margin")
        run_s += t_run
        points += n_points
        for s, t in zip(setups, traces):
            e = t.energy_j()
            gross[s.rail] += e
            net[s.rail] += e - idle_w[s.rail] * t.duration_s
            covered_s[s.rail] += t.duration_s
        if run is not None:
            run.append("run/chunk_run_s", np.array([t_run]), units="s")
            run.append("run/chunk_samples", np.array([part.shape[0]], np.int64), units="samples")
            run.flush()

    # 4. figures --------------------------------------------------------------------------------
    total_net = float(sum(net.values()))
    avg_w = total_net / run_s
    e_sample = total_net / n
    latency = run_s / n
    from sim_backend.physics import energy as model_energy  # the chip model's SOP definitions

    in_events = spike_total / n
    sops = {d: model_energy.sops_per_sample(d, steps=steps, in_events=in_events) for d in SOP_DEFINITIONS}
    tsops = {d: sops[d] / e_sample / 1e12 if e_sample > 0 else float("nan") for d in SOP_DEFINITIONS}
    # the published figure's form: dense SOPs of the whole 800-480-120-11 network per step at
    # the chip's step rate, over the measured power (sim_backend.physics.energy.tsops_per_w)
    network_rate = model_energy.tsops_per_w("dense", e_sample, steps=steps,
                                            synapses=model_energy.NETWORK_SYNAPSES, dt_s=dt_s,
                                            power_w=avg_w) if avg_w > 0 else float("nan")
    per_rail = {r: {"average_power_w": net[r] / run_s, "energy_per_sample_j": net[r] / n,
                    "idle_power_w": idle_w[r], "gross_energy_j": gross[r], "traced_s": covered_s[r]}
                for r in rails}
    result = {
        "average_power_w": avg_w,
        "energy_per_sample_j": e_sample,
        "latency_s": latency,
        "sops_per_sample": sops,
        "tsops_per_w": tsops,
        "tsops_per_w_network_dense_rate": network_rate,
        "idle_power_w": float(sum(idle_w.values())),
        "run_chip_s": run_s,
        "samples": n,
        "chunks": math.ceil(n / chunk),
        "interval_s": interval,
        "trace_points": points,
        "rails": per_rail,
        "in_spikes_per_sample": in_events,
        "smu": [{"rail": s.rail, "model": s.model, "resource": s.adapter.resource_name, "identity": s.identity}
                for s in smus],
    }
    if programmed is not None:
        result["programmed"] = programmed
    if run is not None:
        run.set_attrs("/", result_json=result, sop_definitions=list(SOP_DEFINITIONS))
        run.flush()
    return result
