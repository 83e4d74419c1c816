"""1T1R RRAM cell array: stochastic SET/RESET, read noise, relaxation, drift, stuck cells.

State per cell (all SI):
    g_prog   conductance right after the last effective pulse (S)
    t_prog   chip time of that pulse (s)
    xi       relaxation direction drawn at that pulse (N(0, 1))
The conductance at chip time t is

    G(t) = clip(g_prog * (1 + m ln(1 + (t - t_prog)/1 s)) + sigma(t - t_prog) * xi,  g_min, g_cell_max)

with sigma(t) = sigma_1s * ln(1 + t/t0) / ln(1 + 1 s/t0)  (log-time relaxation; 1.8 uS after
1 s and ~4 uS after one day at ``typical``).  Stuck cells keep a fixed conductance and ignore
pulses.  Wear: every SET/RESET pulse a cell receives counts towards its own endurance limit
(lognormal around ``endurance_median_pulses``); a cell whose count reaches its limit fails
permanently, stuck-on or stuck-off.  See docs/chip_model.md for the pulse-response equations,
the endurance model and the sources.

``state()`` / ``load_state()`` give and restore every per-cell array (the die file).
"""
from __future__ import annotations

import numpy as np

from .params import ChipParams


class RRAMArray:
    """A rows x cols array of 1T1R cells.  ``chip_rng`` fixes the device-to-device map."""

    STATE_FIELDS = ("g_prog", "t_prog", "xi", "pulse_count", "fab_stuck_on", "fab_stuck_off",
                    "g_fab_stuck", "v_set_th", "v_reset_th", "gain_set", "gain_reset",
                    "endurance_pulses", "wear_stuck_on", "g_worn")
    """Every per-cell array of the cell state, in the order ``state()`` returns them."""

    def __init__(self, params: ChipParams, chip_rng: np.random.Generator,
                 rows: int = 128, cols: int = 24, wear_rng: np.random.Generator | None = None) -> None:
        self.params = params
        self.shape = (rows, cols)
        p = params
        sh = self.shape
        # Draw everything unconditionally so the same chip seed gives the same map at any
        # fidelity (the fidelity only scales the spreads).
        u_stuck = chip_rng.random(sh)
        z_vset = chip_rng.standard_normal(sh)
        z_vreset = chip_rng.standard_normal(sh)
        z_gset = chip_rng.standard_normal(sh)
        z_greset = chip_rng.standard_normal(sh)
        u_val = chip_rng.random(sh)
        u_init = chip_rng.random(sh)
        # fabrication defects (stuck from the start)
        self.fab_stuck_on = u_stuck < p.stuck_on_frac
        self.fab_stuck_off = (u_stuck >= p.stuck_on_frac) & (u_stuck < p.stuck_on_frac + p.stuck_off_frac)
        self.g_fab_stuck = np.where(self.fab_stuck_on, self._g_on(u_val), self._g_off(u_val))
        self.v_set_th = p.v_set_th_v + p.v_th_d2d_sigma_v * z_vset
        self.v_reset_th = p.v_reset_th_v + p.v_th_d2d_sigma_v * z_vreset
        self.gain_set = p.set_gain_s_per_v * np.exp(p.gain_d2d_sigma_ln * z_gset)
        self.gain_reset = p.reset_gain_s_per_v * np.exp(p.gain_d2d_sigma_ln * z_greset)
        # fresh (formed, reset) array: low conductance
        init = 0.0 if not p.noisy else p.g_min_s + 2e-6 * u_init
        self.g_prog = np.full(sh, init, dtype=np.float64)
        self.t_prog = np.zeros(sh)
        self.xi = np.zeros(sh)
        self.pulse_count = np.zeros(sh, dtype=np.int64)
        # Endurance (own stream, so the map above is the same with or without wear)
        wr = wear_rng if wear_rng is not None else np.random.default_rng(chip_rng.integers(2 ** 63))
        z_end = wr.standard_normal(sh)
        u_mode = wr.random(sh)
        u_worn = wr.random(sh)
        self.endurance_pulses = p.endurance_median_pulses * np.exp(p.endurance_sigma_ln * z_end)
        self.wear_stuck_on = u_mode < p.endurance_stuck_on_frac
        self.g_worn = np.where(self.wear_stuck_on, self._g_on(u_worn), self._g_off(u_worn))
        self._refresh_stuck()

    # ------------------------------------------------------------------------------------
    def _g_on(self, u: np.ndarray) -> np.ndarray:
        p = self.params
        return p.g_stuck_on_lo_s + (p.g_stuck_on_hi_s - p.g_stuck_on_lo_s) * u

    def _g_off(self, u: np.ndarray) -> np.ndarray:
        p = self.params
        return p.g_min_s + (p.g_stuck_off_s * 0.9 - p.g_min_s) * u

    @property
    def worn(self) -> np.ndarray:
        """Cells that failed by wear: pulse count reached their endurance limit (bool)."""
        return self.pulse_count >= self.endurance_pulses

    def _refresh_stuck(self) -> None:
        """stuck / stuck_on / stuck_off / g_stuck from the fabrication defects and the wear."""
        fab = self.fab_stuck_on | self.fab_stuck_off
        worn = self.worn & ~fab
        self.stuck_on = self.fab_stuck_on | (worn & self.wear_stuck_on)
        self.stuck_off = self.fab_stuck_off | (worn & ~self.wear_stuck_on)
        self.stuck = self.stuck_on | self.stuck_off
        self.g_stuck = np.where(worn, self.g_worn, self.g_fab_stuck)

    def state(self) -> dict[str, np.ndarray]:
        """Copies of every per-cell array (``STATE_FIELDS``), SI units."""
        return {k: np.array(getattr(self, k), copy=True) for k in self.STATE_FIELDS}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the arrays of ``state()``; each must have the array shape."""
        for k in self.STATE_FIELDS:
            v = np.asarray(state[k])
            if v.shape != self.shape:
                raise ValueError(f"cell state {k!r} has shape {v.shape}, the array is {self.shape}")
            setattr(self, k, np.array(v, dtype=getattr(self, k).dtype, copy=True))
        self._refresh_stuck()

    # ------------------------------------------------------------------------------------
    def conductance(self, now_s, rows=None, cols=None) -> np.ndarray:
        """True (noise-free) conductance at chip time ``now_s`` (scalar, or one time per
        selected cell); whole array or cells (rows[i], cols[i])."""
        p = self.params
        if rows is None:
            gp, tp, xi, st, gs = self.g_prog, self.t_prog, self.xi, self.stuck, self.g_stuck
        else:
            idx = (np.asarray(rows), np.asarray(cols))
            gp, tp, xi, st, gs = (self.g_prog[idx], self.t_prog[idx], self.xi[idx],
                                  self.stuck[idx], self.g_stuck[idx])
        if not p.noisy:
            return np.where(st, gs, gp)
        age = np.maximum(now_s - tp, 0.0)
        g = gp * (1.0 + p.drift_mean_rel_per_ln * np.log1p(age)) + p.relax_sigma_s(age) * xi
        g = np.clip(g, p.g_min_s, p.g_cell_max_s)
        return np.where(st, gs, g)

    def set_conductance(self, g_s: np.ndarray, now_s: float) -> None:
        """Force the programmed state (test/back-door helper; stuck cells stay stuck)."""
        self.g_prog = np.array(np.broadcast_to(g_s, self.shape), dtype=np.float64)
        self.t_prog[:] = now_s
        self.xi[:] = 0.0

    # ------------------------------------------------------------------------------------
    def read(self, rows, cols, v_read_v: float, averages: int, now_s: float,
             rng: np.random.Generator) -> np.ndarray:
        """Averaged noisy conductance reads (S) at read voltage ``v_read_v``."""
        p = self.params
        g = self.conductance(now_s, rows, cols)
        g = g * (1.0 + p.read_nonlinearity_per_v * (v_read_v - 0.2))
        if p.noisy and (p.read_noise_rel > 0 or p.read_noise_floor_s > 0):
            sig = np.sqrt((p.read_noise_rel * g) ** 2 + p.read_noise_floor_s ** 2) / np.sqrt(max(averages, 1))
            g = g + sig * rng.standard_normal(g.shape)
        if p.read_disturb_rel and v_read_v > 0.3:
            idx = (np.asarray(rows), np.asarray(cols))
            np.add.at(self.g_prog, idx, p.read_disturb_rel * averages * self.g_prog[idx])
        return g

    # ------------------------------------------------------------------------------------
    def pulse(self, kind, rows, cols, v_bl_v, v_wl_v, v_sl_v, width_s, t_s,
              rng: np.random.Generator) -> np.ndarray:
        """Apply pulses in order (pulses to the same cell are sequential).

        ``t_s`` is the chip time of each pulse.  Returns the cell current (A) of each pulse
        at its start (for the energy model).
        """
        kind = np.asarray(kind, dtype=np.int64).ravel()
        n = kind.size
        rows = np.broadcast_to(np.asarray(rows, dtype=np.int64), (n,))
        cols = np.broadcast_to(np.asarray(cols, dtype=np.int64), (n,))
        v_bl = np.broadcast_to(np.asarray(v_bl_v, dtype=np.float64), (n,))
        v_wl = np.broadcast_to(np.asarray(v_wl_v, dtype=np.float64), (n,))
        v_sl = np.broadcast_to(np.asarray(v_sl_v, dtype=np.float64), (n,))
        width = np.broadcast_to(np.asarray(width_s, dtype=np.float64), (n,))
        t_s = np.broadcast_to(np.asarray(t_s, dtype=np.float64), (n,))
        current = np.zeros(n)
        if n == 0:
            return current
        # occurrence rank of each cell so repeated pulses to one cell run in order
        flat = rows * self.shape[1] + cols
        order = np.argsort(flat, kind="stable")
        sf = flat[order]
        start = np.r_[0, np.flatnonzero(sf[1:] != sf[:-1]) + 1]
        rank_sorted = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = rank_sorted
        for k in range(int(rank.max()) + 1):
            sel = np.flatnonzero(rank == k)
            current[sel] = self._pulse_unique(kind[sel], rows[sel], cols[sel], v_bl[sel], v_wl[sel],
                                              v_sl[sel], width[sel], t_s[sel], rng)
        return current

    def _pulse_unique(self, kind, rows, cols, v_bl, v_wl, v_sl, width, t_s, rng):
        p = self.params
        idx = (rows, cols)
        g0 = self.conductance(t_s, rows, cols)        # relaxed state at each pulse's time
        v_cell = np.where(kind > 0, v_bl - v_sl, v_sl - v_bl)
        v_cell = np.maximum(v_cell, 0.0)
        is_set = kind > 0
        vth = np.where(is_set, self.v_set_th[idx], self.v_reset_th[idx])
        drive = np.maximum(v_cell - vth, 0.0)
        fw = (np.maximum(width, 0.0) / p.width_ref_s) ** p.width_exponent
        gc = p.g_comp_s_per_v * np.maximum(v_wl - p.v_wl_th_v, 0.0)
        sat_set = np.where(gc > 0, np.maximum(gc - g0, 0.0) / np.where(gc > 0, gc, 1.0), 0.0)
        wl_reset = np.clip((v_wl - p.v_wl_th_v) / (p.reset_wl_full_v - p.v_wl_th_v), 0.0, 1.0)
        g_soft = 20e-6
        reset_shape = (g0 + g_soft) / (p.g_max_s + g_soft)
        gain = np.where(is_set, self.gain_set[idx] * sat_set, -self.gain_reset[idx] * wl_reset * reset_shape)
        dg = gain * drive * fw
        effective = drive > 0
        if p.noisy:
            c2c = np.exp(p.c2c_sigma_ln * rng.standard_normal(dg.shape) - 0.5 * p.c2c_sigma_ln ** 2)
            dg = dg * c2c + p.c2c_add_sigma_s * rng.standard_normal(dg.shape) * effective
            xi_new = rng.standard_normal(dg.shape)
        else:
            xi_new = np.zeros(dg.shape)
        upper = np.where(is_set, np.minimum(p.g_cell_max_s, np.maximum(gc, g0)), p.g_cell_max_s)
        g1 = np.clip(g0 + dg, p.g_min_s if p.noisy else 0.0, upper)
        stuck = self.stuck[idx]
        upd = effective & ~stuck
        r_u, c_u = rows[upd], cols[upd]
        self.g_prog[r_u, c_u] = g1[upd]
        self.t_prog[r_u, c_u] = t_s[upd]
        self.xi[r_u, c_u] = xi_new[upd]
        self.pulse_count[rows, cols] += 1
        if np.any(self.pulse_count[rows, cols] >= self.endurance_pulses[rows, cols]):
            self._refresh_stuck()     # cells that reached their limit fail now, stuck from here on
        # cell current at the start of the pulse, limited by the access transistor
        g_now = np.where(stuck, self.g_stuck[idx], g0)
        i_cell = v_cell * g_now
        i_lim = np.where(is_set, gc * 0.5 + 1e-9, np.inf)
        return np.minimum(i_cell, i_lim)
