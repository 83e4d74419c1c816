"""Hardware-aware training options: what the chip does to a weight matrix and to its neurons.

Conductance mapping (differential pair per weight, as on the PE macro)::

    w  = (G+ - G-) / g_unit          G+, G- in {0, 10, 20, ..., 150} uS  (16 levels)
    w >= 0:  G+ = round(w * g_unit / g_step) * g_step,  G- = 0      (and the mirror for w < 0)

so a weight is quantised to multiples of ``g_step / g_unit`` (0.2 units) within
``+-g_max / g_unit`` (+-3 units, the reference output-layer clamp).  In training the
quantisation is applied in the forward pass only; the backward pass treats it as the
identity (straight-through estimator).

Weight noise is Gaussian in conductance units (``weight_noise_s``, siemens, per programmed
cell; off cells stay off) and becomes ``sigma * sqrt(#programmed cells of the pair) / g_unit``
in weight units.  Neuron mismatch draws per-neuron threshold and PSP time constant (leak)
``x * (1 + N(0, mismatch))`` once per batch.

Neuron-input noise adds ``N(0, neuron_noise)`` to the weighted input of every neuron and step.

Defaults: :func:`chip_defaults` takes them from the simulator's parameter set
``sim_backend.physics.params.ChipParams`` (``typical`` preset: 16 levels to 150 uS, 1.8 uS
relaxation spread after 1 s, 2 % threshold and leak mismatch, 0.005 input noise); the
constants below are the fallback (DESIGN.md section 2).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

G_MAX_S = 150e-6
"""Highest conductance level (S)."""
G_STEP_S = 10e-6
"""Spacing of the 16 levels 0, 10, ..., 150 uS (S)."""
G_UNIT_S = 50e-6
"""Differential conductance that gives one normalised input unit per spike (S)."""
WEIGHT_NOISE_S = 1.8e-6
"""Programmed-conductance spread, sigma (S), relaxation after ~1 s."""
THETA_MISMATCH = 0.02
"""Relative sigma of the per-neuron threshold."""
TAU_MISMATCH = 0.02
"""Relative sigma of the per-neuron PSP time constant (leak)."""
NEURON_NOISE = 0.005
"""Sigma of the neuron-input (TIA) noise per step, normalised units."""


@dataclass(frozen=True)
class HWAwareConfig:
    """Which chip effects the training forward pass sees, and how strong."""

    quantize: bool = True
    g_max_s: float = G_MAX_S
    g_step_s: float = G_STEP_S
    g_unit_s: float = G_UNIT_S
    weight_noise_s: float = WEIGHT_NOISE_S
    theta_mismatch: float = THETA_MISMATCH
    tau_mismatch: float = TAU_MISMATCH
    neuron_noise: float = NEURON_NOISE
    """Per-step Gaussian noise added to the neuron input z (normalised units)."""
    layers: str = "chip"
    """"chip": only the on-chip layer; "all": every layer."""

    def __post_init__(self) -> None:
        for name in ("g_max_s", "g_step_s", "g_unit_s"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"HWAwareConfig.{name} must be finite and > 0, got {v!r}")
        for name in ("weight_noise_s", "theta_mismatch", "tau_mismatch", "neuron_noise"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"HWAwareConfig.{name} must be finite and >= 0, got {v!r}")
        if self.layers not in ("chip", "all"):
            raise ValueError(f"HWAwareConfig.layers must be 'chip' or 'all', got {self.layers!r}")

    @property
    def levels(self) -> int:
        """Number of conductance levels per cell including off (16)."""
        return int(round(self.g_max_s / self.g_step_s)) + 1

    @property
    def w_max(self) -> float:
        """Largest representable weight magnitude (normalised units)."""
        return self.g_max_s / self.g_unit_s

    @property
    def w_step(self) -> float:
        return self.g_step_s / self.g_unit_s

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def chip_defaults(preset: str = "typical") -> HWAwareConfig:
    """HWAwareConfig with defaults from the simulator's ``ChipParams.preset(preset)``.

    Fields used: ``g_max_s``, ``n_levels`` (level spacing ``g_max / (n_levels - 1)``),
    ``relax_sigma_1s_s`` (weight noise, programmed-conductance spread after 1 s),
    ``theta_mismatch_rel``, ``tau_mismatch_rel``, ``neuron_noise_sigma``; ``g_unit_s`` from
    ``ChipParams`` if it has one, else the chip register default (50 uS).  If the parameter
    set cannot be imported, this module's constants are used.
    """
    try:
        from sim_backend.physics.params import ChipParams
        p = ChipParams.preset(preset)
    except (ImportError, AttributeError):  # pragma: no cover - parameter set missing
        return HWAwareConfig()

    def num(name: str, default: float) -> float:
        v = getattr(p, name, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            return float(v)
        return default

    g_max = num("g_max_s", G_MAX_S)
    n_levels = num("n_levels", round(G_MAX_S / G_STEP_S) + 1)
    return HWAwareConfig(
        g_max_s=g_max,
        g_step_s=g_max / (n_levels - 1) if n_levels > 1 else G_STEP_S,
        g_unit_s=num("g_unit_s", G_UNIT_S),
        weight_noise_s=num("relax_sigma_1s_s", WEIGHT_NOISE_S),
        theta_mismatch=num("theta_mismatch_rel", THETA_MISMATCH),
        tau_mismatch=num("tau_mismatch_rel", TAU_MISMATCH),
        neuron_noise=num("neuron_noise_sigma", NEURON_NOISE),
    )


def to_conductances(weight: np.ndarray, cfg: HWAwareConfig = HWAwareConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Quantised differential conductances (G+, G-) in siemens for a weight matrix."""
    w = np.clip(np.asarray(weight, dtype=np.float64), -cfg.w_max, cfg.w_max)
    k = np.rint(np.abs(w) / cfg.w_step)
    g = k * cfg.g_step_s
    return np.where(w > 0, g, 0.0), np.where(w < 0, g, 0.0)


def quantize(weight: np.ndarray, cfg: HWAwareConfig = HWAwareConfig()) -> np.ndarray:
    """Weights as the chip would realise them from ideal programming (normalised units)."""
    gp, gm = to_conductances(weight, cfg)
    return (gp - gm) / cfg.g_unit_s


def perturb(weight: np.ndarray, cfg: HWAwareConfig, rng: np.random.Generator) -> np.ndarray:
    """Chip-realised weights for training: quantised (if enabled) plus conductance noise."""
    w = quantize(weight, cfg) if cfg.quantize else np.clip(weight, -cfg.w_max, cfg.w_max)
    if cfg.weight_noise_s > 0:
        programmed = w != 0
        noise = rng.standard_normal(w.shape) * (cfg.weight_noise_s / cfg.g_unit_s)
        w = w + noise * programmed
    return w


def mismatch(n: int, theta: float, tau_steps: float, cfg: HWAwareConfig,
             rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-neuron (theta, tau_steps) with mismatch, or None where the mismatch is zero."""
    th = tau = None
    if cfg.theta_mismatch > 0:
        th = theta * np.maximum(1.0 + cfg.theta_mismatch * rng.standard_normal(n), 0.05)
    if cfg.tau_mismatch > 0:
        tau = tau_steps * np.maximum(1.0 + cfg.tau_mismatch * rng.standard_normal(n), 0.05)
    return th, tau
