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

Stuck cells (:func:`draw_stuck`, :func:`stuck_weights`): each device of a pair is stuck-on
with probability ``stuck_on_frac`` (at a conductance uniform in ``g_stuck_on_lo_s`` ..
``g_stuck_on_hi_s``) or stuck-off with probability ``stuck_off_frac`` (uniform in ``g_min_s``
.. ``g_stuck_off_hi_s``), drawn afresh for every batch as the device model draws them per die
(``sim_backend.physics.rram``).  A stuck device holds its value whatever was asked; with
``route_stuck`` (the bench's default flow, ``bench.hybrid.DEFAULT_ROUTE_STUCK``) the healthy
partner of a single stuck device is re-chosen to compensate (``bench.mapping.route_around``:
the level nearest to what the pair needs, within 0 .. ``g_max_s``), without it the partner
keeps its own target.  Off by default in :class:`HWAwareConfig` (fractions 0);
:func:`chip_defaults` takes the preset's fractions.

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
G_STUCK_ON_LO_S, G_STUCK_ON_HI_S = 160e-6, 200e-6
"""Range of a stuck-on device's conductance (S), as the device model draws it."""
G_MIN_S = 0.3e-6
"""Deepest RESET state (S): the low end of a stuck-off device's conductance."""
G_STUCK_OFF_HI_S = 3.6e-6
"""High end of a stuck-off device's conductance (S): 0.9 x the 4 uS stuck-off limit."""


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
    stuck_on_frac: float = 0.0
    """Probability that a device is stuck-on (per device, per batch)."""
    stuck_off_frac: float = 0.0
    """Probability that a device is stuck-off."""
    g_stuck_on_lo_s: float = G_STUCK_ON_LO_S
    g_stuck_on_hi_s: float = G_STUCK_ON_HI_S
    g_min_s: float = G_MIN_S
    g_stuck_off_hi_s: float = G_STUCK_OFF_HI_S
    route_stuck: bool = True
    """Model the bench routing around stuck cells (``bench.hybrid.DEFAULT_ROUTE_STUCK``)."""

    def __post_init__(self) -> None:
        for name in ("g_max_s", "g_step_s", "g_unit_s"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"HWAwareConfig.{name} must be finite and > 0, got {v!r}")
        for name in ("weight_noise_s", "theta_mismatch", "tau_mismatch", "neuron_noise"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"HWAwareConfig.{name} must be finite and >= 0, got {v!r}")
        for name in ("stuck_on_frac", "stuck_off_frac"):
            v = getattr(self, name)
            if not (np.isfinite(v) and 0 <= v <= 1):
                raise ValueError(f"HWAwareConfig.{name} must be in [0, 1], got {v!r}")
        if self.stuck_on_frac + self.stuck_off_frac > 1:
            raise ValueError("HWAwareConfig.stuck_on_frac + stuck_off_frac must be <= 1")
        if not (0 <= self.g_min_s <= self.g_stuck_off_hi_s and 0 <= self.g_stuck_on_lo_s <= self.g_stuck_on_hi_s
                and np.isfinite(self.g_stuck_on_hi_s)):
            raise ValueError("HWAwareConfig stuck conductance ranges must be finite, >= 0 and ordered")
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
    ``theta_mismatch_rel``, ``tau_mismatch_rel``, ``neuron_noise_sigma``, the stuck cells
    (``stuck_on_frac``, ``stuck_off_frac``, ``g_stuck_on_lo_s`` / ``g_stuck_on_hi_s``,
    ``g_min_s`` .. 0.9 x ``g_stuck_off_s`` as ``sim_backend.physics.rram`` draws them); ``g_unit_s`` from
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
        stuck_on_frac=num("stuck_on_frac", 0.0),
        stuck_off_frac=num("stuck_off_frac", 0.0),
        g_stuck_on_lo_s=num("g_stuck_on_lo_s", G_STUCK_ON_LO_S),
        g_stuck_on_hi_s=num("g_stuck_on_hi_s", G_STUCK_ON_HI_S),
        g_min_s=num("g_min_s", G_MIN_S),
        g_stuck_off_hi_s=0.9 * num("g_stuck_off_s", G_STUCK_OFF_HI_S / 0.9),
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
    if cfg.stuck_on_frac + cfg.stuck_off_frac > 0:
        w = stuck_weights(weight, w, draw_stuck(np.shape(w), cfg, rng), cfg)
    return w


def draw_stuck(shape: tuple[int, ...], cfg: HWAwareConfig, rng: np.random.Generator) -> np.ndarray:
    """Stuck devices for a weight matrix of ``shape``: array (2, *shape) of conductances (S),
    index 0 = G+, 1 = G-; NaN where the device is healthy."""
    u = rng.random((2, *shape))
    v = rng.random((2, *shape))
    on = u < cfg.stuck_on_frac
    off = ~on & (u < cfg.stuck_on_frac + cfg.stuck_off_frac)
    g_on = cfg.g_stuck_on_lo_s + (cfg.g_stuck_on_hi_s - cfg.g_stuck_on_lo_s) * v
    g_off = cfg.g_min_s + (cfg.g_stuck_off_hi_s - cfg.g_min_s) * v
    return np.where(on, g_on, np.where(off, g_off, np.nan))


def stuck_weights(weight: np.ndarray, w_eff: np.ndarray, g_stuck: np.ndarray, cfg: HWAwareConfig) -> np.ndarray:
    """Effective weights with the stuck devices ``g_stuck`` (from :func:`draw_stuck`).

    ``weight``: the layer's weights (what the mapper aims at, clipped to +-w_max);
    ``w_eff``: the weights as realised without stuck devices (quantised, noisy).  A pair with a
    stuck device gives ``(G+ - G-) / g_unit`` with the stuck value(s); its healthy partner keeps
    its own conductance, or with ``cfg.route_stuck`` is re-chosen to bring the pair nearest to
    the wanted weight (on the levels when ``cfg.quantize``, within 0 .. g_max).
    """
    w_eff = np.asarray(w_eff, dtype=np.float64)
    gs_p, gs_m = np.asarray(g_stuck[0], dtype=np.float64), np.asarray(g_stuck[1], dtype=np.float64)
    sp, sm = np.isfinite(gs_p), np.isfinite(gs_m)
    if not (sp.any() or sm.any()):
        return w_eff
    gp = np.where(w_eff > 0, w_eff * cfg.g_unit_s, 0.0)
    gm = np.where(w_eff < 0, -w_eff * cfg.g_unit_s, 0.0)
    if cfg.route_stuck:
        want = np.clip(np.asarray(weight, dtype=np.float64), -cfg.w_max, cfg.w_max) * cfg.g_unit_s

        def partner(g):  # the healthy device's best conductance: nearest level (or value) in range
            return np.clip(np.rint(g / cfg.g_step_s) * cfg.g_step_s if cfg.quantize else g, 0.0, cfg.g_max_s)

        gm = np.where(sp & ~sm, partner(np.where(sp, gs_p, 0.0) - want), gm)
        gp = np.where(sm & ~sp, partner(np.where(sm, gs_m, 0.0) + want), gp)
    gp = np.where(sp, gs_p, gp)
    gm = np.where(sm, gs_m, gm)
    return np.where(sp | sm, (gp - gm) / cfg.g_unit_s, w_eff)


def mismatch(n: int, theta: float, tau_steps: float, cfg: HWAwareConfig,
             rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-neuron (theta, tau_steps) with mismatch, or None where the mismatch is zero."""
    th = tau = None
    if cfg.theta_mismatch > 0:
        th = theta * np.maximum(1.0 + cfg.theta_mismatch * rng.standard_normal(n), 0.05)
    if cfg.tau_mismatch > 0:
        tau = tau_steps * np.maximum(1.0 + cfg.tau_mismatch * rng.standard_normal(n), 0.05)
    return th, tau
