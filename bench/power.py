"""Power procedure: energy per inference from SMU traces of the chip's supply rails.

Method (alignment-free, so it works with software-armed instruments as well as with a
hardware trigger):

1. program the workload's conductances (board-side write-verify) and upload its spikes;
   power the rails up (compliance first, then 0 V -> ramp);
2. idle baseline: arm every SMU for ``idle_points`` at the sample interval, fetch, and take
   the mean power per rail;
3. per chunk of samples that fits board memory: arm every SMU for a trace that covers the
   expected run time with a margin, RUN the chunk back to back, fetch the traces;
4. energy per rail = sum(I_k * V * period) over the trace minus idle power x trace duration:
   whatever idle time the trace holds before and after the run cancels, so the run need
   not be aligned with the trace, only covered by it.

The sample interval defaults to the aperture (NPLC / line frequency), so the points tile the
trace without gaps and the integral is exact; a longer interval (huge runs) stretches the
aperture to match when the instrument allows it.

Reported (all rails, baseline subtracted): ``average_power_w`` = net energy / run time,
``energy_per_sample_j`` = net energy / samples (= average power x latency),
``latency_s`` = run time per sample, ``sops_per_sample`` and ``tsops_per_w`` per SOP
definition of the chip model (``sim_backend.physics.energy``: "dense" = synapses x steps,
"event" = input spikes x fan-out).  Raw traces go to the run file, flushed per rail.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import MeasurementError
from drivers.instruments import Smu, Trace

SOP_DEFINITIONS = ("dense", "event")


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


def _interval(smus: Sequence[Smu], duration_s: float, wanted: float | None) -> float:
    base = max(max(s.aperture_s, s.range.min_interval_s) for s in smus)
    interval = max(base, wanted or 0.0)
    cap = min(s.range.buffer_points for s in smus)
    if duration_s / interval > cap:
        interval = duration_s / cap * 1.001
    return interval


def _match_aperture(smus: Sequence[Smu], interval: float) -> None:
    """Stretch the aperture to the interval where the instrument allows it (gap-free tiling)."""
    for s in smus:
        if s.aperture_s < interval * (1 - 1e-9):
            nplc = interval * s.line_frequency_hz
            if s.range.nplc_min <= nplc <= s.range.nplc_max:
                s.nplc = nplc


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
                  spikes: np.ndarray, conductances_s: np.ndarray | None = None,
                  options: PowerOptions | None = None, run: Any = None) -> dict[str, Any]:
    """Run the procedure (module docstring); ``run`` is an open ``RunFile`` or None."""
    opt = options or PowerOptions()
    spikes = np.asarray(spikes, dtype=bool)
    n = int(spikes.shape[0])
    if n < 1:
        raise MeasurementError("power: need at least one sample")
    if len(smus) != len(setups) or not smus:
        raise MeasurementError("power: need one SMU per rail (none given)")
    rails = [s.rail for s in setups]
    info = chip.info()

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

    slots = int(getattr(info, "sample_slots", n) or n)
    chunk = max(1, min(n, slots, opt.chunk_samples or n))
    # latency estimate from the chip's own description (steps x dt + circuit latency)
    try:
        dt_s = float(chip.read_register("TIME_STEP"))
    except Exception:  # noqa: BLE001 - a board without that register: assume the paper's 100 ns
        dt_s = 100e-9
    est_sample_s = spikes.shape[1] * dt_s + float(getattr(info, "latency_s", 0.0) or 0.0)

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

    # 2. idle baseline ----------------------------------------------------------------------
    idle_interval = _interval(smus, opt.idle_points * 1e-9, opt.interval_s)
    _match_aperture(smus, idle_interval)
    idle_traces, _ = acquire(smus, opt.idle_points, idle_interval, None, opt.fetch_timeout_s,
                             opt.on_event, store("idle", 0))
    idle_w = {s.rail: float(np.mean(t.current_a) * t.voltage_v) for s, t in zip(setups, idle_traces)}

    # 3. runs ------------------------------------------------------------------------------------
    gross = {r: 0.0 for r in rails}
    net = {r: 0.0 for r in rails}
    covered_s = {r: 0.0 for r in rails}
    run_s = 0.0
    points = 0
    interval = idle_interval
    for k, i in enumerate(range(0, n, chunk)):
        part = spikes[i:i + chunk]
        chip.upload_spikes(part, slot=0)
        duration = est_sample_s * part.shape[0] * (1 + opt.margin)
        interval = _interval(smus, duration, opt.interval_s)
        _match_aperture(smus, interval)
        n_points = math.ceil(duration / interval) + opt.pad_points
        traces, t_run = acquire(smus, n_points, interval, lambda p=part: chip.run(p.shape[0], slot=0),
                                opt.fetch_timeout_s, opt.on_event, store("run", k))
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
            run.flush()

    # 4. figures --------------------------------------------------------------------------------
    total_net = float(sum(net.values()))
    avg_w = total_net / run_s
    e_sample = total_net / n
    latency = run_s / n
    from sim_backend.physics import energy as model_energy  # the chip model's SOP definitions

    in_events = float(spikes.sum()) / n
    sops = {d: model_energy.sops_per_sample(d, steps=spikes.shape[1], in_events=in_events) for d in SOP_DEFINITIONS}
    tsops = {d: sops[d] / e_sample / 1e12 if e_sample > 0 else float("nan") for d in SOP_DEFINITIONS}
    # the published figure's form: dense SOPs of the whole 800-480-120-11 network per step at
    # the chip's step rate, over the measured power (sim_backend.physics.energy.tsops_per_w)
    network_rate = model_energy.tsops_per_w("dense", e_sample, steps=spikes.shape[1],
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
