"""The virtual PE-macro chip: the object the virtual firmware drives.

This is the interface between the virtual firmware (protocol side) and the physics models.
All quantities are SI (seconds, volts, siemens, amperes, joules).  The firmware only calls
the methods below; everything about *how* the chip behaves lives in ``sim_backend.physics``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_backend.physics.neuron import NeuronParams, srm_forward

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


class VirtualChip:
    """Ideal placeholder chip: exact conductances, noiseless neurons (replaced by the physics model)."""

    rows = ROWS
    columns = COLUMNS
    neurons = NEURONS
    pes = PES

    def __init__(self, chip_seed: int = 0, run_seed: int = 0, fidelity: str = "ideal") -> None:
        self.chip_seed = chip_seed
        self.run_seed = run_seed
        self.fidelity = fidelity
        self.levels_s = LEVELS_S.copy()
        self.regs = ChipRegisters()
        self.clock_s = 0.0
        self.g = np.zeros((ROWS, COLUMNS))

    # --- array access -------------------------------------------------------------------
    def read(self, rows: np.ndarray, cols: np.ndarray, v_read_v: float, averages: int = 1) -> np.ndarray:
        """Conductance (S) of cells (rows[i], cols[i]) measured at ``v_read_v`` volts."""
        self.clock_s += 1e-6 * averages * np.size(rows)
        return self.g[np.asarray(rows), np.asarray(cols)].astype(np.float64)

    def pulse(self, kind: np.ndarray, rows: np.ndarray, cols: np.ndarray, v_bl_v: np.ndarray,
              v_wl_v: np.ndarray, v_sl_v: np.ndarray, width_s: np.ndarray) -> None:
        """Apply SET (kind=+1) / RESET (kind=-1) pulses in order."""
        kind = np.asarray(kind)
        step = G_MAX_S / 15
        for k, r, c in zip(kind, np.asarray(rows), np.asarray(cols)):
            self.g[r, c] = np.clip(self.g[r, c] + (step if k > 0 else -step), 0.0, G_MAX_S)
        self.clock_s += float(np.sum(width_s))

    # --- inference ----------------------------------------------------------------------
    def weights(self) -> np.ndarray:
        """Normalised weight matrix (ROWS, NEURONS) = (G+ - G-) / g_unit."""
        return (self.g[:, 0::2] - self.g[:, 1::2]) / self.regs.g_unit_s

    def run(self, spikes: np.ndarray) -> np.ndarray:
        """Run samples back to back.  spikes: bool (n, T, ROWS) -> output bool (n, T, NEURONS)."""
        spikes = np.asarray(spikes, dtype=np.float64)
        z = spikes @ self.weights()
        params = NeuronParams(tau_steps=self.regs.tau_steps, theta=self.regs.theta,
                              ref_scale=self.regs.ref_scale)
        out = srm_forward(z, params)
        n, t = spikes.shape[:2]
        self.clock_s += n * (t * self.regs.dt_s + self.regs.latency_s)
        return out.astype(bool)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of chip time pass (retention, waits)."""
        self.clock_s += seconds

    def reset(self) -> None:
        """Board reset: registers to defaults (array contents are non-volatile)."""
        self.regs = ChipRegisters()
