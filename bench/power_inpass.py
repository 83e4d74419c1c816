"""Power measured *during* the accuracy pass, on the board's hardware trigger (issue 14).

``power`` replays a workload after the fact; this module measures the real run instead: the
SMUs' buffered traces are armed on their hardware trigger input (``SmuConfig.trigger_line``)
before every chip batch, the board raises its trigger output as each RUN starts (register
``TRIG_MODE`` = 1), and the energy of that batch -- the same RUN that produced the answers
being scored -- is the excess over the idle baseline inside the run's window of the trace
(:func:`bench.power.window_excess_energy_j`).

    with InPassPower(chip, smus, setups, lines, run=rf) as meter:   # powers up, idle baseline
        for x in batches:
            res = meter.measure(len(x), chip_s_per_sample, lambda: runner.run(x),
                                chip_seconds=lambda r: r.seconds["chip_seconds"])
    summary = meter.result()

Without a trigger line on every SMU there is nothing to align a trace with the run (the host
runs software layers between arming and RUN), so :func:`plan` says why and nothing is
measured in the pass; ``power --replay`` still works.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.errors import MeasurementError
from bench.power import (RailSetup, _match_aperture, acquire, check_compliance, net_energy_j, plan_interval,
                         power_up, set_trigger_mode, store_trace)
from drivers.instruments import Smu


def missing_trigger(cfgs: Sequence[Any]) -> str | None:
    """Why the station's SMUs cannot measure during the pass (None: they can)."""
    if not cfgs:
        return "the station has no SMUs"
    unwired = [c.rail for c in cfgs if not getattr(c, "trigger_line", 0)]
    if unwired:
        return (f"no trigger_line for rail(s) {', '.join(unwired)} in the station: a trace cannot be "
                "aligned with the run without the board's trigger; use 'power --replay'")
    return None


class InPassPower:
    """Traces of every rail around each chip batch of a real run (module docstring)."""

    def __init__(self, chip: Any, smus: Sequence[Smu], setups: Sequence[RailSetup],
                 trigger_lines: Sequence[int], *, interval_s: float | None = None, margin: float = 0.25,
                 pad_points: int = 4, idle_points: int = 100, fetch_timeout_s: float = 60.0,
                 run: Any = None, prefix: str = "power_inpass") -> None:
        if not smus or len(smus) != len(setups) or len(trigger_lines) != len(smus):
            raise MeasurementError("in-pass power: need one SMU, setup and trigger line per rail")
        self.chip, self.smus, self.setups = chip, list(smus), list(setups)
        self.lines = [int(x) for x in trigger_lines]
        self.margin, self.pad_points, self.idle_points = margin, pad_points, idle_points
        self.fetch_timeout_s = fetch_timeout_s
        self.run, self.prefix = run, prefix
        self.interval = plan_interval(self.smus, interval_s,
                                      apertures_s=[st.nplc / s.line_frequency_hz for s, st in zip(smus, setups)])
        self.idle_w: dict[str, float] = {}
        self.net_j = {st.rail: 0.0 for st in setups}
        self.covered = {st.rail: [0.0, 0.0] for st in setups}     # integrated, traced seconds
        self.samples = 0
        self.chip_s = 0.0
        self.batches = 0

    # -- set-up / tear-down --------------------------------------------------------------
    def __enter__(self) -> "InPassPower":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            set_trigger_mode(self.chip, 0)
        except Exception:  # noqa: BLE001 - the link may be the reason we are leaving
            if exc[0] is None:
                raise

    def start(self) -> None:
        """Power the rails up, match the apertures, take the idle baseline, enable the trigger."""
        power_up(self.smus, self.setups)
        _match_aperture(self.smus, self.interval)
        cap = min(s.range.buffer_points for s in self.smus)
        idle, _ = acquire(self.smus, min(self.idle_points, cap), self.interval, None, self.fetch_timeout_s,
                          store=self._store("idle"))
        check_compliance(self.smus, idle, [st.current_limit_a for st in self.setups], "in-pass power")
        self.idle_w = {st.rail: float(np.mean(t.current_a) * t.voltage_v) for st, t in zip(self.setups, idle)}
        set_trigger_mode(self.chip, 1)

    def _store(self, kind: str) -> Callable[[Smu, Any], None]:
        return lambda smu, tr: store_trace(self.run, f"{self.prefix}/{kind}", self.batches, smu, tr)

    # -- one batch -------------------------------------------------------------------------
    def measure(self, n_samples: int, est_chip_s: float, action: Callable[[], Any],
                chip_seconds: Callable[[Any], float]) -> Any:
        """Arm every SMU on its trigger line, run ``action`` (the batch: software layers, upload,
        RUN, read-out), fetch the traces and book the batch's energy; returns ``action()``.

        ``est_chip_s``: expected chip time of the batch (s), for the trace length;
        ``chip_seconds(result)``: the chip time the batch really took (the RUNs' DONE replies).
        """
        cap = min(s.range.buffer_points for s in self.smus)
        n_points = math.ceil(est_chip_s * (1 + self.margin) / self.interval) + self.pad_points
        if n_points > cap:
            raise MeasurementError(f"in-pass power: a batch of {n_samples} samples needs {n_points} trace points, "
                                   f"more than the smallest SMU buffer ({cap}); use a smaller --batch")
        traces, result = acquire(self.smus, n_points, self.interval, action, self.fetch_timeout_s,
                                 store=self._store("run"), trigger_lines=self.lines)
        check_compliance(self.smus, traces, [st.current_limit_a for st in self.setups], "in-pass power")
        t_run = float(chip_seconds(result))
        cover = min(t.duration_s for t in traces)
        if t_run > cover:
            raise MeasurementError(f"in-pass power: the batch took {t_run:.6g} s of chip time but the traces "
                                   f"cover only {cover:.6g} s after the trigger")
        batch_j = 0.0
        for st, t in zip(self.setups, traces):
            e = net_energy_j(t, self.idle_w[st.rail], t_run)
            self.net_j[st.rail] += e
            batch_j += e
            self.covered[st.rail][0] += t.duration_s * t.covered_fraction
            self.covered[st.rail][1] += t.duration_s
        self.samples += int(n_samples)
        self.chip_s += t_run
        self.batches += 1
        if self.run is not None:
            self.run.append(f"{self.prefix}/batch_energy_j", np.array([batch_j]), units="J")
            self.run.append(f"{self.prefix}/batch_samples", np.array([n_samples], dtype=np.int64))
            self.run.append(f"{self.prefix}/batch_chip_s", np.array([t_run]), units="s")
            self.run.flush()
        return result

    # -- summary -------------------------------------------------------------------------------
    def result(self) -> dict[str, Any]:
        if self.samples == 0 or self.chip_s <= 0:
            raise MeasurementError("in-pass power: no batch was measured")
        total = float(sum(self.net_j.values()))
        rails = {r: {"energy_per_sample_j": e / self.samples, "average_power_w": e / self.chip_s,
                     "idle_power_w": self.idle_w[r],
                     "covered_fraction": self.covered[r][0] / self.covered[r][1] if self.covered[r][1] else 0.0}
                 for r, e in self.net_j.items()}
        out = {"energy_per_sample_j": total / self.samples, "average_power_w": total / self.chip_s,
               "latency_s": self.chip_s / self.samples, "samples": self.samples, "batches": self.batches,
               "interval_s": self.interval, "hardware_trigger": True,
               "covered_fraction": min(v["covered_fraction"] for v in rails.values()), "rails": rails}
        if self.run is not None:
            self.run.set_attrs(self.prefix, result_json=out)
            self.run.flush()
        return out
