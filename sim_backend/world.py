"""The simulated world: one VirtualChip plus the supply-rail timeline the instruments see.

The virtual firmware calls chip methods under ``world.lock``; the instrument simulators
(SMUs) ask ``mean_current_a(rail, t0, t1)`` for the average current a rail draws over a
window of chip time.  Every chip activity (run, pulse, read, advance) is recorded as a
piecewise-constant segment per rail; outside recorded segments the chip draws its idle
(leakage) current, neurons being bias-gated off between runs.

Memory stays bounded: when more than ``max_segments`` segments are held, the oldest half is
merged pairwise into charge-preserving segments (average current over the merged span), so
energies over any window stay exact at the boundaries of merged segments and are averaged
inside them.
"""
from __future__ import annotations

import bisect
import threading

import numpy as np

from sim_backend.chip import VirtualChip
from sim_backend.physics.params import RAILS


class SimWorld:
    """Holds one chip and the rail timeline in chip time (thread-safe via ``lock``)."""

    def __init__(self, chip: VirtualChip | None = None, *, max_segments: int = 20000, **chip_kwargs) -> None:
        self.chip = chip if chip is not None else VirtualChip(**chip_kwargs)
        self.rails: dict[str, float] = dict(RAILS)
        self.lock = threading.RLock()
        self.max_segments = int(max_segments)
        self._names = list(self.rails)
        # segments: parallel lists, t0 sorted; cur[i] = average current per rail (A) over [t0, t1)
        self._t0: list[float] = []
        self._t1: list[float] = []
        self._cur: list[np.ndarray] = []
        self._cum: list[np.ndarray] = [np.zeros(len(self._names))]   # excess charge before segment i
        self._idle = np.array([self.chip.idle_current_a()[r] for r in self._names])
        self._idle_list = [float(x) for x in self._idle]
        self.chip.activity_listeners.append(self._record)
        self.trigger_listeners: list = []
        """Callables ``f(t_s)``: instruments whose trigger input is wired to the board's
        trigger output (``TRIG_MODE`` register); called under ``lock``."""

    # --- recording (called by the chip, under the caller's lock) ---------------------------
    def _record(self, t0: float, t1: float, rail_j: dict) -> None:
        dur = t1 - t0
        if dur <= 0:
            return
        vals = [rail_j.get(r, 0.0) / (self.rails[r] * dur) for r in self._names]
        if all(abs(c - i) <= 1e-9 * i for c, i in zip(vals, self._idle_list)):
            return                       # pure idle: implicit
        cur = np.array(vals)
        with self.lock:
            self._t0.append(t0)
            self._t1.append(t1)
            self._cur.append(cur)
            self._cum.append(self._cum[-1] + (cur - self._idle) * dur)
            if len(self._t0) > self.max_segments:
                self._merge_oldest()

    def _merge_oldest(self) -> None:
        half = (len(self._t0) // 2) & ~1
        t0, t1, cur = self._t0[:half], self._t1[:half], self._cur[:half]
        nt0, nt1, ncur = [], [], []
        for i in range(0, half, 2):
            a0, a1, b0, b1 = t0[i], t1[i], t0[i + 1], t1[i + 1]
            q = cur[i] * (a1 - a0) + cur[i + 1] * (b1 - b0) + self._idle * max(b0 - a1, 0.0)
            nt0.append(a0)
            nt1.append(b1)
            ncur.append(q / (b1 - a0))
        self._t0 = nt0 + self._t0[half:]
        self._t1 = nt1 + self._t1[half:]
        self._cur = ncur + self._cur[half:]
        cum = [np.zeros(len(self._names))]
        for a, b, c in zip(self._t0, self._t1, self._cur):
            cum.append(cum[-1] + (c - self._idle) * (b - a))
        self._cum = cum

    def trigger(self, t_s: float) -> None:
        """The board raised its trigger output at chip time ``t_s`` (virtual firmware, RUN)."""
        with self.lock:
            for f in list(self.trigger_listeners):
                f(float(t_s))

    # --- queries ---------------------------------------------------------------------------
    def clock_s(self) -> float:
        """Current chip time (s)."""
        return self.chip.clock_s

    def advance_to(self, t_s: float) -> None:
        """Let the chip idle until chip time ``t_s`` (no-op if already past)."""
        with self.lock:
            dt = t_s - self.chip.clock_s
            if dt > 0:
                self.chip.advance(dt)

    def _charge(self, k: int, t0: float, t1: float) -> float:
        """Charge (C) drawn from rail index k over [t0, t1): idle plus the excess of the
        segments, partial ones at the ends, whole ones via the cumulative sums."""
        if t1 <= t0:
            return 0.0
        q = self._idle[k] * (t1 - t0)
        n = len(self._t0)
        i = bisect.bisect_right(self._t1, t0)          # first segment ending after t0
        j = bisect.bisect_left(self._t0, t1)           # segments [i, j) start before t1
        if j <= i:
            return q
        q += float(self._cum[j][k] - self._cum[i][k])
        # trim the partial overlaps at both ends
        for m in {i, j - 1}:
            if m < n:
                a, b = self._t0[m], self._t1[m]
                outside = max(t0 - a, 0.0) + max(b - t1, 0.0)
                if outside > 0:
                    q -= (self._cur[m][k] - self._idle[k]) * min(outside, b - a)
        return q

    def mean_current_a(self, rail: str, t0_s: float, t1_s: float) -> float:
        """Average current (A) of ``rail`` over chip-time window [t0_s, t1_s)."""
        if rail not in self.rails:
            raise KeyError(f"unknown rail {rail!r}; rails are {list(self.rails)}")
        with self.lock:
            k = self._names.index(rail)
            if t1_s <= t0_s:
                # instantaneous: the segment covering t0 (or idle)
                i = bisect.bisect_right(self._t0, t0_s) - 1
                if 0 <= i < len(self._t0) and self._t1[i] > t0_s:
                    return float(self._cur[i][k])
                return float(self._idle[k])
            return self._charge(k, t0_s, t1_s) / (t1_s - t0_s)

    def energy_j(self, rail: str | None = None, t0: float | None = None, t1: float | None = None) -> float:
        """Energy (J) from the chip's own counters: all rails or one; whole history or a window."""
        with self.lock:
            names = self._names if rail is None else [rail]
            for r in names:
                if r not in self.rails:
                    raise KeyError(f"unknown rail {r!r}; rails are {list(self.rails)}")
            if t0 is None and t1 is None:
                return float(sum(self.chip.rail_energy_j[r] for r in names))
            a = 0.0 if t0 is None else t0
            b = self.chip.clock_s if t1 is None else t1
            return float(sum(self._charge(self._names.index(r), a, b) * self.rails[r] for r in names))

    def segments(self) -> int:
        return len(self._t0)
