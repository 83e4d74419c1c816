"""Event-data augmentation for training, applied to event coordinates before pooling.

Per sample and per draw: a random similarity transform of the sensor plane about its
centre -- rotation by ``U(-max_rotation_deg, +max_rotation_deg)``, scaling by
``U(1 - max_scale, 1 + max_scale)``, translation by ``U(-max_shift_px, +max_shift_px)`` in x
and y (a random crop/offset of the field of view) -- is applied to every event's (x, y);
events leaving the sensor are dropped (what a crop does).  Timestamps and polarities are
unchanged, so temporal order (clockwise vs counter-clockwise, tempo) is kept.  No flips:
mirrored gestures are other classes (left/right hand).

The augmented events then go through the ordinary preprocessing (padding, 7x7 sum pooling,
5 ms bins), so the network sees the same kind of input as at inference.  Working on event
coordinates rather than on the pooled 20x20 grid keeps sub-cell shifts and small rotations
meaningful (one pooled cell is 7 pixels).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    max_rotation_deg: float = 10.0
    max_scale: float = 0.1
    max_shift_px: float = 8.0
    sensor: tuple[int, int] = (128, 128)
    """(width, height)"""

    def to_dict(self) -> dict[str, Any]:
        return {"max_rotation_deg": self.max_rotation_deg, "max_scale": self.max_scale,
                "max_shift_px": self.max_shift_px, "sensor": list(self.sensor)}


def transform_events(events: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """A randomly rotated / scaled / shifted copy of an (x, y, p, t) event array."""
    w, h = cfg.sensor
    ang = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    sc = rng.uniform(1.0 - cfg.max_scale, 1.0 + cfg.max_scale)
    dx, dy = rng.uniform(-cfg.max_shift_px, cfg.max_shift_px, size=2)
    if len(events) == 0:
        return events.copy()
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    x = events["x"].astype(np.float64) - cx
    y = events["y"].astype(np.float64) - cy
    c, s = np.cos(ang) * sc, np.sin(ang) * sc
    xn = np.floor(c * x - s * y + cx + dx + 0.5)
    yn = np.floor(s * x + c * y + cy + dy + 0.5)
    keep = (xn >= 0) & (xn < w) & (yn >= 0) & (yn < h)
    out = events[keep].copy()
    out["x"] = xn[keep]
    out["y"] = yn[keep]
    return out


def augmented_spikes(samples: Sequence, rng: np.random.Generator, cfg: AugmentConfig,
                     preprocess_cfg: Any = None) -> np.ndarray:
    """Input spikes (n, T, n_inputs) bool of augmented copies of ``samples`` (bench.data Samples)."""
    from bench.data.preprocess import batch_to_spikes

    aug = [replace(s, events=transform_events(s.events, rng, cfg)) for s in samples]
    return batch_to_spikes(aug, preprocess_cfg)
