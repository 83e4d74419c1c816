"""Reference helpers for tests of the physics (issue 3): a reference incremental-step write-verify loop.

This is *test* code standing for the production algorithm in firmware_iface; it drives the
cell model the way the NeuRRAM schedule does: SET / RESET pulses starting at 1.2 V, +0.1 V per
consecutive pulse of the same polarity (restart at 1.2 V on a polarity change), up to 4.0 V,
1 us wide, averaged 0.2 V reads, a tolerance window, and a pulse budget.
"""
from __future__ import annotations

import numpy as np

from sim_backend.physics.rram import RRAMArray


def write_verify(arr: RRAMArray, targets_s: np.ndarray, rng: np.random.Generator, *,
                 tol_s: float = 3e-6, v_start: float = 1.2, v_step: float = 0.1, v_stop: float = 4.0,
                 width_s: float = 1e-6, v_wl_set: float = 1.8, v_wl_reset: float = 3.0,
                 v_read: float = 0.2, averages: int = 4, max_pulses: int = 200,
                 t0_s: float = 0.0):
    """Program every cell of ``arr`` towards ``targets_s``; returns (final_read, converged, n_pulses, t_end)."""
    rows, cols = np.indices(arr.shape)
    rows, cols = rows.ravel(), cols.ravel()
    tgt = np.asarray(targets_s, dtype=np.float64).ravel()
    n = tgt.size
    v_set = np.full(n, v_start)
    v_reset = np.full(n, v_start)
    pulses = np.zeros(n, dtype=np.int64)
    conv = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    t = t0_s
    last = np.zeros(n)
    while active.any():
        a = np.flatnonzero(active)
        g = arr.read(rows[a], cols[a], v_read, averages, t, rng)
        t += averages * 1e-6
        last[a] = g
        err = g - tgt[a]
        ok = np.abs(err) <= tol_s
        conv[a[ok]] = True
        budget = pulses[a] >= max_pulses
        active[a[ok | budget]] = False
        go = ~(ok | budget)
        a, err = a[go], err[go]
        if a.size == 0:
            break
        up = err < 0
        kind = np.where(up, 1, -1)
        # polarity change restarts the other ramp
        v_reset[a[up]] = v_start
        v_set[a[~up]] = v_start
        v = np.where(up, v_set[a], v_reset[a])
        v_bl = np.where(up, v, 0.0)
        v_sl = np.where(up, 0.0, v)
        v_wl = np.where(up, v_wl_set, v_wl_reset)
        arr.pulse(kind, rows[a], cols[a], v_bl, v_wl, v_sl, width_s, t, rng)
        t += width_s
        pulses[a] += 1
        v_set[a[up]] = np.minimum(v_set[a[up]] + v_step, v_stop)
        v_reset[a[~up]] = np.minimum(v_reset[a[~up]] + v_step, v_stop)
    return last.reshape(arr.shape), conv.reshape(arr.shape), pulses.reshape(arr.shape), t
