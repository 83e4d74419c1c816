"""Events -> binary input spike trains, as in the reference pipeline.

Per sample: the window ``[start, start + sample_duration_us)`` of dataset time (``start`` is
the label start time), ``padding`` zero pixels on every side of the sensor, ``pool x pool``
sum pooling, ``bin_us`` time bins. A pooled cell spikes in a bin when at least one event fell
into it (count > 0 -> 1, the reference code's binarisation).

Defaults: 1.5 s, 6 px, 7x7, 5 ms on a 128x128 sensor -> 300 steps x 800 inputs.

Input index = ``p * (ny * nx) + yb * nx + xb`` with ``xb = (x + padding) // pool``,
``yb = (y + padding) // pool``: ordering (polarity, y, x), polarity 0 (OFF) first.
All arithmetic on integer microseconds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.errors import ConfigError


@dataclass(frozen=True)
class PreprocessConfig:
    sample_duration_us: int = 1_500_000
    padding: int = 6
    pool: int = 7
    bin_us: int = 5000
    sensor: tuple[int, int] = (128, 128)  # (width, height)

    def __post_init__(self) -> None:
        for name in ("sample_duration_us", "pool", "bin_us"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ConfigError(f"preprocess: {name}={v!r} must be a positive integer")
        if not isinstance(self.padding, (int, np.integer)) or self.padding < 0:
            raise ConfigError(f"preprocess: padding={self.padding!r} must be an integer >= 0")
        if self.sample_duration_us % self.bin_us:
            raise ConfigError(
                f"preprocess: sample_duration_us={self.sample_duration_us} is not a multiple of "
                f"bin_us={self.bin_us}"
            )
        w, h = self.sensor
        if w <= 0 or h <= 0:
            raise ConfigError(f"preprocess: sensor={self.sensor!r} must be positive")
        if (w + 2 * self.padding) % self.pool or (h + 2 * self.padding) % self.pool:
            raise ConfigError(
                f"preprocess: sensor {w}x{h} + 2*padding {self.padding} is not a multiple of pool {self.pool}"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """(nx, ny) pooled cells."""
        w, h = self.sensor
        return (w + 2 * self.padding) // self.pool, (h + 2 * self.padding) // self.pool

    @property
    def n_steps(self) -> int:
        return self.sample_duration_us // self.bin_us

    @property
    def n_inputs(self) -> int:
        nx, ny = self.grid
        return 2 * nx * ny


def _start_of(obj, start_us):
    if hasattr(obj, "events"):
        return obj.events, (obj.start_us if start_us is None else start_us)
    return obj, start_us


def spike_indices(events: np.ndarray, cfg: PreprocessConfig, start_us: int) -> np.ndarray:
    """Flat indices ``step * n_inputs + input`` of the events inside the window (with repeats)."""
    nx, ny = cfg.grid
    t = events["t"].astype(np.int64) - np.int64(start_us)
    step = t // cfg.bin_us
    keep = (t >= 0) & (step < cfg.n_steps)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    w, h = cfg.sensor
    keep &= (x < w) & (y < h)
    if not keep.all():
        step, x, y = step[keep], x[keep], y[keep]
        p = events["p"][keep].astype(np.int64)
    else:
        p = events["p"].astype(np.int64)
    xb = (x + cfg.padding) // cfg.pool
    yb = (y + cfg.padding) // cfg.pool
    return step * cfg.n_inputs + (p & 1) * (nx * ny) + yb * nx + xb


def to_spikes(events, cfg: PreprocessConfig | None = None, *, start_us: int | None = None) -> np.ndarray:
    """Binary spike raster ``(n_steps, n_inputs)`` of one sample.

    ``events`` is an EVENT_DTYPE array or a :class:`~bench.data.dataset.Sample` (whose
    ``start_us`` is then the time origin). For a bare array the origin is ``start_us`` or,
    if not given, the first event's time.
    """
    cfg = cfg or PreprocessConfig()
    events, start_us = _start_of(events, start_us)
    out = np.zeros(cfg.n_steps * cfg.n_inputs, dtype=bool)
    if len(events):
        if start_us is None:
            start_us = int(events["t"][0])
        out[spike_indices(events, cfg, int(start_us))] = True
    return out.reshape(cfg.n_steps, cfg.n_inputs)


def to_counts(events, cfg: PreprocessConfig | None = None, *, start_us: int | None = None) -> np.ndarray:
    """Pooled event counts ``(n_steps, n_inputs)`` (int32), before binarisation."""
    cfg = cfg or PreprocessConfig()
    events, start_us = _start_of(events, start_us)
    if len(events) and start_us is None:
        start_us = int(events["t"][0])
    n = cfg.n_steps * cfg.n_inputs
    if not len(events):
        return np.zeros((cfg.n_steps, cfg.n_inputs), np.int32)
    c = np.bincount(spike_indices(events, cfg, int(start_us)), minlength=n).astype(np.int32)
    return c.reshape(cfg.n_steps, cfg.n_inputs)


def batch_to_spikes(samples: Sequence, cfg: PreprocessConfig | None = None) -> np.ndarray:
    """Spike rasters of many samples: ``(n, n_steps, n_inputs)`` bool, origin = each label start."""
    cfg = cfg or PreprocessConfig()
    out = np.zeros((len(samples), cfg.n_steps * cfg.n_inputs), dtype=bool)
    for i, s in enumerate(samples):
        events, start = _start_of(s, None)
        if len(events):
            if start is None:
                start = int(events["t"][0])
            out[i, spike_indices(events, cfg, int(start))] = True
    return out.reshape(len(samples), cfg.n_steps, cfg.n_inputs)
