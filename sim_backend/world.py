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

    def mean_currents_a(self, rail: str, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        """:meth:`mean_current_a` over many windows ``[t0_s[k], t1_s[k])`` at once (A).

        A simulated SMU's buffered trace asks for one window per point (57,000 points for a
        run of a few seconds at 200 us per point): one call per window cost ~3.5 us each,
        ~0.2 s per trace, inside one instrument query.  Same charge as :meth:`_charge`, in
        closed form: the excess charge drawn before chip time t is
        ``E(t) = cum[i] + (cur[i] - idle) * clip(t - t0[i], 0, t1[i] - t0[i])`` with i the
        last segment starting at or before t (0 before the first), and a window draws
        ``idle * (b - a) + E(b) - E(a)`` (the ``cum`` terms subtracted first).  An empty
        window (``b <= a``) gives the current at ``a``, as :meth:`mean_current_a` does.
        """
        if rail not in self.rails:
            raise KeyError(f"unknown rail {rail!r}; rails are {list(self.rails)}")
        a = np.asarray(t0_s, dtype=np.float64)
        b = np.asarray(t1_s, dtype=np.float64)
        with self.lock:
            k = self._names.index(rail)
            idle = float(self._idle[k])
            n = len(self._t0)
            if n == 0:
                return np.full(np.broadcast(a, b).shape, idle)
            s0 = np.asarray(self._t0, dtype=np.float64)
            s1 = np.asarray(self._t1, dtype=np.float64)
            rate = np.fromiter((c[k] for c in self._cur), dtype=np.float64, count=n) - idle
            cum = np.fromiter((c[k] for c in self._cum[:n]), dtype=np.float64, count=n)

        def locate(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(index of the last segment starting at or before t, 0 before the first; excess
            charge drawn in that segment before t -- 0 before the first, as cum[0] is)."""
            j = np.maximum(np.searchsorted(s0, t, side="right") - 1, 0)
            return j, rate[j] * np.clip(t - s0[j], 0.0, s1[j] - s0[j])

        ja, pa = locate(a)
        jb, pb = locate(b)
        # whole segments between the two (exactly 0 when both ends lie in one segment), then
        # the parts before b and before a in their own segments: no cancellation against the
        # charge of the whole history
        excess = (cum[jb] - cum[ja]) + pb - pa
        width = b - a
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = idle + excess / width
        if np.any(width <= 0):
            i = np.searchsorted(s0, a, side="right") - 1
            j = np.maximum(i, 0)
            inside = (i >= 0) & (s1[j] > a)
            mean = np.where(width > 0, mean, np.where(inside, idle + rate[j], idle))
        return mean

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
