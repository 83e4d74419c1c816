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

Defaults: taken from the simulator's parameter set ``sim_backend.physics.params.ChipParams``
when it exists and has the fields (see :func:`chip_defaults`), otherwise the documented
constants below (DESIGN.md section 2; relaxation sigma ~1-2.5 uS after 1 s).
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
WEIGHT_NOISE_S = 2e-6
"""Programmed-conductance spread, sigma (S), relaxation after ~1 s."""
THETA_MISMATCH = 0.02
"""Relative sigma of the per-neuron threshold."""
TAU_MISMATCH = 0.02
"""Relative sigma of the per-neuron PSP time constant (leak)."""


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
    layers: str = "chip"
    """"chip": only the on-chip layer; "all": every layer."""

    def __post_init__(self) -> None:
        for name in ("g_max_s", "g_step_s", "g_unit_s"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"HWAwareConfig.{name} must be finite and > 0, got {v!r}")
        for name in ("weight_noise_s", "theta_mismatch", "tau_mismatch"):
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


def chip_defaults() -> HWAwareConfig:
    """HWAwareConfig with defaults from ``sim_backend.physics.params.ChipParams`` if available.

    Recognised fields (first one present wins): g_max_s; g_step_s (or levels);
    g_unit_s; weight/program noise sigma in siemens (``program_sigma_s``,
    ``relax_sigma_s``, ``weight_noise_s``); ``theta_mismatch``/``theta_sigma``;
    ``tau_mismatch``/``tau_sigma``.  Missing fields keep this module's constants.
    """
    try:  # written concurrently by the physics engineer; optional
        from sim_backend.physics.params import ChipParams  # type: ignore
        p = ChipParams()
    except Exception:  # noqa: BLE001 - any failure: use the documented constants
        return HWAwareConfig()

    def first(*names: str) -> Any:
        for n in names:
            v = getattr(p, n, None)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
                return float(v)
        return None

    kw: dict[str, Any] = {}
    for key, names in {
        "g_max_s": ("g_max_s",),
        "g_step_s": ("g_step_s", "level_step_s"),
        "g_unit_s": ("g_unit_s",),
        "weight_noise_s": ("weight_noise_s", "relax_sigma_s", "program_sigma_s"),
        "theta_mismatch": ("theta_mismatch", "theta_sigma", "theta_sigma_rel"),
        "tau_mismatch": ("tau_mismatch", "tau_sigma", "tau_sigma_rel"),
    }.items():
        v = first(*names)
        if v is not None:
            kw[key] = v
    if "g_step_s" not in kw:
        lv = first("levels", "n_levels")
        if lv and lv > 1:
            kw["g_step_s"] = kw.get("g_max_s", G_MAX_S) / (lv - 1)
    try:
        return replace(HWAwareConfig(), **kw)
    except ValueError:
        return HWAwareConfig()


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
