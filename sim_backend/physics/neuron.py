"""The chip's analog spike-response-model (SRM) neuron, in discrete chip steps.

One implementation serves the simulated chip, the software layers of a hybrid network
and training, so all three produce the same spikes.

Discrete-time definition (all time constants in *steps*, which is what makes the model
proportionally time-scalable: a stream compressed k-fold and run with a k-fold shorter
step gives identical spikes):

    x[t]   = clip(z[t], clamp_low, clamp_high)            normalised TIA output
    p[t]   = a * p[t-1] + x[t] / tau                        PSP, kernel (1/tau) e^(-n/tau)
    u[t]   = p[t] + r[t]                                    membrane potential
    s[t]   = u[t] >= theta                                  spike
    r[t+1] = b * r[t] - ref_scale * theta * s[t]            refractory kernel
                                                            -ref_scale*theta*e^(-(n-1)/tau_ref), n>=1
with a = exp(-1/tau), b = exp(-1/tau_ref).

Sources: the authors' public training code (DESIGN.md section 2): tau = 10 steps, unit-area
PSP kernel, refractory -10 e^(-t/1 step), theta = 1, input clamp [0, 5].
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class NeuronParams:
    """Neuron constants in normalised units and chip steps (dimensionless)."""

    tau_steps: float = 10.0
    """PSP time constant, in steps (default 10 steps = 1 us at 100 ns/step)."""
    tau_ref_steps: float = 1.0
    """Refractory-kernel time constant, in steps."""
    theta: float = 1.0
    """Firing threshold, normalised units."""
    ref_scale: float = 10.0
    """Refractory kernel amplitude as a multiple of theta."""
    clamp_low: float = 0.0
    """Lower clamp of the neuron input (TIA saturation), normalised units."""
    clamp_high: float = 5.0
    """Upper clamp of the neuron input (TIA saturation), normalised units."""

    def __post_init__(self) -> None:
        for name in ("tau_steps", "tau_ref_steps", "theta"):
            v = getattr(self, name)
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"NeuronParams.{name} must be finite and > 0, got {v!r}")
        if not self.clamp_low < self.clamp_high:
            raise ValueError(
                f"NeuronParams clamp_low ({self.clamp_low}) must be < clamp_high ({self.clamp_high})"
            )


@dataclass
class NeuronState:
    """Full trajectories kept for the backward pass of training (shape (B, T, N))."""

    x: np.ndarray
    p: np.ndarray
    u: np.ndarray
    s: np.ndarray
    theta: np.ndarray = field(repr=False)


def _per_neuron(value: float | np.ndarray | None, default: float, n: int) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=np.float64)
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))
    return np.array(arr)


def srm_forward(
    z: np.ndarray,
    params: NeuronParams = NeuronParams(),
    *,
    theta: np.ndarray | float | None = None,
    tau_steps: np.ndarray | float | None = None,
    keep_state: bool = False,
) -> np.ndarray | tuple[np.ndarray, NeuronState]:
    """Run SRM neurons over time.

    Args:
        z: weighted input per step, normalised units, shape (B, T, N) or (T, N).
        params: shared neuron constants.
        theta: optional per-neuron thresholds (mismatch), shape (N,).
        tau_steps: optional per-neuron PSP time constants in steps (leak mismatch), (N,).
        keep_state: also return the trajectories needed by training.

    Returns:
        spikes as float64 0/1 array of z's shape (and the state if ``keep_state``).
    """
    z = np.asarray(z, dtype=np.float64)
    squeeze = z.ndim == 2
    if squeeze:
        z = z[None]
    if z.ndim != 3:
        raise ValueError(f"srm_forward expects (B, T, N) or (T, N) input, got shape {z.shape}")
    b_, t_, n_ = z.shape
    th = _per_neuron(theta, params.theta, n_)
    tau = _per_neuron(tau_steps, params.tau_steps, n_)
    a = np.exp(-1.0 / tau)
    inv_tau = 1.0 / tau
    bref = np.exp(-1.0 / params.tau_ref_steps)
    jump = params.ref_scale * th

    x = np.clip(z, params.clamp_low, params.clamp_high)
    xs = x * inv_tau
    s = np.zeros_like(x)
    p_hist = np.empty_like(x) if keep_state else None
    u_hist = np.empty_like(x) if keep_state else None
    p = np.zeros((b_, n_))
    r = np.zeros((b_, n_))
    for t in range(t_):
        p = a * p + xs[:, t]
        u = p + r
        st = u >= th
        s[:, t] = st
        r = bref * r - jump * st
        if keep_state:
            p_hist[:, t] = p
            u_hist[:, t] = u
    if squeeze:
        s = s[0]
    if keep_state:
        state = NeuronState(x=x, p=p_hist, u=u_hist, s=s if not squeeze else s[None], theta=th)
        return s, state
    return s
