"""Surrogate-gradient backpropagation through time for the chip's SRM neurons.

This module is the numpy reference; ``bench.network.train_kernel`` runs the same arithmetic
compiled (numba, decision 0018) and is what :func:`train` uses when available
(``TrainConfig.kernel``): identical spikes, gradients equal up to the summation order of dW.

Forward: exactly ``sim_backend.physics.neuron.srm_forward`` (called with ``keep_state=True``),
so the trained network, the software layers of a hybrid run and the simulated chip share one
neuron implementation; the input current is the ascending-order sum over active inputs of
:func:`input_current` (the definition the inference path uses too, decision 0017).  Per layer
and step (see that module)::

    z = W s_in;  x = clip(z, lo, hi);  p[t] = a p[t-1] + x[t]/tau;  u = p + r
    s = H(u - theta);  r[t+1] = b r[t] - ref_scale * theta * s[t]

Backward (reverse time), with ``sg(u) = surrogate'(u - theta)`` standing in for ``H'``::

    gs[t] = dL/ds[t] (from the loss / next layer)  [- J dL/dr[t+1]  if reset_grad]
    du[t] = gs[t] * sg(u[t])
    dr[t] = du[t] + b dr[t+1]                      (only if reset_grad)
    dp[t] = du[t] + a dp[t+1]
    dz[t] = dp[t] / tau * [lo < z[t] < hi]         (clamp: zero gradient outside)
    dW    = sum_{b,t} dz[b,t]^T s_in[b,t]          (one matmul over all B*T rows)
    dL/ds_in = dz @ W

``reset_grad=False`` (default) does not propagate through the refractory kernel (the spike's
effect on later potentials), like SLAYER and most SNN frameworks: with this neuron
(``ref_scale=10``) that path multiplies the gradient by up to ``|b - 10 sg|`` ~ 7 per step and
explodes over 300 steps.  ``reset_grad=True`` gives the exact gradient of the discrete equations
(with the surrogate), used in the finite-difference tests.

Loss (spike count, after SLAYER's ``numSpikes``): with counts ``c[b,k] = sum_t s[b,t,k]`` and
targets ``y[b,k]`` = ``target_true`` for the label, ``target_false`` otherwise (given per 300
steps, scaled by ``T/300``)::

    L = mean_b sum_k (c[b,k] - y[b,k])^2 / (2 T)     dL/ds[b,t,k] = (c - y) / (B T)

Optimiser: Adam (lr 0.005, cosine decay to 5 % over the epochs by default), L2 penalty ``l2 * |W|^2 / 2`` added to the gradient, weights
clipped to each layer's clamp after every step.  Deterministic for a given seed (batch order,
augmentation, hardware-aware noise all come from one ``numpy.random.Generator``).

Chip-in-the-loop fine-tuning reuses :func:`layer_gradient` with ``measured_out`` set: the loss
uses the measured output spikes, the surrogate uses the model's membrane trajectory.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import lfilter

from sim_backend.physics.neuron import NeuronParams, NeuronState, srm_forward

from bench.network import hwaware, train_kernel
from bench.network.model import Network, predict

REFERENCE_STEPS = 300


# --------------------------------------------------------------------------------------
# surrogate gradients
# --------------------------------------------------------------------------------------
SURROGATES = ("exp", "sigmoid", "fast_sigmoid")


def surrogate_grad(v: np.ndarray, kind: str = "exp", width: float = 1.0, *,
                   overwrite: bool = False) -> np.ndarray:
    """Surrogate for dH/dv at ``v = u - theta``.

    - ``exp`` (default, the reference): ``exp(-|v| / width)``
    - ``sigmoid``: derivative of ``sigmoid(v / width)``, i.e. ``sig(1 - sig) / width``
    - ``fast_sigmoid``: ``1 / (1 + |v| / width)^2``

    ``overwrite=True`` (``v`` a float64 array the caller gives up) computes in ``v``'s memory and
    returns it: the same numpy operations in the same order, so the same bits, without the
    (B, T, N) temporaries (each a fresh allocation of megabytes per training step).
    """
    if kind not in SURROGATES:
        raise ValueError(f"unknown surrogate {kind!r} (choose exp, sigmoid, fast_sigmoid)")
    if overwrite and isinstance(v, np.ndarray) and v.dtype == np.float64:
        return _surrogate_inplace(v, kind, width)
    if kind == "exp":
        return np.exp(-np.abs(v) / width)
    if kind == "sigmoid":
        sg = 0.5 * (1.0 + np.tanh(0.5 * v / width))
        return sg * (1.0 - sg) / width
    return 1.0 / (1.0 + np.abs(v) / width) ** 2


def surrogate_at(u: np.ndarray, theta: np.ndarray, kind: str = "exp", width: float = 1.0, *,
                 rows: int = 64) -> np.ndarray:
    """``surrogate_grad(u - theta, kind, width)`` for ``u`` (..., N) and ``theta`` (N,), computed
    ``rows`` rows of N at a time into the result's own memory: per element the same operations
    in the same order (the same bits), but each block stays in the cache through the five
    passes and no (B, T, N) temporary is made (the compiled backward's surrogate)."""
    if kind not in SURROGATES:
        raise ValueError(f"unknown surrogate {kind!r} (choose exp, sigmoid, fast_sigmoid)")
    u = np.asarray(u, dtype=np.float64)
    out = np.empty(np.broadcast_shapes(u.shape, np.shape(theta)))
    if out.size == 0:
        return out
    n = out.shape[-1] if out.ndim else 1
    u2 = np.broadcast_to(u, out.shape).reshape(-1, n)
    o2 = out.reshape(-1, n)
    for r0 in range(0, o2.shape[0], max(1, int(rows))):
        blk = o2[r0:r0 + rows]
        np.subtract(u2[r0:r0 + rows], theta, out=blk)
        _surrogate_inplace(blk, kind, width)
    return out


def _surrogate_inplace(v: np.ndarray, kind: str, width: float) -> np.ndarray:
    """:func:`surrogate_grad` in ``v``'s memory, operation by operation as written there."""
    if kind == "exp":                       # exp(-|v| / width)
        np.abs(v, out=v)
        np.negative(v, out=v)
        np.divide(v, width, out=v)
        return np.exp(v, out=v)
    if kind == "sigmoid":                   # sg = 0.5 (1 + tanh(0.5 v / width)); sg (1 - sg) / width
        np.multiply(0.5, v, out=v)
        np.divide(v, width, out=v)
        np.tanh(v, out=v)
        np.add(1.0, v, out=v)
        np.multiply(0.5, v, out=v)
        one_minus = np.subtract(1.0, v)
        np.multiply(v, one_minus, out=v)
        return np.divide(v, width, out=v)
    np.abs(v, out=v)                        # 1 / (1 + |v| / width) ** 2
    np.divide(v, width, out=v)
    np.add(1.0, v, out=v)
    np.square(v, out=v)
    return np.divide(1.0, v, out=v)


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 8
    lr: float = 0.005
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    l2: float = 1e-5
    surrogate: str = "exp"
    surrogate_width: float = 1.0
    reset_grad: bool = False
    target_true: float = 180.0
    """Spikes of the labelled output neuron per 300 steps (scaled for other T)."""
    target_false: float = 30.0
    """Spikes of every other output neuron per 300 steps."""
    seed: int = 0
    hw_aware: bool = False
    hw: hwaware.HWAwareConfig | None = None
    """Hardware-aware settings (default: hwaware.chip_defaults() when hw_aware)."""
    eval_every: int = 1
    lr_schedule: str = "cosine"
    """"cosine": lr decays from ``lr`` to ``lr * lr_min_fraction`` over the epochs (per epoch);
    "constant": ``lr`` throughout."""
    lr_min_fraction: float = 0.05
    kernel: str = "auto"
    """"auto": the compiled (numba) forward/backward/Adam if available, else numpy;
    "numba": require it; "numpy": the plain reference.  Same spikes either way."""

    def lr_at(self, epoch: int) -> float:
        """Learning rate of (0-based) ``epoch``."""
        if self.lr_schedule == "constant" or self.epochs <= 1:
            return self.lr
        lo = self.lr * self.lr_min_fraction
        return lo + (self.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * epoch / (self.epochs - 1)))

    def __post_init__(self) -> None:
        if self.surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate {self.surrogate!r} (choose {', '.join(SURROGATES)})")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        if not (self.lr > 0 and self.l2 >= 0 and self.surrogate_width > 0):
            raise ValueError("lr and surrogate_width must be > 0, l2 >= 0")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r} (cosine, constant)")
        if not 0 < self.lr_min_fraction <= 1:
            raise ValueError("lr_min_fraction must be in (0, 1]")
        if self.kernel not in ("auto", "numba", "numpy"):
            raise ValueError(f"unknown kernel {self.kernel!r} (auto, numba, numpy)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hw"] = self.hw.to_dict() if self.hw is not None else None
        d["betas"] = list(self.betas)
        return d


# --------------------------------------------------------------------------------------
# per-layer forward / backward
# --------------------------------------------------------------------------------------
@dataclass
class LayerCache:
    """What the backward pass of one layer needs from its forward pass."""

    s_in: np.ndarray            # (B, T, n_in) float
    state: NeuronState          # x, p, u, s  (B, T, n_out)
    weight: np.ndarray          # effective weight used in the forward pass
    theta: np.ndarray           # (n_out,)
    tau: np.ndarray             # (n_out,)
    params: NeuronParams

    @property
    def s(self) -> np.ndarray:
        return self.state.s


def _per_neuron(v: np.ndarray | float | None, default: float, n: int) -> np.ndarray:
    if v is None:
        return np.full(n, float(default))
    return np.array(np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)))


def input_current(s_in: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted input ``z[b, t, :] = W @ s_in[b, t, :]`` (B, T, n_out), normalised units.

    For spike (0/1) inputs the sum runs over the active inputs in ascending index order,
    ``z = ((0 + W[:, i1]) + W[:, i2]) + ...`` (as the simulated chip's crossbar reference,
    ``sim_backend.physics.fastpath``): a defined order, so the compiled training kernel gives
    bit-identical ``z`` and spikes.  Other inputs use a BLAS product.
    """
    s_in = np.asarray(s_in, dtype=np.float64)
    b, t, n_in = s_in.shape
    flat = s_in.reshape(b * t, n_in)
    active = flat != 0
    if not np.array_equal(flat[active], np.ones(int(active.sum()))):
        return (flat @ weight.T).reshape(b, t, weight.shape[0])
    wt = np.ascontiguousarray(weight.T)
    z = np.zeros((b * t, weight.shape[0]))
    for i in np.flatnonzero(active.any(axis=0)):
        z[np.flatnonzero(active[:, i])] += wt[i]
    return z.reshape(b, t, weight.shape[0])


def layer_forward(s_in: np.ndarray, weight: np.ndarray, params: NeuronParams, *,
                  theta: np.ndarray | None = None, tau_steps: np.ndarray | None = None,
                  noise_sigma: float = 0.0, rng: np.random.Generator | None = None) -> LayerCache:
    """Forward of one layer keeping the state for :func:`layer_backward`.

    ``noise_sigma`` > 0 adds Gaussian noise (normalised units) to the weighted input of every
    neuron and step (hardware-aware training; the noise is treated as a constant in backward).
    """
    s_in = np.asarray(s_in, dtype=np.float64)
    z = input_current(s_in, weight)
    if noise_sigma > 0:
        z += noise_sigma * (rng if rng is not None else np.random.default_rng()).standard_normal(z.shape)
    _, state = srm_forward(z, params, theta=theta, tau_steps=tau_steps, keep_state=True)
    n = weight.shape[0]
    return LayerCache(s_in=s_in, state=state, weight=weight,
                      theta=_per_neuron(theta, params.theta, n),
                      tau=_per_neuron(tau_steps, params.tau_steps, n), params=params)


def neuron_backward(cache: LayerCache, grad_s: np.ndarray, *, surrogate: str = "exp",
                    width: float = 1.0, reset_grad: bool = False,
                    sg: np.ndarray | None = None) -> np.ndarray:
    """dL/dz (B, T, N) from dL/ds (B, T, N) through the SRM recursion (see module doc).

    ``sg`` overrides the surrogate derivative values (used with a smooth stand-in).
    """
    st, prm = cache.state, cache.params
    if sg is None:
        sg = surrogate_grad(st.u - cache.theta, surrogate, width)
    a = np.exp(-1.0 / cache.tau)
    inv_tau = 1.0 / cache.tau
    b_ref = math.exp(-1.0 / prm.tau_ref_steps)
    jump = prm.ref_scale * cache.theta
    grad_s = np.asarray(grad_s, dtype=np.float64)
    bsz, t_, n = grad_s.shape
    if not reset_grad:
        du = grad_s * sg
        if np.all(a == a[0]):
            # anti-causal first-order filter over time, all neurons at once
            dp = lfilter([1.0], [1.0, -a[0]], du[:, ::-1], axis=1)[:, ::-1]
        else:
            dp = np.empty_like(du)
            acc = np.zeros((bsz, n))
            for t in range(t_ - 1, -1, -1):
                acc = du[:, t] + a * acc
                dp[:, t] = acc
    else:
        dp = np.empty_like(grad_s)
        dr = np.zeros((bsz, n))
        acc = np.zeros((bsz, n))
        for t in range(t_ - 1, -1, -1):
            du = (grad_s[:, t] - jump * dr) * sg[:, t]
            dr = du + b_ref * dr
            acc = du + a * acc
            dp[:, t] = acc
    mask = (st.x > prm.clamp_low) & (st.x < prm.clamp_high)
    return dp * inv_tau * mask


def layer_backward(cache: LayerCache, grad_s: np.ndarray, *, need_input_grad: bool = True,
                   surrogate: str = "exp", width: float = 1.0, reset_grad: bool = False,
                   sg: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(dL/dW (n_out, n_in), dL/ds_in (B, T, n_in) or None)."""
    dz = neuron_backward(cache, grad_s, surrogate=surrogate, width=width, reset_grad=reset_grad, sg=sg)
    b, t, n = dz.shape
    n_in = cache.s_in.shape[-1]
    dz2 = dz.reshape(b * t, n)
    dw = dz2.T @ cache.s_in.reshape(b * t, n_in)
    g_in = (dz2 @ cache.weight).reshape(b, t, n_in) if need_input_grad else None
    return dw, g_in


# --------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------
def count_targets(labels: np.ndarray, n_classes: int, steps: int, target_true: float = 180.0,
                  target_false: float = 30.0) -> np.ndarray:
    """(B, K) target spike counts, scaled from 300 steps to ``steps``."""
    scale = steps / REFERENCE_STEPS
    y = np.full((len(labels), n_classes), target_false * scale)
    y[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = target_true * scale
    return y


def spike_count_loss(out_spikes: np.ndarray, labels: np.ndarray, *, target_true: float = 180.0,
                     target_false: float = 30.0, counts: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(loss per sample, dL/ds (B, T, K)); ``counts`` overrides the counts (measured spikes)."""
    s = np.asarray(out_spikes, dtype=np.float64)
    b, t, k = s.shape
    c = s.sum(axis=1) if counts is None else np.asarray(counts, dtype=np.float64)
    err = c - count_targets(labels, k, t, target_true, target_false)
    loss = float(np.sum(err ** 2) / (2.0 * t * b))
    grad = np.broadcast_to((err / (b * t))[:, None, :], s.shape)
    return loss, grad


# --------------------------------------------------------------------------------------
# whole network
# --------------------------------------------------------------------------------------
@dataclass
class Perturbation:
    """Hardware-aware realisation for one batch: effective weights and neuron mismatch."""

    weights: list[np.ndarray]
    theta: list[np.ndarray | None]
    tau: list[np.ndarray | None]
    noise: list[float] = field(default_factory=list)
    """Per layer: sigma of per-step neuron-input noise (0 = none)."""
    rng: np.random.Generator | None = None


def ideal(net: Network) -> Perturbation:
    n = len(net.layers)
    return Perturbation([layer.weight for layer in net.layers], [None] * n, [None] * n, [0.0] * n)


def sample_perturbation(net: Network, cfg: hwaware.HWAwareConfig, rng: np.random.Generator) -> Perturbation:
    p = ideal(net)
    p.rng = rng
    for i, layer in enumerate(net.layers):
        if cfg.layers == "chip" and i != net.chip_layer:
            continue
        p.weights[i] = hwaware.perturb(layer.weight, cfg, rng)
        p.theta[i], p.tau[i] = hwaware.mismatch(layer.n_out, layer.neuron.theta,
                                                layer.neuron.tau_steps, cfg, rng)
        p.noise[i] = cfg.neuron_noise
    return p


def _kernels(kernel: str) -> dict[str, Any] | None:
    """Compiled kernels for ``kernel`` ("auto": if available, "numba": required, "numpy": none)."""
    if kernel == "numpy":
        return None
    if kernel not in ("auto", "numba"):
        raise ValueError(f"unknown kernel {kernel!r} (choose auto, numba, numpy)")
    k = train_kernel.kernels()
    if k is None and kernel == "numba":
        raise RuntimeError(f"the numba training kernel is unavailable ({train_kernel.status()['reason']})")
    return k


def network_forward(net: Network, spikes: np.ndarray, pert: Perturbation | None = None, *,
                    kernel: str = "numpy") -> list[LayerCache | train_kernel.FastCache]:
    """Forward of every layer, keeping what :func:`network_backward` needs.

    ``kernel``: "numpy" (the reference), "numba" (compiled, bit-identical spikes) or "auto"
    (numba if available).  The noise of hardware-aware training is drawn from ``pert.rng`` in
    the same order either way.
    """
    pert = pert or ideal(net)
    k = _kernels(kernel)
    caches: list[LayerCache | train_kernel.FastCache] = []
    x = np.asarray(spikes)
    if k is None or x.dtype != np.bool_:  # the compiled path reads bool spikes as they are
        x = np.asarray(x, dtype=np.float64)
    for i, layer in enumerate(net.layers):
        noise = pert.noise[i] if pert.noise else 0.0
        c = None
        if k is not None:
            w = pert.weights[i]
            draws = None
            if noise > 0:
                rng = pert.rng if pert.rng is not None else np.random.default_rng()
                draws = noise * rng.standard_normal((x.shape[0], x.shape[1], w.shape[0]))
            c = train_kernel.layer_forward(k, x, w, layer.neuron,
                                           _per_neuron(pert.theta[i], layer.neuron.theta, w.shape[0]),
                                           _per_neuron(pert.tau[i], layer.neuron.tau_steps, w.shape[0]),
                                           draws)
            if c is None:  # non-binary input: the reference (same draws)
                c = _layer_forward_with(x, w, layer.neuron, pert.theta[i], pert.tau[i], draws)
        else:
            c = layer_forward(x, pert.weights[i], layer.neuron, theta=pert.theta[i], tau_steps=pert.tau[i],
                              noise_sigma=noise, rng=pert.rng if noise else None)
        caches.append(c)
        x = c.s
    return caches


def _layer_forward_with(s_in, weight, params, theta, tau, draws) -> LayerCache:
    z = input_current(s_in, weight)
    if draws is not None:
        z += draws
    _, state = srm_forward(z, params, theta=theta, tau_steps=tau, keep_state=True)
    n = weight.shape[0]
    return LayerCache(s_in=np.asarray(s_in, dtype=np.float64), state=state, weight=weight,
                      theta=_per_neuron(theta, params.theta, n),
                      tau=_per_neuron(tau, params.tau_steps, n), params=params)


def network_backward(caches: list[LayerCache | train_kernel.FastCache], grad_out: np.ndarray, *,
                     surrogate: str = "exp", width: float = 1.0, reset_grad: bool = False) -> list[np.ndarray]:
    """Weight gradients of every layer given dL/d(output spikes).

    Layers whose forward ran compiled (:class:`train_kernel.FastCache`) run compiled backward.
    """
    grads: list[np.ndarray] = [None] * len(caches)  # type: ignore[list-item]
    g = grad_out
    for i in range(len(caches) - 1, -1, -1):
        c = caches[i]
        if isinstance(c, train_kernel.FastCache):
            sg = surrogate_at(c.u, c.theta, surrogate, width)
            grads[i], g = train_kernel.layer_backward(train_kernel.kernels(), c, g, sg, need_input_grad=i > 0,
                                                      reset_grad=reset_grad)
        else:
            grads[i], g = layer_backward(c, g, need_input_grad=i > 0, surrogate=surrogate,
                                         width=width, reset_grad=reset_grad)
    return grads


def layer_gradient(net: Network, layer_index: int, in_spikes: np.ndarray, labels: np.ndarray, *,
                   measured_out: np.ndarray | None = None, cfg: TrainConfig | None = None,
                   weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Gradient of the spike-count loss w.r.t. the weights of the *output* layer ``layer_index``.

    For chip-in-the-loop fine-tuning: ``in_spikes`` are that layer's input spikes (from the
    software layers before it), ``measured_out`` the chip's output spikes (B, T, K).  The loss
    and its gradient use the measured counts; the surrogate uses the model's membrane
    trajectory computed with ``weight`` (default: the layer's weights).  Returns (dW, loss)
    where dW excludes the L2 term.
    """
    cfg = cfg or TrainConfig()
    layer = net.layers[layer_index]
    if layer_index % len(net.layers) != len(net.layers) - 1:
        raise ValueError("layer_gradient supports the output layer only")
    cache = layer_forward(in_spikes, layer.weight if weight is None else weight, layer.neuron)
    out = cache.s if measured_out is None else np.asarray(measured_out, dtype=np.float64)
    if out.shape != cache.s.shape:
        raise ValueError(f"measured output spikes have shape {out.shape}, expected {cache.s.shape}")
    loss, g = spike_count_loss(out, labels, target_true=cfg.target_true, target_false=cfg.target_false)
    dw, _ = layer_backward(cache, g, need_input_grad=False, surrogate=cfg.surrogate,
                           width=cfg.surrogate_width, reset_grad=cfg.reset_grad)
    return dw, loss


class Adam:
    """Adam over a list of arrays (in place), with L2 and per-array clamps."""

    def __init__(self, params: list[np.ndarray], lr: float = 0.005, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, l2: float = 0.0, *, kernel: str = "numpy") -> None:
        self.lr, self.betas, self.eps, self.l2 = lr, betas, eps, l2
        self.kernel = kernel
        """"numpy" (reference) or "numba"/"auto": one fused compiled pass, the same operations."""
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.step_count = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], clamps: list[float]) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        c1 = 1.0 - b1 ** self.step_count
        c2 = 1.0 - b2 ** self.step_count
        k = _kernels(self.kernel)
        for p, g, m, v, c in zip(params, grads, self.m, self.v, clamps):
            if k is not None and p.ndim == 2 and p.dtype == m.dtype == v.dtype == np.float64:
                k["adam"](p, np.asarray(g, dtype=np.float64), m, v, float(self.l2), float(b1),
                          float(b2), float(c1), float(c2), float(self.lr), float(self.eps), float(c))
                continue
            if self.l2:
                g = g + self.l2 * p
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
            np.clip(p, -c, c, out=p)

    def state_dict(self) -> dict[str, Any]:
        return {"m": self.m, "v": self.v, "step_count": self.step_count}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.m = [np.array(a, dtype=np.float64) for a in d["m"]]
        self.v = [np.array(a, dtype=np.float64) for a in d["v"]]
        self.step_count = int(d["step_count"])


# --------------------------------------------------------------------------------------
# training loop
# --------------------------------------------------------------------------------------
BatchFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""(training indices, rng) -> input spikes (len, T, n_in): augmentation hook."""


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


def evaluate(net: Network, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> float:
    """Software accuracy (ideal weights, shared neuron model)."""
    if len(y) == 0:
        return float("nan")
    return float(np.mean(net.predict(x, batch_size=batch_size) == np.asarray(y)))


def train(net: Network, x_train: np.ndarray, y_train: np.ndarray, cfg: TrainConfig, *,
          x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
          batch_fn: BatchFn | None = None, progress: bool = True,
          checkpoint: str | Path | None = None, start_epoch: int = 0,
          optimizer: Adam | None = None, rng: np.random.Generator | None = None,
          log: Callable[[dict[str, float]], None] | None = None) -> History:
    """Train ``net`` in place; returns the per-epoch history.

    ``x_train`` are the precomputed (un-augmented) input spikes; with ``batch_fn`` the batch
    inputs come from ``batch_fn(indices, rng)`` instead (augmentation).  With ``checkpoint``
    the model (with optimiser and RNG state) is saved after every epoch.
    """
    from bench.network.modelfile import save_checkpoint  # local: avoid import cycle

    y_train = np.asarray(y_train, dtype=np.int64)
    n = len(y_train)
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    hw_cfg = (cfg.hw or hwaware.chip_defaults()) if cfg.hw_aware else None
    params = [layer.weight for layer in net.layers]
    clamps = [layer.clamp for layer in net.layers]
    opt = optimizer or Adam(params, cfg.lr, cfg.betas, cfg.eps, cfg.l2, kernel=cfg.kernel)
    opt.kernel = cfg.kernel
    hist = History()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        opt.lr = cfg.lr_at(epoch)
        order = rng.permutation(n)
        batches = [order[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr,
                   leave=False, disable=not progress, unit="batch") if tqdm else batches
        tot_loss = tot_correct = tot_seen = 0.0
        for idx in bar:
            xb = batch_fn(idx, rng) if batch_fn is not None else x_train[idx]
            yb = y_train[idx]
            pert = sample_perturbation(net, hw_cfg, rng) if hw_cfg is not None else None
            caches = network_forward(net, xb, pert, kernel=cfg.kernel)
            out = caches[-1].s
            loss, g = spike_count_loss(out, yb, target_true=cfg.target_true, target_false=cfg.target_false)
            grads = network_backward(caches, g, surrogate=cfg.surrogate, width=cfg.surrogate_width,
                                     reset_grad=cfg.reset_grad)
            opt.step(params, grads, clamps)
            tot_loss += loss * len(idx)
            tot_correct += float(np.sum(predict(out) == yb))
            tot_seen += len(idx)
            if progress and tqdm:
                bar.set_postfix(loss=f"{tot_loss / tot_seen:.3f}", acc=f"{tot_correct / tot_seen:.3f}")
        if progress and tqdm:
            bar.close()
        rec: dict[str, float] = {"epoch": epoch + 1, "lr": opt.lr, "loss": tot_loss / max(tot_seen, 1),
                                 "train_accuracy_running": tot_correct / max(tot_seen, 1),
                                 "seconds": time.perf_counter() - t0}
        if x_test is not None and y_test is not None and len(y_test) and (
                (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            rec["test_accuracy"] = evaluate(net, x_test, y_test)
        hist.epochs.append(rec)
        if progress:
            msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())
            print(f"[train] {msg}", file=sys.stderr)
        if log:
            log(rec)
        if checkpoint is not None:
            net.metadata.setdefault("training", {})
            net.metadata["training"].update({"config": cfg.to_dict(), "history": hist.epochs,
                                             "epochs_done": epoch + 1})
            save_checkpoint(net, checkpoint, opt, rng, epoch + 1)
    return hist


# --------------------------------------------------------------------------------------
# smooth stand-in (tests): differentiable forward with the same recursion
# --------------------------------------------------------------------------------------
def smooth_forward(z: np.ndarray, params: NeuronParams = NeuronParams(), width: float = 0.5,
                   ) -> tuple[np.ndarray, NeuronState]:
    """The SRM recursion with ``s = sigmoid((u - theta)/width)`` instead of the step.

    Its exact gradient equals :func:`neuron_backward` with ``surrogate="sigmoid"`` and
    ``reset_grad=True``; the finite-difference tests use it.
    """
    z = np.asarray(z, dtype=np.float64)
    b, t_, n = z.shape
    a = math.exp(-1.0 / params.tau_steps)
    bref = math.exp(-1.0 / params.tau_ref_steps)
    x = np.clip(z, params.clamp_low, params.clamp_high)
    p = np.zeros((b, n))
    r = np.zeros((b, n))
    ps, us, ss = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    for t in range(t_):
        p = a * p + x[:, t] / params.tau_steps
        u = p + r
        s = 0.5 * (1.0 + np.tanh(0.5 * (u - params.theta) / width))
        r = bref * r - params.ref_scale * params.theta * s
        ps[:, t], us[:, t], ss[:, t] = p, u, s
    th = np.full(n, params.theta)
    return ss, NeuronState(x=x, p=ps, u=us, s=ss, theta=th)


# --------------------------------------------------------------------------------------
# data-dependent initialisation
# --------------------------------------------------------------------------------------
def layer_spikes(s_in: np.ndarray, weight: np.ndarray, params: NeuronParams, *,
                 kernel: str = "auto") -> np.ndarray:
    """Output spikes (B, T, n_out) of one ideal layer: the training forward without its state
    (compiled if ``kernel`` allows; the same spikes as the numpy reference)."""
    k = _kernels(kernel)
    if k is not None:
        n = weight.shape[0]
        c = train_kernel.layer_forward(k, s_in, weight, params, _per_neuron(None, params.theta, n),
                                       _per_neuron(None, params.tau_steps, n), None)
        if c is not None:
            return c.s
    return srm_forward(input_current(s_in, weight), params)


def calibrate_init(net: Network, x: np.ndarray, target_rate: float = 0.05, *,
                   iterations: int = 12, kernel: str = "auto") -> list[float]:
    """Rescale each layer's weights (in order) so its mean firing probability per step on
    ``x`` is about ``target_rate`` (bisection on a log scale; clamps respected).

    Returns the scale applied per layer.  Makes training start from a network in which
    every layer spikes, independent of the input statistics.
    """
    scales = []
    s = np.asarray(x, dtype=np.float64)
    for layer in net.layers:
        w0 = layer.weight.copy()
        lo, hi = -3.0, 3.0  # log2 scale bounds
        best = 0.0
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            w = np.clip(w0 * 2.0 ** mid, -layer.clamp, layer.clamp)
            rate = float(layer_spikes(s, w, layer.neuron, kernel=kernel).mean())
            best = mid
            if rate < target_rate:
                lo = mid
            else:
                hi = mid
        layer.weight = np.clip(w0 * 2.0 ** best, -layer.clamp, layer.clamp)
        scales.append(2.0 ** best)
        s = layer_spikes(s, layer.weight, layer.neuron, kernel=kernel)
    return scales
