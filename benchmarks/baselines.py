"""Reference implementations the benchmarks measure against (DESIGN.md section 8)."""
from __future__ import annotations

import numpy as np

from sim_backend.physics.neuron import NeuronParams

SILICON_RATE = 1.0 / 44.31e-6
"""Samples per second of the silicon: 300 steps x 100 ns + 14.31 us latency."""


def baseline_per_step(spikes: np.ndarray, w: np.ndarray, params: NeuronParams = NeuronParams()) -> np.ndarray:
    """Plain numpy: loop over steps with one matmul per step (the straightforward reference)."""
    b, t_, _ = spikes.shape
    n = w.shape[1]
    a = np.exp(-1 / params.tau_steps)
    bref = np.exp(-1 / params.tau_ref_steps)
    p = np.zeros((b, n))
    r = np.zeros((b, n))
    out = np.zeros((b, t_, n), bool)
    for t in range(t_):
        z = spikes[:, t].astype(np.float64) @ w
        x = np.clip(z, params.clamp_low, params.clamp_high) * (1 / params.tau_steps)
        p = a * p + x
        s = p + r >= params.theta
        out[:, t] = s
        r = bref * r - params.ref_scale * params.theta * s
    return out
