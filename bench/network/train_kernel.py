"""Compiled (numba) kernels of the training forward/backward pass (issue 17 item 5).

The same arithmetic, in the same order, as the plain numpy path of :mod:`bench.network.train`
(the reference), fused so that no (B, T, N) float64 temporary is made per step and the binary
input is accumulated only over its active rows:

forward, per sample ``b`` (parallel over samples) and step ``t``::

    z      = 0;  for each input i with s_in[b, t, i] != 0 (ascending i):  z += s_in[b,t,i] * W[:, i]
    z     += noise[b, t]                                 (hardware-aware training only)
    x      = clip(z, lo, hi);  p = a p + x * (1/tau);  u = p + r
    s      = u >= theta;       r = b_ref r - jump s
    keep u, s and the clamp mask lo < x < hi for backward

backward, per sample (samples split over the threads), reverse time::

    du = gs * sg(u - theta)            [gs - jump dr, and dr = du + b_ref dr, with reset_grad]
    acc = du + a acc;   dz = acc * (1/tau) * mask
    dW^T[i, :] += s_in[b, t, i] * dz   for the active inputs i   (one private dW per thread)

``s_in`` entries equal to 1 skip the multiplication (``1 * w == w`` exactly), so the forward
spikes and ``dz`` are bit-identical to the reference; ``dW`` differs from the reference's BLAS
product only by summation order (tests: relative 1e-12).  The surrogate's ``exp``/``tanh`` come
from the C math library here and from numpy's SIMD routines in the reference (may differ in
the last bit; gradients agree to rtol 1e-10).

numba is imported lazily through the shared plumbing of decision 0015
(:mod:`sim_backend.physics.jit`): ``SNNBENCH_KERNEL=numpy`` (or numba missing) selects the numpy
path; compiled code is cached under ``$SNNBENCH_CACHE/numba``.

Threads (decision 0018, "threads"): on 2 cores the parallel kernels (numba's OpenMP threads) and
OpenBLAS's own threads fought each other: both spin-wait between jobs by default, so a thread
waiting for work burnt the core another needed (measured: process CPU 19-20 ms per sample for
7-8 ms of work).  :func:`kernels` therefore makes ``OMP_WAIT_POLICY=PASSIVE`` the default before
numba's OpenMP runtime starts (an explicit setting wins), and the one BLAS product of the
compiled backward (dL/ds_in) runs with OpenBLAS limited to one thread (:func:`blas_one_thread`,
threadpoolctl); OpenBLAS's GEMM splits the output, not the sum, so the result is bit-identical
with any thread count (checked in the tests).
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_backend.physics.neuron import NeuronParams

_KERNELS: dict[str, Any] | None = None


def kernels() -> dict[str, Any] | None:
    """The compiled kernels, or None when the numpy path is to be used: the project's one switch
    ``SNNBENCH_KERNEL`` (auto | numba | numpy) and numba's availability, through
    :mod:`sim_backend.physics.jit` (which raises ``KernelUnavailable`` for ``numba`` without numba)."""
    global _KERNELS
    from sim_backend.physics import jit

    if not jit.enabled():
        return None
    if _KERNELS is None:
        # read by the OpenMP runtime when numba starts its threads (first parallel call)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from bench.network import _train_numba as m

        _KERNELS = {"active_lists": m.active_lists, "forward": m.forward, "backward": m.backward,
                    "adam": m.adam}
    return _KERNELS


def status() -> dict[str, Any]:
    """Which training kernel is in use, and why not numba if not."""
    from sim_backend.physics import jit

    k = kernels()
    try:
        import threadpoolctl  # noqa: F401
        blas = "one thread in the training step (threadpoolctl)"
    except ImportError:
        blas = "not limited (threadpoolctl missing)"
    return {"train_kernel": "numba" if k is not None else "numpy", "requested": jit.choice(),
            "reason": None if k is not None else jit.reason(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "blas_threads": blas}


_BLAS_CONTROLLER: Any = None


@contextlib.contextmanager
def blas_one_thread() -> Iterator[None]:
    """Limit the BLAS libraries loaded in this process to one thread inside the block
    (threadpoolctl; without it, nothing changes).  The previous limits are restored on exit."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional at run time: only speed depends on it
            _BLAS_CONTROLLER = False
        else:
            _BLAS_CONTROLLER = ThreadpoolController()
    if _BLAS_CONTROLLER is False:
        yield
        return
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield


CHUNK = 64
"""Neurons per work item (see bench.network._train_numba)."""


@dataclass
class FastCache:
    """What the compiled backward needs from the compiled forward of one layer."""

    s_in: np.ndarray            # (B, T, n_in) input spikes (float64 0/1, or bool)
    indptr: np.ndarray          # (B*T + 1,) CSR row starts of the active inputs
    idx: np.ndarray             # active input indices, ascending within each (b, t) row
    s: np.ndarray               # (B, T, n_out) output spikes, float64 0/1
    u: np.ndarray               # (B, T, n_out) membrane potential
    mask: np.ndarray            # (B, T, n_out) bool, clamp_low < x < clamp_high
    weight: np.ndarray          # effective weight used in the forward pass
    theta: np.ndarray           # (n_out,)
    tau: np.ndarray             # (n_out,)
    params: NeuronParams


def _consts(params: NeuronParams, theta: np.ndarray, tau: np.ndarray):
    """The reference's constants (srm_forward), computed with the same numpy expressions."""
    a = np.exp(-1.0 / tau)
    inv_tau = 1.0 / tau
    bref = float(np.exp(-1.0 / params.tau_ref_steps))
    jump = params.ref_scale * theta
    return a, inv_tau, bref, jump


def layer_forward(k: dict[str, Any], s_in: np.ndarray, weight: np.ndarray, params: NeuronParams,
                  theta: np.ndarray, tau: np.ndarray, noise: np.ndarray | None) -> FastCache | None:
    """Compiled forward of one layer keeping the state for :func:`layer_backward`.

    ``s_in`` (B, T, n_in): float spikes, or bool (read as bytes, without a float64 copy).
    ``theta``/``tau`` per neuron (n_out,); ``noise`` (B, T, n_out) is added to the weighted
    input (already scaled).  Returns None if ``s_in`` is not binary (the caller then uses the
    reference, whose non-binary path is a BLAS product).
    """
    if s_in.dtype == np.bool_:  # spikes as bool (the data pipeline's): scanned as bytes, no float copy
        s_in = np.ascontiguousarray(s_in)
        indptr, idx, bad = k["active_lists"](s_in.view(np.uint8))
    else:
        s_in = np.ascontiguousarray(s_in, dtype=np.float64)
        indptr, idx, bad = k["active_lists"](s_in)
    b, t, _ = s_in.shape
    n = weight.shape[0]
    if bad:
        return None
    a, inv_tau, bref, jump = _consts(params, theta, tau)
    s = np.empty((b, t, n))
    u = np.empty((b, t, n))
    mask = np.empty((b, t, n), dtype=np.bool_)
    nz = np.zeros((0, 0, 0)) if noise is None else np.ascontiguousarray(noise, dtype=np.float64)
    k["forward"](indptr, idx, np.ascontiguousarray(weight.T), nz, theta, a, inv_tau, bref, jump,
                 float(params.clamp_low), float(params.clamp_high), s, u, mask, CHUNK)
    return FastCache(s_in=s_in, indptr=indptr, idx=idx, s=s, u=u, mask=mask, weight=weight,
                     theta=theta, tau=tau, params=params)


def layer_backward(k: dict[str, Any], cache: FastCache, grad_s: np.ndarray, sg: np.ndarray, *,
                   need_input_grad: bool, reset_grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(dL/dW (n_out, n_in), dL/ds_in (B, T, n_in) or None) of one layer.

    ``sg`` (B, T, n_out): the surrogate derivative at ``u - theta`` (computed by the caller with
    the reference's numpy function, so ``dz`` is bit-identical to the reference's).
    """
    a, inv_tau, _, jump = _consts(cache.params, cache.theta, cache.tau)
    bref = math.exp(-1.0 / cache.params.tau_ref_steps)  # as the reference's backward
    b, t, n = cache.u.shape
    n_in = cache.s_in.shape[-1]
    grad_s = np.ascontiguousarray(grad_s, dtype=np.float64)  # one compiled signature
    if grad_s.shape != (b, t, n):
        raise ValueError(f"grad_s has shape {grad_s.shape}, expected {(b, t, n)}")
    dz = np.empty((b, t, n)) if need_input_grad else np.empty((0, 0, 0))
    dwt = np.zeros((n_in, n))
    k["backward"](grad_s, np.ascontiguousarray(sg, dtype=np.float64), cache.mask, cache.indptr, cache.idx,
                  a, inv_tau, bref, jump, bool(reset_grad), dz, dwt, CHUNK)
    g_in = None
    if need_input_grad:
        with blas_one_thread():
            g_in = (dz.reshape(b * t, n) @ cache.weight).reshape(b, t, n_in)
    return np.ascontiguousarray(dwt.T), g_in
