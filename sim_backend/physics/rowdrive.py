"""Input spikes as the row drivers deliver them: loss and one-step timing jitter (issue 15).

The FPGA latches each step's row pattern and drives the word lines synchronously, so at the
``typical`` and ``ideal`` presets every spike arrives in its own step.  The ``worst`` corner
(and the error budget) can switch on two faults of the input path:

- loss: each input spike is independently not driven, probability ``loss``;
- jitter: each surviving spike independently lands one step early or late (equally likely),
  probability ``jitter``; a spike pushed outside the sample's window is lost, and two spikes
  meeting in one step of one row merge (a row is driven or not).
"""
from __future__ import annotations

import numpy as np


def drive_inputs(spikes: np.ndarray, loss: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """bool (n, T, rows) -> bool (n, T, rows): the spikes after loss and +-1 step jitter."""
    x = np.asarray(spikes, dtype=bool)
    if not (0.0 <= loss <= 1.0 and 0.0 <= jitter <= 1.0):
        raise ValueError(f"input spike loss and jitter are probabilities, got {loss!r}, {jitter!r}")
    if loss <= 0 and jitter <= 0:
        return x
    n, t, r = x.shape
    b, s, k = np.nonzero(x)
    if loss > 0:
        keep = rng.random(b.size) >= loss
        b, s, k = b[keep], s[keep], k[keep]
    if jitter > 0:
        move = rng.random(b.size) < jitter
        step = np.where(rng.random(b.size) < 0.5, -1, 1)
        s = s + np.where(move, step, 0)
        inside = (s >= 0) & (s < t)
        b, s, k = b[inside], s[inside], k[inside]
    out = np.zeros((n, t, r), dtype=bool)
    out[b, s, k] = True
    return out
