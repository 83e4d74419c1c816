"""A tiny stand-in for ``sim_backend.world.SimWorld`` (tests and benchmarks).

Same interface: ``rails``, ``lock``, ``clock_s()``, ``advance_to(t)``,
``mean_current_a(rail, t0, t1)``, ``energy_j(rail, t0, t1)``, ``trigger(t)``.  Idle current per rail plus
rectangular activity bursts added with :meth:`run`.
"""
from __future__ import annotations

import threading

import numpy as np


class StubWorld:
    def __init__(self, rails: dict[str, float] | None = None, idle_a: dict[str, float] | None = None) -> None:
        self.rails = dict(rails or {"VDDA": 1.8, "VDDD": 1.8, "VDDIO": 3.3})
        self.idle_a = dict(idle_a or {"VDDA": 1.0e-3, "VDDD": 0.5e-3, "VDDIO": 0.2e-3})
        self.lock = threading.RLock()
        self._t = 0.0
        self.bursts: list[tuple[float, float, dict[str, float]]] = []
        self.trigger_listeners: list = []

    def trigger(self, t_s: float) -> None:
        """A trigger edge at chip time ``t_s`` to every subscribed instrument (like SimWorld)."""
        with self.lock:
            for f in list(self.trigger_listeners):
                f(float(t_s))

    def clock_s(self) -> float:
        with self.lock:
            return self._t

    def advance_to(self, t_s: float) -> None:
        with self.lock:
            self._t = max(self._t, float(t_s))

    def run(self, duration_s: float, extra_a: dict[str, float]) -> tuple[float, float]:
        """Activity: ``extra_a`` on top of idle for ``duration_s`` starting now."""
        with self.lock:
            t0 = self._t
            self.bursts.append((t0, t0 + duration_s, dict(extra_a)))
            self._t = t0 + duration_s
            return t0, self._t

    def _charge(self, rail: str, t0: float, t1: float) -> float:
        q = self.idle_a.get(rail, 0.0) * (t1 - t0)
        for b0, b1, extra in self.bursts:
            overlap = min(t1, b1) - max(t0, b0)
            if overlap > 0:
                q += extra.get(rail, 0.0) * overlap
        return q

    def mean_current_a(self, rail: str, t0_s: float, t1_s: float) -> float:
        with self.lock:
            if t1_s <= t0_s:
                return self._charge(rail, t0_s, t0_s + 1e-15) / 1e-15
            return self._charge(rail, t0_s, t1_s) / (t1_s - t0_s)

    def mean_currents_a(self, rail: str, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`mean_current_a` over windows ``[t0_s[k], t1_s[k])``."""
        t0 = np.asarray(t0_s, dtype=np.float64)
        t1 = np.asarray(t1_s, dtype=np.float64)
        with self.lock:
            q = self.idle_a.get(rail, 0.0) * (t1 - t0)
            for b0, b1, extra in self.bursts:
                q = q + extra.get(rail, 0.0) * np.clip(np.minimum(t1, b1) - np.maximum(t0, b0), 0.0, None)
        return q / np.maximum(t1 - t0, 1e-300)

    def energy_j(self, rail: str | None = None, t0: float | None = None, t1: float | None = None) -> float:
        t0 = 0.0 if t0 is None else t0
        t1 = self._t if t1 is None else t1
        rails = [rail] if rail else list(self.rails)
        return sum(self.rails[r] * self._charge(r, t0, t1) for r in rails)
