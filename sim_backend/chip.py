"""The virtual PE-macro chip: the object the virtual firmware drives.

This is the interface between the virtual firmware (protocol side) and the physics models.
All quantities are SI (seconds, volts, siemens, amperes, joules).  The firmware only calls
the methods below; everything about *how* the chip behaves lives in ``sim_backend.physics``
(parameters: ``sim_backend.physics.params.ChipParams``, documented in docs/chip_model.md).

A chip instance = chip seed (device-to-device map, stuck cells, endurance limits, neuron
mismatch) + run seed (cycle-to-cycle pulse response, read noise, inference noise).
``state()`` / ``load_state()`` capture and restore everything the die keeps (the die file,
``sim_backend.die``); ``revision`` counts the changes to it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim_backend.physics import energy as _energy
from sim_backend.physics.fastpath import layer_forward, noise_key, prewarm, srm_spikes
from sim_backend.physics.neuron import NeuronParams, srm_forward
from sim_backend.physics.params import COMPONENT_RAIL, COMPONENTS, RAILS, ChipParams
from sim_backend.physics.rram import RRAMArray
from sim_backend.physics.rowdrive import drive_inputs

ROWS = 128
COLUMNS = 24
NEURONS = 12
PES = 1
G_MAX_S = 150e-6
LEVELS_S = np.concatenate([[0.0], np.linspace(G_MAX_S / 15, G_MAX_S, 15)])


@dataclass
class ChipRegisters:
    """Bias/DAC settings in SI units (the firmware converts register codes to these)."""

    v_read_v: float = 0.2
    v_spike_v: float = 0.2
    dt_s: float = 100e-9
    theta: float = 1.0
    tau_steps: float = 10.0
    ref_scale: float = 10.0
    latency_s: float = 14.31e-6
    g_unit_s: float = 50e-6
    """Differential conductance that produces one normalised input unit per spike."""
    tau_ref_steps: float = 1.0
    """Refractory time constant in steps."""


class VirtualChip:
    """Physics-backed PE macro (RRAM array + crossbar + 12 SRM neurons + energy counters).

    Public attributes: ``rows``, ``columns``, ``neurons``, ``pes``, ``levels_s``, ``regs``,
    ``clock_s``, ``params`` (ChipParams), ``fidelity`` (preset name), ``energy_j`` (dict
    component -> J), ``rail_energy_j`` (dict rail -> J), ``activity_listeners`` (callables
    ``f(t0_s, t1_s, {rail: joules})`` told about every interval of chip time, incl. idle).
    """

    rows = ROWS
    columns = COLUMNS
    neurons = NEURONS
    pes = PES

    def __init__(self, chip_seed: int = 0, run_seed: int = 0,
                 fidelity: str | ChipParams = "ideal", **overrides) -> None:
        self.chip_seed = chip_seed
        self.run_seed = run_seed
        self.params = self._resolve(fidelity, overrides)
        self.fidelity = self.params.name
        self.levels_s = self.params.levels_s.copy()
        self.regs = ChipRegisters()
        self.clock_s = 0.0
        self.rng = np.random.default_rng([run_seed, 0x52554E])
        self._build(keep_state=None)
        self.energy_j = {c: 0.0 for c in COMPONENTS}
        self.rail_energy_j = {r: 0.0 for r in RAILS}
        self.activity_listeners: list[Callable[[float, float, dict], None]] = []
        self.counters = {"runs": 0, "samples": 0, "in_spikes": 0, "out_spikes": 0,
                         "pulses": 0, "reads": 0}
        self.last_run: dict = {}
        self.revision = 0
        """Incremented whenever the persistent state changes (cells, wear, params, registers
        set through this object, chip time advanced on purpose); the die file saves on change."""
        prewarm()   # load the compiled kernel now, not inside the first RUN's deadline

    # --- configuration --------------------------------------------------------------------
    @staticmethod
    def _resolve(fidelity, overrides) -> ChipParams:
        if isinstance(fidelity, ChipParams):
            return fidelity.replace(**overrides) if overrides else fidelity
        return ChipParams.preset(str(fidelity), **overrides)

    def _build(self, keep_state) -> None:
        chip_rng = np.random.default_rng([self.chip_seed, 0xC417])
        self.array = RRAMArray(self.params, chip_rng, ROWS, COLUMNS,
                               wear_rng=np.random.default_rng([self.chip_seed, 0xE4D]))
        z_th = chip_rng.standard_normal(NEURONS)
        z_tau = chip_rng.standard_normal(NEURONS)
        self.theta_mismatch = 1.0 + self.params.theta_mismatch_rel * z_th
        self.tau_mismatch = 1.0 + self.params.tau_mismatch_rel * z_tau
        if keep_state is not None:
            a = self.array
            a.g_prog, a.t_prog, a.xi, a.pulse_count = keep_state
            a._refresh_stuck()

    def set_fidelity(self, fidelity: str | ChipParams, **overrides) -> None:
        """Switch preset / overrides; array contents (programmed state, wear) are kept."""
        a = self.array
        state = (a.g_prog.copy(), a.t_prog.copy(), a.xi.copy(), a.pulse_count.copy())
        self.params = self._resolve(fidelity, overrides)
        self.fidelity = self.params.name
        self.levels_s = self.params.levels_s.copy()
        self._build(keep_state=state)
        self.revision += 1

    # --- persistent state (the die file) ------------------------------------------------------
    def state(self) -> dict:
        """Everything the die keeps, as plain values and numpy arrays (SI units): seeds, the
        parameter set, chip clock, every per-cell array (``RRAMArray.STATE_FIELDS``), neuron
        mismatch, chip-side register settings, counters and energy totals."""
        return {
            "chip_seed": int(self.chip_seed), "run_seed": int(self.run_seed),
            "params": dataclasses.asdict(self.params), "clock_s": float(self.clock_s),
            "cells": self.array.state(),
            "theta_mismatch": self.theta_mismatch.copy(), "tau_mismatch": self.tau_mismatch.copy(),
            "regs": dataclasses.asdict(self.regs), "counters": dict(self.counters),
            "energy_j": dict(self.energy_j), "rail_energy_j": dict(self.rail_energy_j),
        }

    @classmethod
    def from_state(cls, state: dict, run_seed: int | None = None) -> "VirtualChip":
        """A chip in exactly the state ``state()`` captured (``run_seed`` overrides the noise
        stream's seed, e.g. for a new session on a saved die)."""
        params = ChipParams(**{k: (tuple(tuple(x) for x in v) if k == "idle_current_a" else v)
                               for k, v in state["params"].items()})
        chip = cls(chip_seed=int(state["chip_seed"]),
                   run_seed=int(state["run_seed"] if run_seed is None else run_seed), fidelity=params)
        chip.load_state(state)
        return chip

    def load_state(self, state: dict) -> None:
        """Restore cells, mismatch, clock, registers, counters and energy from ``state()``
        (same chip seed and parameter set as this chip's)."""
        self.array.load_state(state["cells"])
        for name in ("theta_mismatch", "tau_mismatch"):
            v = np.asarray(state[name], dtype=np.float64)
            if v.shape != (NEURONS,):
                raise ValueError(f"{name} has shape {v.shape}, expected ({NEURONS},)")
            setattr(self, name, v.copy())
        self.clock_s = float(state["clock_s"])
        self.regs = ChipRegisters(**state["regs"])
        self.counters.update({k: int(v) for k, v in state["counters"].items()})
        self.energy_j.update({k: float(v) for k, v in state["energy_j"].items()})
        self.rail_energy_j.update({k: float(v) for k, v in state["rail_energy_j"].items()})
        self.revision += 1

    # --- energy bookkeeping ---------------------------------------------------------------
    def _account(self, duration_s: float, comp_j: dict) -> None:
        """Add ``comp_j`` (component -> J) plus leakage for ``duration_s`` and advance the clock."""
        t0 = self.clock_s
        rails = {r: 0.0 for r in RAILS}
        for c, e in comp_j.items():
            self.energy_j[c] += e
            rails[COMPONENT_RAIL[c]] += e
        leak = dict(self.params.idle_current_a)
        for r, v in RAILS.items():
            e_leak = leak.get(r, 0.0) * v * duration_s
            rails[r] += e_leak
        for r in RAILS:
            self.rail_energy_j[r] += rails[r]
        self.clock_s = t0 + duration_s
        for f in self.activity_listeners:
            f(t0, self.clock_s, rails)

    def idle_current_a(self) -> dict:
        """Leakage current per rail while nothing runs (neurons bias-gated off)."""
        leak = dict(self.params.idle_current_a)
        return {r: leak.get(r, 0.0) for r in RAILS}

    # --- array access -------------------------------------------------------------------
    def read(self, rows: np.ndarray, cols: np.ndarray, v_read_v: float, averages: int = 1) -> np.ndarray:
        """Conductance (S) of cells (rows[i], cols[i]) measured at ``v_read_v`` volts (averaged)."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        cols = np.atleast_1d(np.asarray(cols, dtype=np.int64))
        averages = max(int(averages), 1)
        g = self.array.read(rows, cols, float(v_read_v), averages, self.clock_s, self.rng)
        if self.params.read_disturb_rel and v_read_v > 0.3:
            self.revision += 1               # read disturb changed the cells
        n = rows.size
        dur = self.params.read_time_s * averages * n
        g_true = self.array.conductance(self.clock_s, rows, cols)
        p = self.params
        st = dict(_energy.CAL.p_static_w)
        # one TIA + the read current for the read time; WL/BL drivers per read
        # one TIA, the read current, and the WL/BL drivers (bias while enabled + per read)
        e = {
            "array": float(np.sum(v_read_v ** 2 * g_true)) * p.read_time_s * averages,
            "tia": st["tia"] / NEURONS * dur,
            "wl": st["wl"] * dur + _energy.CAL.wl_j_per_event * n * averages,
            "bl": st["bl"] * dur + _energy.CAL.bl_j_per_event * n * averages * (v_read_v / 0.2) ** 2,
            "controller": 0.0,
        }
        self.counters["reads"] += n * averages
        self._account(dur, {k: v * p.e_scale for k, v in e.items()})
        return g.astype(np.float64)

    def pulse(self, kind: np.ndarray, rows: np.ndarray, cols: np.ndarray, v_bl_v: np.ndarray,
              v_wl_v: np.ndarray, v_sl_v: np.ndarray, width_s: np.ndarray) -> None:
        """Apply SET (kind=+1) / RESET (kind=-1) pulses in order."""
        kind = np.atleast_1d(np.asarray(kind))
        n = kind.size
        if n == 0:
            return
        width = np.broadcast_to(np.asarray(width_s, dtype=np.float64), (n,))
        step = width + self.params.pulse_overhead_s
        t_each = self.clock_s + np.cumsum(step) - step + width   # end of each pulse
        i_cell = self.array.pulse(kind, rows, cols, v_bl_v, v_wl_v, v_sl_v, width, t_each, self.rng)
        v_bl = np.broadcast_to(np.asarray(v_bl_v, dtype=np.float64), (n,))
        v_sl = np.broadcast_to(np.asarray(v_sl_v, dtype=np.float64), (n,))
        v_wl = np.broadcast_to(np.asarray(v_wl_v, dtype=np.float64), (n,))
        v_cell = np.abs(v_bl - v_sl)
        e_cell = float(np.sum(v_cell * i_cell * width))
        c_line = 0.5e-12   # [model] line capacitance charged per pulse
        st = dict(_energy.CAL.p_static_w)
        dur = float(np.sum(step))
        # drivers biased while pulsing + line charging + the cell's own V * I * width
        e = {
            "bl": st["bl"] * dur + float(np.sum(c_line * v_bl ** 2)) + 0.5 * e_cell,
            "sl": st["sl"] * dur + float(np.sum(c_line * v_sl ** 2)) + 0.5 * e_cell,
            "wl": st["wl"] * dur + float(np.sum(c_line * v_wl ** 2)),
        }
        self.counters["pulses"] += n
        self.revision += 1
        self._account(dur, {k: v * self.params.e_scale for k, v in e.items()})

    def conductances(self) -> np.ndarray:
        """Current noise-free conductance of every cell (ROWS, COLUMNS), siemens."""
        return self.array.conductance(self.clock_s)

    def set_conductances(self, g_s: np.ndarray) -> None:
        """Back door: force the programmed state (tests, fast setup); stuck cells stay stuck."""
        self.array.set_conductance(g_s, self.clock_s)
        self.revision += 1

    # --- inference ----------------------------------------------------------------------
    def weights(self) -> np.ndarray:
        """Normalised weight matrix (ROWS, NEURONS) = (G+ - G-) / g_unit."""
        g = self.conductances()
        return (g[:, 0::2] - g[:, 1::2]) / self.regs.g_unit_s

    def neuron_params(self) -> NeuronParams:
        return NeuronParams(tau_steps=self.regs.tau_steps, theta=self.regs.theta,
                            ref_scale=self.regs.ref_scale, tau_ref_steps=self.regs.tau_ref_steps)

    def run(self, spikes: np.ndarray) -> np.ndarray:
        """Run samples back to back.  spikes: bool (n, T, ROWS) -> output bool (n, T, NEURONS)."""
        spikes = np.asarray(spikes)
        if spikes.ndim == 2:
            spikes = spikes[None]
        if spikes.ndim != 3 or spikes.shape[2] != ROWS:
            raise ValueError(f"run expects spikes of shape (n, T, {ROWS}), got {spikes.shape}")
        n, t = spikes.shape[:2]
        p = self.params
        regs = self.regs
        if p.input_spike_loss > 0 or p.input_jitter_frac > 0:
            spikes = drive_inputs(spikes, p.input_spike_loss, p.input_jitter_frac, self.rng)
        nparams = self.neuron_params()
        g = self.conductances()
        if p.ir_drop_rel:
            g = g * (1.0 - p.ir_drop_rel * (np.arange(ROWS) / (ROWS - 1)))[:, None]
        if not p.noisy:
            w = (g[:, 0::2] - g[:, 1::2]) / regs.g_unit_s
            out = srm_spikes(spikes @ w, nparams)
            row_counts = spikes.reshape(-1, ROWS).sum(axis=0, dtype=np.int64) if n * t else np.zeros(ROWS)
            n_out = int(out.sum())
        else:
            gu = regs.g_unit_s
            wd = (g[:, 0::2] - g[:, 1::2]) / gu
            # per-cell read noise during a spike: sigma_I = rel * V * G  ->  normalised rel * G / g_unit
            var = ((p.read_noise_rel * g[:, 0::2]) ** 2 + (p.read_noise_rel * g[:, 1::2]) ** 2) / gu ** 2
            var0 = np.full(NEURONS, p.neuron_noise_sigma ** 2)
            key = noise_key(self.rng) if (p.column_noise or p.neuron_noise_sigma > 0) else None
            if not p.column_noise:
                var = np.zeros_like(var)
            out, row_counts, n_out = layer_forward(
                spikes, wd, var, key, var0, nparams, theta=regs.theta * self.theta_mismatch,
                tau_steps=regs.tau_steps * self.tau_mismatch)
        act = _energy.activity_from_counts(n, t, row_counts, n_out, g, regs.v_spike_v, regs.dt_s,
                                           regs.latency_s)
        comp = _energy.inference_energy(act, _energy.CAL, p.e_scale, regs.v_spike_v)
        self.counters["runs"] += 1
        self.counters["samples"] += n
        self.counters["in_spikes"] += int(act.in_events)
        self.counters["out_spikes"] += int(n_out)
        self.last_run = {"n": n, "steps": t, "activity": act, "energy_j": comp,
                         "t_start_s": self.clock_s}
        self._account(act.t_enabled_s, comp)
        return np.asarray(out, dtype=bool)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of chip time pass (retention, waits): idle leakage only."""
        if seconds < 0:
            raise ValueError("cannot advance chip time by a negative amount")
        if seconds > 0:
            self._account(float(seconds), {})
            self.revision += 1

    def reset(self) -> None:
        """Board reset: registers to defaults (array contents are non-volatile)."""
        self.regs = ChipRegisters()
        self.revision += 1
