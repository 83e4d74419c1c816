"""128 x 24 crossbar: column currents, differential pairs, read-noise models.

Columns are paired (2k, 2k+1) = (G+, G-) feeding neuron k.  A row that spikes is driven at
V_spike; column j then carries I_j = sum_i V_i G_ij.  The neuron input per step, in
normalised units, is z_k = (I_2k - I_2k+1) / (V_spike * g_unit).

Noise: each active cell contributes an independent current error sigma_ij = rel * V * G_ij.
The sum over many cells is Gaussian with variance sum_i sigma_ij^2, so the simulator draws
it once per column per step (``aggregated_noise_var``); ``per_cell_noisy_input`` is the
per-cell reference the tests compare it with.
"""
from __future__ import annotations

import numpy as np


def column_currents(v_rows_v: np.ndarray, g_s: np.ndarray, ir_drop_rel: float = 0.0) -> np.ndarray:
    """I = sum_i V_i G_ij (A); v_rows_v (..., R), g_s (R, C) -> (..., C).  Optional IR drop."""
    g = np.asarray(g_s, dtype=np.float64)
    if ir_drop_rel:
        r = g.shape[0]
        g = g * (1.0 - ir_drop_rel * (np.arange(r) / max(r - 1, 1)))[:, None]
    return np.asarray(v_rows_v, dtype=np.float64) @ g


def differential_input(currents_a: np.ndarray, v_spike_v: float, g_unit_s: float) -> np.ndarray:
    """z_k = (I_2k - I_2k+1) / (V_spike g_unit), normalised units."""
    return (currents_a[..., 0::2] - currents_a[..., 1::2]) / (v_spike_v * g_unit_s)


def aggregated_noise_var(spikes: np.ndarray, g_s: np.ndarray, rel: float, g_unit_s: float) -> np.ndarray:
    """Variance of the normalised neuron input per step from per-cell read noise, (..., N)."""
    g = np.asarray(g_s, dtype=np.float64)
    var_cell = ((rel * g[:, 0::2]) ** 2 + (rel * g[:, 1::2]) ** 2) / g_unit_s ** 2
    return np.asarray(spikes, dtype=np.float64) @ var_cell


def per_cell_noisy_input(spikes: np.ndarray, g_s: np.ndarray, rel: float, g_unit_s: float,
                         v_spike_v: float, rng: np.random.Generator) -> np.ndarray:
    """Reference: draw every active cell's current independently, then sum (slow)."""
    spikes = np.asarray(spikes, dtype=np.float64)
    g = np.asarray(g_s, dtype=np.float64)
    eps = rng.standard_normal(spikes.shape + g.shape[1:])          # (..., R, C)
    i_cells = spikes[..., None] * v_spike_v * g * (1.0 + rel * eps)
    currents = i_cells.sum(axis=-2)
    return differential_input(currents, v_spike_v, g_unit_s)
