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
  multiplied or added), neurons in tiles of 128 with a contiguous, SIMD-vectorised inner loop
  over neurons, all samples of a batch per tile so the tile's weights stay in cache.

The fast path is used when numba imports, unless the project's kernel switch says otherwise
(``SNNBENCH_KERNEL=numpy``, :mod:`sim_backend.physics.jit`, decision 0015) or :func:`set_jit`
forces it off; :func:`jit_status` reports which path is in use and why.
Same spikes either way (tests/test_network_kernel.py).

A float32 variant (``dtype=np.float32``) has its own definition: the weights rounded to
float32, every addition and neuron operation in float32 (:func:`srm_float32`); it is exact
against its own numpy reference, and its disagreement with float64 is measured by
benchmarks/bench_network.py.

The PSP filter is linear, but the input clamp ``clip(z, 0, 5)`` sits between the synaptic sum
and the filter, so filtering the input spikes once (instead of per neuron) would change the
spikes; it is not done (decision 0017).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sim_backend.physics.neuron import NeuronParams, srm_forward

_FORCED: bool | None = None


def set_jit(enabled: bool | None) -> None:
    """Force the compiled path off (``False``) for this process, or back to the project's
    switch (``None``: ``SNNBENCH_KERNEL`` through :mod:`sim_backend.physics.jit`)."""
    global _FORCED
    _FORCED = enabled


def _jit():
    """The compiled kernel module, or None when the numpy definition is to run: ``set_jit(False)``,
    ``SNNBENCH_KERNEL=numpy`` or numba missing (``SNNBENCH_KERNEL=numba`` without numba raises
    ``KernelUnavailable``, a configuration error)."""
    if _FORCED is False:
        return None
    from sim_backend.physics import jit

    if not jit.enabled():
        return None
    from bench.network import _infer_jit
    return _infer_jit


def jit_status() -> dict[str, Any]:
    """Which inference path is in use: ``{"path": "numba"|"numpy", ...}`` with the shared
    kernel report (:func:`sim_backend.physics.jit.report`) and, for numpy, the reason."""
    from sim_backend.physics import jit

    if _FORCED is False:
        return {"path": "numpy", "reason": "forced off by bench.network.kernel.set_jit(False)"}
    return jit.report()


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


def synaptic_input(x: np.ndarray, w: np.ndarray, *, chunk: int = 128, dtype=np.float64) -> np.ndarray:
    """The definition's ``z`` (B, T, n_out) for bool input x (B, T, n_in), w (n_out, n_in), in
    ``dtype`` (float32: the weights rounded to float32, every addition in float32).

    Plain numpy: per chunk of ``chunk`` sample-steps, the k-th active input of every row
    (ascending; rows with fewer active inputs point at an appended zero row, and adding +0.0
    changes no sum) is gathered and added, k = 1, 2, ... - so each ``z[b, t, j]`` receives its
    terms one at a time in ascending input order.
    """
    w = np.asarray(w, dtype=np.float64)
    n_out, n_in = w.shape
    wt = np.zeros((n_in + 1, n_out), dtype)
    wt[:n_in] = w.T
    b_, t_, _ = x.shape
    rows = x.reshape(b_ * t_, n_in)
    z = np.zeros((b_ * t_, n_out), dtype)
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


def neuron_constants(params: NeuronParams, n: int, theta=None, tau_steps=None, dtype=np.float64):
    """Per-neuron (theta, a, 1/tau, jump) arrays and (bref, clamp_low, clamp_high) scalars in
    ``dtype``: derived in float64 exactly as ``srm_forward`` does, then rounded to ``dtype``."""
    th = np.array(np.broadcast_to(np.asarray(params.theta if theta is None else theta, np.float64), (n,)))
    tau = np.array(np.broadcast_to(np.asarray(params.tau_steps if tau_steps is None else tau_steps,
                                              np.float64), (n,)))
    a = np.exp(-1.0 / tau)
    inv_tau = 1.0 / tau
    jump = params.ref_scale * th
    f = np.dtype(dtype).type
    return ([v.astype(dtype) for v in (th, a, inv_tau, jump)],
            (f(np.exp(-1.0 / params.tau_ref_steps)), f(params.clamp_low), f(params.clamp_high)))


def srm_float32(z: np.ndarray, params: NeuronParams = NeuronParams(), *, theta=None,
                tau_steps=None) -> np.ndarray:
    """The SRM neuron of ``srm_forward`` with every operation in float32 (the float32 path's
    reference): z (B, T, N) float32 -> spikes bool."""
    z = np.asarray(z, dtype=np.float32)
    b_, t_, n_ = z.shape
    (th, a, inv_tau, jump), (bref, clo, chi) = neuron_constants(params, n_, theta, tau_steps, np.float32)
    xs = np.clip(z, clo, chi) * inv_tau
    p = np.zeros((b_, n_), np.float32)
    r = np.zeros((b_, n_), np.float32)
    s = np.zeros((b_, t_, n_), bool)
    for t in range(t_):
        p = a * p + xs[:, t]
        st = p + r >= th
        s[:, t] = st
        r = bref * r - jump * st
    return s


def reference_layer(x: np.ndarray, w: np.ndarray, params: NeuronParams = NeuronParams(), *,
                    theta: np.ndarray | float | None = None,
                    tau_steps: np.ndarray | float | None = None, dtype=np.float64) -> np.ndarray:
    """Spikes bool (B, T, n_out) of a layer on bool inputs (B, T, n_in): the plain-numpy definition
    (float64: ``srm_forward``, the shared neuron; float32: :func:`srm_float32`)."""
    z = synaptic_input(x, w, dtype=dtype)
    if np.dtype(dtype) == np.float32:
        return srm_float32(z, params, theta=theta, tau_steps=tau_steps)
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
              tau_steps: np.ndarray | float | None = None, block: int = 128,
              dtype=np.float64) -> "PreparedLayer":
        w = np.asarray(w, dtype=np.float64)
        n_out, n_in = w.shape
        nblk = max(1, -(-n_out // block))
        npad = nblk * block
        wb = aligned_empty((nblk, n_in, block), dtype)
        for kb in range(nblk):               # one transposing copy per tile; padding neurons get 0
            j0, j1 = kb * block, min(n_out, (kb + 1) * block)
            wb[kb, :, :j1 - j0] = w[j0:j1].T
            wb[kb, :, j1 - j0:] = 0.0
        (th0, a0, it0, j0), (bref, clo, chi) = neuron_constants(params, n_out, theta, tau_steps, dtype)
        th = np.full(npad, np.inf, dtype)          # padding neurons never spike
        a = np.zeros(npad, dtype)
        inv_tau = np.zeros(npad, dtype)
        jump = np.zeros(npad, dtype)
        th[:n_out], a[:n_out], inv_tau[:n_out], jump[:n_out] = th0, a0, it0, j0
        return cls(n_in, n_out, wb, th, a, inv_tau, jump, bref, clo, chi)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Binary spikes (B, T, n_in) (bool, or any dtype: non-zero = spike) -> uint8 0/1
        (B, T, n_out) (compiled path only)."""
        mod = _jit()
        assert mod is not None
        if self.wb.shape[2] != mod.BLOCK:
            raise ValueError(f"prepared with {self.wb.shape[2]}-neuron tiles, the kernel uses {mod.BLOCK}")
        x_u8 = _as_u8(x, self.n_in)
        b_, t_, n_ = x_u8.shape
        offs, idx = mod.events(x_u8.reshape(b_ * t_, n_).view(np.uint64))
        out = np.empty((b_, t_, self.n_out), np.uint8)
        mod.layer(offs, idx, self.wb, self.th, self.a, self.inv_tau, self.jump, self.bref,
                  self.clo, self.chi, b_, t_, self.n_out, out, aligned_empty((self.wb.shape[2],), self.wb.dtype))
        return out


def aligned_empty(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array starting on a 64-byte boundary."""
    n = int(np.prod(shape))
    size = np.dtype(dtype).itemsize
    buf = np.empty(n + 64 // size, dtype)
    off = (-buf.ctypes.data % 64) // size
    return buf[off:off + n].reshape(shape)


def _as_u8(x: np.ndarray, n_in: int) -> np.ndarray:
    """Binary spikes (B, T, n_in) as C-contiguous uint8 0/1, zero-padded to a multiple of 8 inputs."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] not in (n_in, n_in + (-n_in) % 8):
        raise ValueError(f"expected spikes of shape (B, T, {n_in}), got {x.shape}")
    # only bool is taken as is: the event scan counts set bytes by their value, so any other
    # dtype (uint8 included) is normalised to 0/1 first
    x = x.view(np.uint8) if x.dtype == bool else (x != 0).view(np.uint8)
    pad = (-x.shape[2]) % 8
    if pad:  # the event scan reads whole 64-bit words of inputs; padding inputs never spike
        x = np.concatenate([x, np.zeros(x.shape[:2] + (pad,), np.uint8)], axis=2)
    return np.ascontiguousarray(x)


def fast_layer(x: np.ndarray, w: np.ndarray, params: NeuronParams = NeuronParams(), *,
               theta: np.ndarray | float | None = None,
               tau_steps: np.ndarray | float | None = None, dtype=np.float64) -> np.ndarray:
    """Same as :func:`reference_layer` (same spikes, same ``dtype``), compiled when available."""
    w = np.asarray(w, dtype=np.float64)
    if _jit() is None:
        return reference_layer(np.asarray(x) != 0, w, params, theta=theta, tau_steps=tau_steps, dtype=dtype)
    lay = PreparedLayer.build(w, params, theta=theta, tau_steps=tau_steps, dtype=dtype)
    return lay.run(x).view(bool)


class FastNetwork:
    """A snapshot of a stack of layers prepared once for many forward calls (e.g. batch 1).

    ``layers``: objects with ``weight`` (n_out, n_in) and ``neuron`` (NeuronParams), such as
    :class:`bench.network.model.Dense`.  Later changes of their weights are not seen.
    ``dtype``: float64 (the network's definition) or float32 (its own definition: weights
    rounded to float32, all arithmetic in float32; see :func:`reference_layer`).
    """

    def __init__(self, layers: Sequence[Any], dtype=np.float64):
        self.layers = list(layers)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype}")
        self._weights = [np.array(layer.weight, dtype=np.float64) for layer in self.layers]
        self._neurons = [layer.neuron for layer in self.layers]
        self._prep = [PreparedLayer.build(w, n, dtype=self.dtype)
                      for w, n in zip(self._weights, self._neurons)] if _jit() is not None else None

    def matches(self, layers: Sequence[Any]) -> bool:
        """True if ``layers`` still have exactly the weights and neurons this snapshot was made of
        (an exact comparison: in-place changes of a weight array are seen)."""
        return (len(layers) == len(self._weights)
                and all(layer.neuron == n and layer.weight.shape == w.shape and np.array_equal(layer.weight, w)
                        for layer, w, n in zip(layers, self._weights, self._neurons)))

    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Binary spikes (B, T, n_in) -> bool spikes of every layer [(B, T, n_1), ...]."""
        x = np.asarray(spikes)
        outs: list[np.ndarray] = []
        if self._prep is None or _jit() is None:
            h = x != 0
            for w, n in zip(self._weights, self._neurons):
                h = reference_layer(h, w, n, dtype=self.dtype)
                outs.append(h)
            return outs
        h = x
        for lay in self._prep:
            h = lay.run(h).view(bool)
            outs.append(h)
        return outs
