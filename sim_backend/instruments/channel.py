"""One simulated SMU channel wired to a rail of the virtual chip.

Time base: the world's chip clock.  A single reading integrates over one aperture starting
now (and advances the world, idle, past it).  A buffered acquisition whose first point starts
at chip time ``t0`` (the moment it was armed, or -- armed on an external trigger -- the first
trigger the board raises after arming, ``world.trigger``) takes point ``k`` as the mean
current over ``[t0 + k*spacing, t0 + k*spacing + aperture]``; the points are computed when
the host asks for them, after the world was advanced (idle) to the end of the last point
that is needed.

Measurement time (every model's manual): one reading takes the aperture *plus an overhead*
(A/D conversion, auto-zero, data handling), so the spacing of buffered points is never
shorter than ``aperture + overhead_s``.  How a shorter requested interval ends up depends on
the instrument's trigger model, given by the server: ``lost_ticks`` (Keysight B2900 timer
trigger: a tick arriving while the channel is still measuring is lost -- "Acquire Event
Lost", SCPI Command Reference table 4-5 -- so points come a whole number of timer periods
apart), ``stretch`` (2600B ``measure.interval``: the next reading starts when the previous
one is done) or ``delay`` (2450 SimpleLoop: aperture + overhead + the programmed delay).
The ``overhead_s`` figures are this simulator's model values per model, not quotations.

Timestamps: the B2900 and 2600B stamp readings with an absolute time since the timer was
reset (here: chip time since the world started); the 2450's ``REL`` element is relative to
the first reading.  ``Acquisition.stamps_s`` gives what the instrument would report.

Load model: the chip's rail current at the nominal rail voltage, scaled linearly with the
programmed level (a resistive load); clamped at the current limit (compliance, flagged per
reading).  An output that is off sources nothing and reads 0 A, 0 V.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def point_spacing(interval_s: float, measure_s: float, mode: str) -> float:
    """Actual spacing of buffered points for a requested ``interval_s`` when one reading takes
    ``measure_s`` (aperture + overhead), per trigger model (module docstring)."""
    if mode == "lost_ticks":
        return interval_s * max(1, math.ceil(measure_s / interval_s - 1e-9))
    if mode == "stretch":
        return max(interval_s, measure_s)
    if mode == "delay":            # interval_s is the programmed delay here
        return measure_s + interval_s
    raise ValueError(f"unknown trigger model {mode!r}")


@dataclass
class Acquisition:
    t0_s: float | None
    """Chip time of the first point's start; None while waiting for an external trigger."""
    n: int
    period_s: float
    """Actual spacing of the points (s)."""
    aperture_s: float
    level_v: float
    limit_a: float
    output: bool
    relative_stamps: bool = False
    values_a: np.ndarray | None = None
    compliance: np.ndarray | None = None

    @property
    def end_s(self) -> float:
        assert self.t0_s is not None
        return self.t0_s + (self.n - 1) * self.period_s + self.aperture_s

    def completed(self, now_s: float) -> int:
        """Points whose aperture has ended by chip time ``now_s``.  The chip clock of a die
        that persists between commands reaches 1e5 s and more, where ``now - t0`` carries an
        absolute rounding error of ~1e-11 s: the comparison allows a few ulps of ``now``,
        so the last point counts as done exactly when the clock reaches :attr:`end_s`."""
        if self.t0_s is None:
            return 0
        if now_s >= self.end_s:
            return self.n
        slack = 8 * math.ulp(max(abs(now_s), abs(self.t0_s), 1.0))
        if now_s + slack < self.t0_s + self.aperture_s:
            return 0
        k = math.floor((now_s - self.t0_s - self.aperture_s + slack) / self.period_s)
        return max(0, min(self.n, int(k) + 1))

    def starts_s(self) -> np.ndarray:
        assert self.t0_s is not None
        return self.t0_s + np.arange(self.n) * self.period_s

    def stamps_s(self) -> np.ndarray:
        """The instrument's timestamps: relative to the first reading, or absolute chip time."""
        rel = np.arange(self.n) * self.period_s
        return rel if self.relative_stamps else rel + float(self.t0_s or 0.0)
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
    overhead_s: float = 0.0
    """Per-reading overhead on top of the aperture (s): see the module docstring."""
    last_compliance: bool = False
    """The last single reading was clamped at the current limit."""
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

    @property
    def measure_s(self) -> float:
        """Time one reading takes: aperture + overhead (s)."""
        return self.aperture_s + self.overhead_s

    def in_limit_now(self) -> bool:
        """Whether the source is in current limit at this instant (the limit-tripped state)."""
        if not self.output or self.level_v <= 0.0:
            return False
        with self.world.lock:
            t = self._now()
            i_chip = float(self.world.mean_current_a(self.rail, t, t))
        return self._load(i_chip, self.level_v, self.limit_a, True)[2]

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
        """One reading (current A, voltage V) integrated over one aperture from now;
        ``last_compliance`` says whether it was clamped at the limit."""
        with self.world.lock:
            t0 = self._now()
            t1 = t0 + self.aperture_s
            self.world.advance_to(t1)
            i_chip = float(self.world.mean_current_a(self.rail, t0, t1)) if self.output else 0.0
        i, v, comp = self._load(i_chip, self.level_v, self.limit_a, self.output)
        self.compliance_events += comp
        self.last_compliance = comp
        return i, v

    # ---- buffered acquisition ----------------------------------------------------------
    def arm(self, n: int, spacing_s: float, *, external: bool = False,
            relative_stamps: bool = False) -> Acquisition:
        """Start an acquisition of ``n`` points ``spacing_s`` apart (the actual spacing: see
        :func:`point_spacing`): now, or at the next ``world.trigger`` when ``external``."""
        with self.world.lock:
            t0 = None if external else self._now()
            self.acq = Acquisition(t0_s=t0, n=int(n), period_s=max(float(spacing_s), self.measure_s),
                                   aperture_s=self.aperture_s, level_v=self.level_v,
                                   limit_a=self.limit_a, output=self.output,
                                   relative_stamps=relative_stamps)
        return self.acq

    def on_trigger(self, t_s: float) -> None:
        """The board's trigger line rose at chip time ``t_s`` (called under the world lock):
        an acquisition waiting for its trigger starts now; later triggers are ignored (the
        trigger model's arm layer has a count of one)."""
        a = self.acq
        if a is not None and a.t0_s is None:
            a.t0_s = float(t_s)

    def completed(self) -> int:
        if self.acq is None:
            return 0
        with self.world.lock:
            return self.acq.completed(self._now())

    def _window_means(self, a: Acquisition, n: int) -> np.ndarray:
        """Mean chip current of the first ``n`` windows (world lock held by the caller)."""
        if not a.output:
            return np.zeros(n)
        starts = a.starts_s()[:n]
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
        if a is None or a.values_a is not None or a.t0_s is None:
            return          # nothing armed, already complete, or never triggered
        with self.world.lock:
            if self._now() < a.end_s:
                self.world.advance_to(a.end_s)
            raw = self._window_means(a, a.n)
        a.values_a, a.compliance = self._load_vec(raw, a)
        self.compliance_events += int(a.compliance.sum())

    def count_while_waiting(self) -> int:
        """A reading-count query from a host that is waiting for the acquisition: chip time
        passes while the host waits (as for ``*OPC?``), so an acquisition that has started is
        completed; one still waiting for its trigger reports 0."""
        self.complete()
        return self.completed()

    def buffer(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(currents, timestamps as the instrument reports them, in-compliance flags) of the
        points the chip clock has reached."""
        a = self.acq
        empty = (np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
        if a is None:
            return empty
        n = self.completed()
        if n == a.n:
            self.complete()
        if n == 0:
            return empty
        if a.values_a is None:
            # partial read: compute the reached points without advancing the world
            with self.world.lock:
                raw = self._window_means(a, n)
            vals, comp = self._load_vec(raw, a)
            return vals, a.stamps_s()[:n], comp
        assert a.compliance is not None
        return a.values_a[:n], a.stamps_s()[:n], a.compliance[:n]
