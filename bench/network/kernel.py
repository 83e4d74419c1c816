"""Inference of :class:`bench.network.model.Dense` layers: the reference and the fast path.

Definition (float64, the precision both paths declare).  For binary input spikes
``s_in[b, t, i]`` in {0, 1} a layer computes, for every sample ``b``, step ``t`` and neuron ``j``::

    z[b, t, j] = (((0.0 + w[j, i_1]) + w[j, i_2]) + ...) + w[j, i_k]

where ``i_1 < i_2 < ... < i_k`` are the inputs active at ``(b, t)`` (summation in ascending
input order, one rounding per addition), then the shared SRM neuron
(:func:`sim_backend.physics.neuron.srm_forward`) turns ``z`` into spikes.  Inactive inputs
contribute nothing: adding ``0.0 * w`` would leave every partial sum unchanged anyway (up to
the sign of a zero, which no comparison sees), so this is also the dense per-step sum taken in
ascending order - but not what an arbitrary BLAS matmul gives (blocked, FMA-contracted).

- :func:`reference_layer`: the definition in plain numpy (the k-th active input of every
  sample-step gathered and added, k = 1, 2, ...) followed by ``srm_forward``.  Always
  available; the fallback.
- :func:`fast_layer` / :class:`FastNetwork`: the same arithmetic in the same order, compiled
  with numba (``bench.network._infer_jit``): event lists of the active inputs (zeros are never
  multiplied or added), neurons in tiles of 64 with a contiguous, SIMD-vectorised inner loop
  over neurons, all samples of a batch per tile so the tile's weights stay in cache.

The fast path is used when numba imports and ``SNNBENCH_NO_JIT`` is not set (or
:func:`set_jit` forces it off); :func:`jit_status` reports which path is in use and why.
Same spikes either way (tests/test_network_kernel.py).

The PSP filter is linear, but the input clamp ``clip(z, 0, 5)`` sits between the synaptic sum
and the filter, so filtering the input spikes once (instead of per neuron) would change the
spikes; it is not done (decision 0017).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sim_backend.physics.neuron import NeuronParams, srm_forward

_JIT: Any = None
"""The compiled module, False if unavailable, None if not tried yet."""
_JIT_REASON = ""
_FORCED: bool | None = None


def set_jit(enabled: bool | None) -> None:
    """Force the compiled path on (if available) or off; ``None`` restores the default."""
    global _FORCED
    _FORCED = enabled


def _jit():
    global _JIT, _JIT_REASON
    if _FORCED is False:
        return None
    if _JIT is None:
        if os.environ.get("SNNBENCH_NO_JIT"):
            _JIT, _JIT_REASON = False, "SNNBENCH_NO_JIT is set"
        else:
            try:
                from bench.network import _infer_jit
                _JIT, _JIT_REASON = _infer_jit, "numba"
            except Exception as e:  # numba missing or broken -> the numpy reference
                _JIT, _JIT_REASON = False, f"numba unavailable ({type(e).__name__}: {e})"
    return _JIT or None


def jit_status() -> dict[str, Any]:
    """Which inference path is in use: ``{"path": "numba"|"numpy", "reason": ...}``."""
    mod = _jit()
    if mod is not None:
        import numba
        return {"path": "numba", "numba": numba.__version__, "reason": "compiled kernel loaded"}
    return {"path": "numpy", "reason": "forced off by set_jit(False)" if _FORCED is False else _JIT_REASON}


def have_jit() -> bool:
    return _jit() is not None


# --- the reference ---------------------------------------------------------------------------
def as_binary(spikes: np.ndarray) -> np.ndarray | None:
    """``spikes`` as bool if every value is 0 or 1 (bool, int or float), else None."""
    x = np.asarray(spikes)
    if x.dtype == bool:
        return x
    b = x != 0
    if x.size and not np.all(x[b] == 1):
        return None
    return b


def synaptic_input(x: np.ndarray, w: np.ndarray, *, chunk: int = 128) -> np.ndarray:
    """The definition's ``z`` (B, T, n_out) float64 for bool input x (B, T, n_in), w (n_out, n_in).

    Plain numpy: per chunk of ``chunk`` sample-steps, the k-th active input of every row
    (ascending; rows with fewer active inputs point at an appended zero row, and adding +0.0
    changes no sum) is gathered and added, k = 1, 2, ... - so each ``z[b, t, j]`` receives its
    terms one at a time in ascending input order.
    """
    w = np.asarray(w, dtype=np.float64)
    n_out, n_in = w.shape
    wt = np.zeros((n_in + 1, n_out))
    wt[:n_in] = w.T
    b_, t_, _ = x.shape
    rows = x.reshape(b_ * t_, n_in)
    z = np.zeros((b_ * t_, n_out))
    for r0 in range(0, rows.shape[0], chunk):
        r_idx, c_idx = np.nonzero(rows[r0:r0 + chunk])     # row-major: ascending inputs per row
        if c_idx.size == 0:
            continue
        n_rows = min(chunk, rows.shape[0] - r0)
        cnt = np.bincount(r_idx, minlength=n_rows)
        first = np.cumsum(cnt) - cnt
        idx = np.full((n_rows, int(cnt.max())), n_in)
        idx[r_idx, np.arange(c_idx.size) - first[r_idx]] = c_idx
        zc = z[r0:r0 + n_rows]
        for k in range(idx.shape[1]):
            zc += wt[idx[:, k]]
    return z.reshape(b_, t_, n_out)


def reference_layer(x: np.ndarray, w: np.ndarray, params: NeuronParams = NeuronParams(), *,
                    theta: np.ndarray | float | None = None,
                    tau_steps: np.ndarray | float | None = None) -> np.ndarray:
    """Spikes bool (B, T, n_out) of a layer on bool inputs (B, T, n_in): the plain-numpy definition."""
    z = synaptic_input(x, w)
    return srm_forward(z, params, theta=theta, tau_steps=tau_steps).astype(bool)


# --- the fast path -----------------------------------------------------------------------------
@dataclass
class PreparedLayer:
    """A layer's weights and neuron constants in the compiled kernel's layout (a snapshot)."""

    n_in: int
    n_out: int
    wb: np.ndarray
    th: np.ndarray
    a: np.ndarray
    inv_tau: np.ndarray
    jump: np.ndarray
    bref: float
    clo: float
    chi: float

    @classmethod
    def build(cls, w: np.ndarray, params: NeuronParams = NeuronParams(), *,
              theta: np.ndarray | float | None = None,
              tau_steps: np.ndarray | float | None = None, block: int = 64) -> "PreparedLayer":
        w = np.asarray(w, dtype=np.float64)
        n_out, n_in = w.shape
        nblk = max(1, -(-n_out // block))
        npad = nblk * block
        wt = np.zeros((n_in, npad))
        wt[:, :n_out] = w.T
        wb = aligned_empty((nblk, n_in, block))
        wb[...] = wt.reshape(n_in, nblk, block).transpose(1, 0, 2)
        # the neuron constants exactly as srm_forward derives them
        th = np.full(npad, np.inf)
        th[:n_out] = np.broadcast_to(np.asarray(params.theta if theta is None else theta, np.float64), (n_out,))
        tau = np.array(np.broadcast_to(np.asarray(params.tau_steps if tau_steps is None else tau_steps,
                                                  np.float64), (n_out,)))
        a = np.zeros(npad)
        inv_tau = np.zeros(npad)
        jump = np.zeros(npad)
        a[:n_out] = np.exp(-1.0 / tau)
        inv_tau[:n_out] = 1.0 / tau
        jump[:n_out] = params.ref_scale * th[:n_out]
        return cls(n_in, n_out, wb, th, a, inv_tau, jump, float(np.exp(-1.0 / params.tau_ref_steps)),
                   float(params.clamp_low), float(params.clamp_high))

    def run(self, x_u8: np.ndarray) -> np.ndarray:
        """uint8 0/1 (B, T, n_in) C-contiguous -> uint8 0/1 (B, T, n_out) (compiled path only)."""
        mod = _jit()
        assert mod is not None
        x_u8 = _as_u8(x_u8, self.n_in)
        b_, t_, n_ = x_u8.shape
        offs, idx = mod.events(x_u8.reshape(b_ * t_, n_).view(np.uint64))
        out = np.empty((b_, t_, self.n_out), np.uint8)
        mod.layer(offs, idx, self.wb, self.th, self.a, self.inv_tau, self.jump, self.bref,
                  self.clo, self.chi, b_, t_, self.n_out, out, aligned_empty((self.wb.shape[2],)))
        return out


def aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised C-contiguous float64 array starting on a 64-byte boundary."""
    n = int(np.prod(shape))
    buf = np.empty(n + 8)
    off = (-buf.ctypes.data % 64) // 8
    return buf[off:off + n].reshape(shape)


def _as_u8(x: np.ndarray, n_in: int) -> np.ndarray:
    """Binary spikes (B, T, n_in) as C-contiguous uint8 0/1, zero-padded to a multiple of 8 inputs."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] not in (n_in, n_in + (-n_in) % 8):
        raise ValueError(f"expected spikes of shape (B, T, {n_in}), got {x.shape}")
    if x.dtype == bool or x.dtype == np.uint8:
        x = x.view(np.uint8)
    else:
        x = (x != 0).view(np.uint8)
    pad = (-x.shape[2]) % 8
    if pad:  # the event scan reads whole 64-bit words of inputs; padding inputs never spike
        x = np.concatenate([x, np.zeros(x.shape[:2] + (pad,), np.uint8)], axis=2)
    return np.ascontiguousarray(x)


def fast_layer(x: np.ndarray, w: np.ndarray, params: NeuronParams = NeuronParams(), *,
               theta: np.ndarray | float | None = None,
               tau_steps: np.ndarray | float | None = None) -> np.ndarray:
    """Same as :func:`reference_layer` (same spikes), compiled when available."""
    w = np.asarray(w, dtype=np.float64)
    if _jit() is None:
        return reference_layer(np.asarray(x) != 0, w, params, theta=theta, tau_steps=tau_steps)
    lay = PreparedLayer.build(w, params, theta=theta, tau_steps=tau_steps)
    return lay.run(x).view(bool)


class FastNetwork:
    """A snapshot of a stack of layers prepared once for many forward calls (e.g. batch 1).

    ``layers``: objects with ``weight`` (n_out, n_in) and ``neuron`` (NeuronParams), such as
    :class:`bench.network.model.Dense`.  Later changes of their weights are not seen.
    """

    def __init__(self, layers: Sequence[Any]):
        self.layers = list(layers)
        self._prep = [PreparedLayer.build(layer.weight, layer.neuron) for layer in self.layers] \
            if _jit() is not None else None

    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Binary spikes (B, T, n_in) -> bool spikes of every layer [(B, T, n_1), ...]."""
        x = np.asarray(spikes)
        outs: list[np.ndarray] = []
        if self._prep is None or _jit() is None:
            h = x != 0
            for layer in self.layers:
                h = reference_layer(h, layer.weight, layer.neuron)
                outs.append(h)
            return outs
        h = _as_u8(x, self._prep[0].n_in)
        for lay in self._prep:
            h = lay.run(h)
            outs.append(h.view(bool))
        return outs
