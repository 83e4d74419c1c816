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
    schedule: Any = None
    """Write-verify schedule (default: ``PulseSchedule()``; commands pass the station's)."""
    trigger_lines: Sequence[int | None] | None = None
    """Per SMU, the hardware trigger input wired to the board's trigger output (None: none)."""
    extra: dict[str, Any] = field(default_factory=dict)


def power_up(smus: Sequence[Smu], setups: Sequence[RailSetup]) -> None:
    """Configure (compliance first) and enable every rail; a rail already on at these settings
    is left alone (enabling again would ramp it through 0 V under a running chip)."""
    todo = [(smu, s) for smu, s in zip(smus, setups)
            if getattr(smu, "powered", None) != (s.voltage_v, s.current_limit_a, s.nplc)]
    for smu, s in todo:
        smu.configure(s.voltage_v, s.current_limit_a, s.nplc)
    for smu, s in todo:
        smu.enable(s.voltage_v)
        smu.powered = (s.voltage_v, s.current_limit_a, s.nplc)


def aperture_limits_s(smu: Smu) -> tuple[float, float]:
    """Shortest and longest sample interval of one SMU: one reading (aperture + the model's
    overhead) at NPLC ``[nplc_min, nplc_max]`` of the line period, within the timer's
    ``[min_interval_s, max_interval_s]``."""
    r, lf = smu.range, smu.line_frequency_hz
    return max(r.nplc_min / lf + r.overhead_s, r.min_interval_s), min(r.nplc_max / lf + r.overhead_s, r.max_interval_s)


def describe_range_us(spans: Sequence[tuple[float, float]]) -> str:
    """'200..200000 us at 50 Hz, 166.667..166667 us at 60 Hz' for (lo, hi) at 50 and 60 Hz."""
    return ", ".join(f"{lo * 1e6:.6g}..{hi * 1e6:.6g} us at {lf} Hz" for (lo, hi), lf in zip(spans, (50, 60)))


def _describe_limits(smu: Smu) -> str:
    r, lf = smu.range, smu.line_frequency_hz
    lo, hi = aperture_limits_s(smu)
    return (f"{smu.model} on {smu.rail or 'its rail'} takes {lo * 1e6:.6g}..{hi * 1e6:.6g} us per reading "
            f"(aperture NPLC {r.nplc_min:g}..{r.nplc_max:g} at {lf:g} Hz + {r.overhead_s * 1e6:.6g} us overhead, "
            f"timer up to {r.max_interval_s:g} s)")


def plan_interval(smus: Sequence[Smu], wanted_s: float | None,
                  apertures_s: Sequence[float | None] | None = None) -> float:
    """The sample interval of every trace.

    One reading takes the aperture plus the model's overhead (``InstrumentRange.overhead_s``),
    so the interval must be at least that on every SMU -- shorter, and a B2900 loses timer
    ticks, points come twice as far apart and a nominal-period integral misses half the
    energy.  Each SMU then integrates as much of the interval as it can (aperture = interval
    - overhead, ``_match_aperture``); the traces are integrated over their own timestamps
    and the covered fraction is reported.

    Default (``wanted_s`` None): the longest configured aperture (station NPLC, else the
    instrument's current one) plus that SMU's overhead.  An explicit interval outside what
    every SMU can do is a usage error naming ``--interval-us`` and the instrument's figures.
    """
    if wanted_s is None:
        aps = list(apertures_s) if apertures_s is not None else [None] * len(smus)
        interval = max(max((a if a is not None else s.aperture_s) + s.range.overhead_s, s.range.min_interval_s)
                       for s, a in zip(smus, aps))
        flag = f"the SMUs' apertures (station nplc) + overhead, longest {interval * 1e6:.6g} us"
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
            raise UsageError(f"{flag}: not a feasible sample interval for every SMU: the "
                             f"{_describe_limits(s)}; {span}")
    return interval


def _match_aperture(smus: Sequence[Smu], interval: float) -> None:
    """Every SMU integrates as much of the interval as one reading allows:
    aperture = interval - overhead (within its NPLC range; ``plan_interval`` checked it)."""
    for s in smus:
        r = s.range
        ap = min(max(interval - r.overhead_s, r.nplc_min / s.line_frequency_hz), r.nplc_max / s.line_frequency_hz)
        if abs(s.aperture_s - ap) > 1e-9 * ap:
            s.nplc = ap * s.line_frequency_hz


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
            store: Callable[[Smu, Trace], None] | None = None,
            trigger_lines: Sequence[int | None] | None = None) -> tuple[list[Trace], Any]:
    """Arm all SMUs (on their hardware trigger line where given), perform ``action`` (e.g.
    RUN), fetch every trace (stored as it comes)."""
    lines = list(trigger_lines) if trigger_lines is not None else [None] * len(smus)
    for s, line in zip(smus, lines):
        s.arm_trace(n_points, interval, trigger_line=line)
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


def window_excess_energy_j(tr: Trace, idle_w: float, t0_s: float, t1_s: float) -> float:
    """Energy above the idle baseline drawn inside ``[t0_s, t1_s]`` of the trace (trace time,
    i.e. since the trigger), when the activity is known to lie in that window (hardware
    trigger at RUN start).

    Every aperture counts the excess charge it measured (all of it: outside the window there is
    none to count, so nothing measured is misplaced); each part of a gap between apertures
    that lies inside the window gets the mean in-window excess rate of its two neighbours (or
    the one that overlaps the window).  Exact for activity inside one aperture and for a
    steady run; errors come only from rate changes inside the gaps."""
    v = tr.voltage_v
    if v <= 0 or len(tr.current_a) == 0:
        return 0.0
    a = tr.aperture_s
    t = np.asarray(tr.time_s, dtype=np.float64)
    excess_q = (np.asarray(tr.current_a, dtype=np.float64) - idle_w / v) * a
    overlap = np.clip(np.minimum(t + a, t1_s) - np.maximum(t, t0_s), 0.0, None)
    rate = np.divide(excess_q, overlap, out=np.zeros_like(excess_q), where=overlap > 0)
    q = float(np.sum(excess_q))
    g0, g1 = t[:-1] + a, t[1:]
    inside = np.clip(np.minimum(g1, t1_s) - np.maximum(g0, t0_s), 0.0, None)
    both = (overlap[:-1] > 0).astype(float) + (overlap[1:] > 0).astype(float)
    gap_rate = np.divide(rate[:-1] + rate[1:], both, out=np.zeros_like(inside), where=both > 0)
    q += float(np.sum(inside * gap_rate))
    return q * v


def net_energy_j(tr: Trace, idle_w: float, run_s: float | None) -> float:
    """Energy above the idle baseline in one trace: inside the run's window ``[0, run_s]``
    when the trace was armed on the board's trigger at RUN start (``run_s`` given), else
    alignment-free (the trace's energy minus idle power x its span: idle before and after the
    run cancels).  The power procedure, the in-pass meter and the live viewer all use this."""
    if run_s is not None:
        return window_excess_energy_j(tr, idle_w, 0.0, run_s)
    return tr.energy_j() - idle_w * tr.duration_s


def set_trigger_mode(chip: Any, mode: int) -> None:
    """Board trigger output (register TRIG_MODE): 0 off, 1 at RUN start, 2 at each sample."""
    chip.write_register("TRIG_MODE", float(mode))


def check_compliance(smus: Sequence[Smu], traces: Sequence[Trace], limits_a: Sequence[float],
                     what: str = "power") -> None:
    """A rail whose source was in its current limit during a trace measured the limit, not the
    chip: fail (exit 1) naming the rail, the limit and the fraction of points in compliance."""
    bad = [(s, t, lim) for s, t, lim in zip(smus, traces, limits_a) if t.compliance_fraction > 0]
    if bad:
        raise MeasurementError(f"{what}: " + "; ".join(
            f"rail {s.rail} ({s.model} at {s.adapter.resource_name}) hit its current limit "
            f"{lim:g} A in {t.compliance_fraction:.1%} of {len(t.current_a)} points" for s, t, lim in bad)
            + " -- the readings are clamped, the energy would be wrong; raise current_limit_a "
              "(within max_current_a) or check the load")


def store_trace(run: Any, kind: str, chunk_no: int, smu: Smu, tr: Trace) -> None:
    """Append one trace to ``run`` under ``<kind>/<rail>/`` (flushed): currents, times relative
    to the trigger, compliance flags; settings and coverage as attributes."""
    if run is None:
        return
    base = f"{kind}/{smu.rail}"
    run.append(f"{base}/current_a", tr.current_a, units="A")
    run.append(f"{base}/time_s", tr.time_s, units="s")
    run.append(f"{base}/compliance", np.asarray(tr.compliance, dtype=bool))
    run.append(f"{base}/chunk", np.full(tr.current_a.size, chunk_no, dtype=np.int32))
    run.set_attrs(base, voltage_v=tr.voltage_v, period_s=tr.period_s, aperture_s=tr.aperture_s,
                  model=smu.model, identity=smu.identity, resource=smu.adapter.resource_name,
                  covered_fraction=tr.covered_fraction, lost_points=tr.lost_points,
                  trigger_line=-1 if tr.meta.get("trigger_line") is None else int(tr.meta["trigger_line"]))
    run.flush()


def _runs(chip: Any, smus: Sequence[Smu], setups: Sequence[RailSetup], workload: Any, chunk: int,
          est_sample_s: float, interval: float, opt: PowerOptions, run: Any, triggered: bool,
          lines: Sequence[int | None], limits: Sequence[float],
          store: Callable[[str, int], Callable[[Smu, Trace], None]], idle_w: dict[str, float]) -> tuple:
    """Step 3 of :func:`measure_power`: every chunk uploaded, RUN inside the traces, energies booked."""
    rails = [s.rail for s in setups]
    gross = {r: 0.0 for r in rails}
    net = {r: 0.0 for r in rails}
    covered_s = {r: 0.0 for r in rails}
    integrated_s = {r: 0.0 for r in rails}
    lost = {r: 0 for r in rails}
    run_s = 0.0
    points = 0
    spike_total = 0.0
    for k, part in enumerate(workload.chunks(chunk)):
        spike_total += float(np.count_nonzero(part))
        chip.upload_spikes(part, slot=0)
        duration = est_sample_s * part.shape[0] * (1 + opt.margin)
        n_points = math.ceil(duration / interval) + opt.pad_points
        traces, t_run = acquire(smus, n_points, interval, lambda p=part: chip.run(p.shape[0], slot=0),
                                opt.fetch_timeout_s, opt.on_event, store("run", k), trigger_lines=lines)
        check_compliance(smus, traces, limits)
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
            net[s.rail] += net_energy_j(t, idle_w[s.rail], t_run if triggered else None)
            covered_s[s.rail] += t.duration_s
            integrated_s[s.rail] += t.duration_s * t.covered_fraction
            lost[s.rail] += t.lost_points
        if run is not None:
            run.append("run/chunk_run_s", np.array([t_run]), units="s")
            run.append("run/chunk_samples", np.array([part.shape[0]], np.int64), units="samples")
            run.flush()

    return net, gross, run_s, points, spike_total, covered_s, integrated_s, lost


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
        res = chip.write_verify(rows, cols, g[rows, cols], opt.schedule or PulseSchedule())
        programmed = {"cells": int(rows.size), "success": int(np.sum(res.success)),
                      "chip_seconds": float(res.chip_seconds)}
        if run is not None:
            run.write("program/g_s", res.g_s.reshape(g.shape), units="S")
            run.write("program/targets_s", g, units="S")
            run.flush()
    power_up(smus, setups)
    _match_aperture(smus, interval)

    lines = list(opt.trigger_lines) if opt.trigger_lines is not None else [None] * len(smus)
    limits = [st.current_limit_a for st in setups]

    def store(kind: str, chunk_no: int) -> Callable[[Smu, Trace], None]:
        return lambda smu, tr: store_trace(run, kind, chunk_no, smu, tr)

    # 2. idle baseline ----------------------------------------------------------------------
    idle_traces, _ = acquire(smus, opt.idle_points, interval, None, opt.fetch_timeout_s,
                             opt.on_event, store("idle", 0))
    check_compliance(smus, idle_traces, limits)
    idle_w = {s.rail: float(np.mean(t.current_a) * t.voltage_v) for s, t in zip(setups, idle_traces)}

    # 3. runs ------------------------------------------------------------------------------------
    triggered = any(line is not None for line in lines)
    if triggered:       # the board raises its trigger output at each RUN's start
        set_trigger_mode(chip, 1)
    try:
        net, gross, run_s, points, spike_total, covered_s, integrated_s, lost = _runs(
            chip, smus, setups, workload, chunk, est_sample_s, interval, opt, run, triggered, lines, limits, store,
            idle_w)
    finally:
        if triggered:
            try:
                set_trigger_mode(chip, 0)
            except Exception:  # noqa: BLE001 - the link may be why we are leaving; the error in flight wins
                pass
    # 4. figures --------------------------------------------------------------------------------
    total_net = float(sum(net.values()))
    avg_w = total_net / run_s
    e_sample = total_net / n
    latency = run_s / n
    from sim_backend.physics import energy as model_energy  # the chip model's SOP definitions

    in_events = spike_total / n
    sops = {d: model_energy.sops_per_sample(d, steps=steps, in_events=in_events) for d in SOP_DEFINITIONS}
    tsops = {d: sops[d] / e_sample / 1e12 if e_sample > 0 else float("nan") for d in SOP_DEFINITIONS}
    nan_reason = (f"net energy per sample {e_sample:.3g} J is not positive (the run drew no more than "
                  "the idle baseline): TSOPS/W is undefined")
    # the published figure's form: dense SOPs of the whole 800-480-120-11 network per step at
    # the chip's step rate, over the measured power (sim_backend.physics.energy.tsops_per_w)
    network_rate = model_energy.tsops_per_w("dense", e_sample, steps=steps,
                                            synapses=model_energy.NETWORK_SYNAPSES, dt_s=dt_s,
                                            power_w=avg_w) if avg_w > 0 else float("nan")
    per_rail = {r: {"average_power_w": net[r] / run_s, "energy_per_sample_j": net[r] / n,
                    "idle_power_w": idle_w[r], "gross_energy_j": gross[r], "traced_s": covered_s[r],
                    "covered_fraction": integrated_s[r] / covered_s[r] if covered_s[r] > 0 else 0.0,
                    "lost_points": lost[r]}
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
        "hardware_trigger": triggered,
        "covered_fraction": min(per_rail[r]["covered_fraction"] for r in rails),
        "smu": [{"rail": s.rail, "model": s.model, "resource": s.adapter.resource_name, "identity": s.identity}
                for s in smus],
    }
    if e_sample <= 0:
        result["tsops_per_w_reason"] = nan_reason
        result["tsops_per_w_network_dense_rate_reason"] = nan_reason
    if programmed is not None:
        result["programmed"] = programmed
    if run is not None:
        run.set_attrs("/", result_json=result, sop_definitions=list(SOP_DEFINITIONS))
        run.flush()
    return result
