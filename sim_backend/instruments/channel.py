"""One simulated SMU channel wired to a rail of the virtual chip.

Time base: the world's chip clock.  A single reading integrates over one aperture starting
now (and advances the world, idle, past it).  A buffered acquisition armed at chip time
``t0`` takes point ``k`` as the mean current over ``[t0 + k*period, t0 + k*period +
aperture]``; the points are computed when the host asks for them, after the world was
advanced (idle) to the end of the last point that is needed.

Load model: the chip's rail current at the nominal rail voltage, scaled linearly with the
programmed level (a resistive load); clamped at the current limit (compliance).  An output
that is off sources nothing and reads 0 A, 0 V.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Acquisition:
    t0_s: float
    n: int
    period_s: float
    aperture_s: float
    level_v: float
    limit_a: float
    output: bool
    values_a: np.ndarray | None = None
    compliance: np.ndarray | None = None

    @property
    def end_s(self) -> float:
        return self.t0_s + (self.n - 1) * self.period_s + self.aperture_s

    def completed(self, now_s: float) -> int:
        if now_s < self.t0_s + self.aperture_s:
            return 0
        return min(self.n, int(math.floor((now_s - self.t0_s - self.aperture_s) / self.period_s + 1e-9)) + 1)

    def times_s(self) -> np.ndarray:
        return np.arange(self.n) * self.period_s


@dataclass
class SimChannel:
    world: Any
    rail: str
    max_voltage_v: float
    max_current_a: float
    min_current_limit_a: float = 1e-9
    nplc_range: tuple[float, float] = (0.01, 10.0)
    line_frequency_hz: float = 50.0
    output: bool = False
    level_v: float = 0.0
    limit_a: float = 1.05e-4
    nplc: float = 1.0
    source_func: str = "VOLT"
    acq: Acquisition | None = None
    compliance_events: int = 0
    history: list[tuple[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.output = False
        self.level_v = 0.0
        self.limit_a = 1.05e-4
        self.nplc = 1.0
        self.source_func = "VOLT"
        self.acq = None

    @property
    def nominal_v(self) -> float:
        return float(self.world.rails[self.rail])

    @property
    def aperture_s(self) -> float:
        return self.nplc / self.line_frequency_hz

    def set_output(self, on: bool) -> None:
        self.output = bool(on)
        self.history.append(("output", self.output))

    # ---- physics ---------------------------------------------------------------------
    def _load(self, i_chip: float, level: float, limit: float, output: bool) -> tuple[float, float, bool]:
        if not output or level <= 0.0:
            return 0.0, (level if output else 0.0), False
        i = i_chip * level / self.nominal_v
        if i > limit:
            return limit, level * limit / i, True
        return i, level, False

    def _now(self) -> float:
        return float(self.world.clock_s())

    def read(self) -> tuple[float, float]:
        """One reading (current A, voltage V) integrated over one aperture from now."""
        with self.world.lock:
            t0 = self._now()
            t1 = t0 + self.aperture_s
            self.world.advance_to(t1)
            i_chip = float(self.world.mean_current_a(self.rail, t0, t1)) if self.output else 0.0
        i, v, comp = self._load(i_chip, self.level_v, self.limit_a, self.output)
        self.compliance_events += comp
        return i, v

    # ---- buffered acquisition ----------------------------------------------------------
    def arm(self, n: int, period_s: float) -> Acquisition:
        with self.world.lock:
            t0 = self._now()
        self.acq = Acquisition(t0_s=t0, n=int(n), period_s=max(float(period_s), self.aperture_s),
                               aperture_s=self.aperture_s, level_v=self.level_v,
                               limit_a=self.limit_a, output=self.output)
        return self.acq

    def completed(self) -> int:
        if self.acq is None:
            return 0
        with self.world.lock:
            return self.acq.completed(self._now())

    def _window_means(self, a: Acquisition, n: int) -> np.ndarray:
        """Mean chip current of the first ``n`` windows (world lock held by the caller)."""
        if not a.output:
            return np.zeros(n)
        starts = a.t0_s + np.arange(n) * a.period_s
        vec = getattr(self.world, "mean_currents_a", None)
        if vec is not None:       # optional vectorised form of mean_current_a
            return np.asarray(vec(self.rail, starts, starts + a.aperture_s), dtype=np.float64)
        return np.array([float(self.world.mean_current_a(self.rail, s, s + a.aperture_s)) for s in starts])

    def _load_vec(self, raw: np.ndarray, a: Acquisition) -> tuple[np.ndarray, np.ndarray]:
        if not a.output or a.level_v <= 0.0:
            return np.zeros_like(raw), np.zeros(raw.shape, dtype=bool)
        i = raw * (a.level_v / self.nominal_v)
        comp = i > a.limit_a
        return np.where(comp, a.limit_a, i), comp

    def complete(self) -> None:
        """Block-until-done (``*WAI``/``*OPC?``/``waitcomplete()``): advance the world to the end."""
        a = self.acq
        if a is None or a.values_a is not None:
            return
        with self.world.lock:
            if self._now() < a.end_s:
                self.world.advance_to(a.end_s)
            raw = self._window_means(a, a.n)
        a.values_a, a.compliance = self._load_vec(raw, a)
        self.compliance_events += int(a.compliance.sum())

    def buffer(self) -> tuple[np.ndarray, np.ndarray]:
        """(currents, relative times) of the points the chip clock has reached."""
        a = self.acq
        if a is None:
            return np.zeros(0), np.zeros(0)
        n = self.completed()
        if n == a.n:
            self.complete()
        if n == 0:
            return np.zeros(0), np.zeros(0)
        if a.values_a is None:
            # partial read: compute the reached points without advancing the world
            with self.world.lock:
                raw = self._window_means(a, n)
            return self._load_vec(raw, a)[0], a.times_s()[:n]
        return a.values_a[:n], a.times_s()[:n]
