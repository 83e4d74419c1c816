"""Fast inference paths: a numba kernel and the pure-numpy reference (decision 0015).

Both give bit-identical spikes and energy counters (same IEEE-754 operations in the same
order; numba compiles without fastmath, so no reassociation and no FMA contraction).  The
kernel (``_kernels.py``) is compiled by numba on first use and cached on disk under
``$SNNBENCH_CACHE/numba``; ``SNNBENCH_KERNEL=numpy`` forces the reference, and the reference
is also what runs when numba cannot be imported (``jit.report()`` says which and why).
Profiling showed the per-step neuron loop and the event-driven accumulation dominate
(DESIGN.md section 8), hence the kernel.
"""
from __future__ import annotations

import sys
import threading

import numpy as np
from scipy.special import ndtri

from . import jit
from .neuron import NeuronParams

NOISE_TABLE_BITS = 12
"""The table is small enough to stay in L1 cache; indices are the top 12 bits of 16-bit draws."""


def _noise_table() -> np.ndarray:
    """Inverse normal CDF at the 2^12 quantile midpoints, rescaled to unit variance
    (a discrete Gaussian: tails end at +-3.67 sigma, the midpoint of the outermost 1/4096)."""
    q = (np.arange(1 << NOISE_TABLE_BITS) + 0.5) / (1 << NOISE_TABLE_BITS)
    t = ndtri(q)
    return np.ascontiguousarray(t / np.sqrt(np.mean(t * t)))


NOISE_TABLE = _noise_table()


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def noise_key(rng: np.random.Generator) -> int:
    """A 64-bit key for one batch of noise draws, taken from the run generator."""
    return int(rng.integers(0, 2 ** 63, dtype=np.int64)) * 2 + int(rng.integers(0, 2))


def noise_indices_for(key: int, shape) -> np.ndarray:
    """Uniform 16-bit indices into NOISE_TABLE: element e = chunk (e % 4) of
    splitmix64(key + (e // 4) * golden) - the same counter-based stream as the kernel."""
    n = int(np.prod(shape))
    e = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _mix64(np.uint64(key) + (e >> np.uint64(2)) * _GOLDEN)
    return ((h >> (np.uint64(16) * (e & np.uint64(3)))) & np.uint64(0xFFFF)).astype(np.uint16).reshape(shape)


def _kernels(use_kernel: bool):
    """The numba kernel module, or None for the numpy reference (``use_kernel=False``,
    ``SNNBENCH_KERNEL=numpy``, or numba not importable)."""
    if not use_kernel or not jit.enabled():
        return None
    from . import _kernels as k

    return k


_WARM = threading.Event()
_WARM_LOCK = threading.Lock()
_WARMER: threading.Thread | None = None


def warm() -> bool:
    """Compile (first use on this machine) or load from numba's disk cache both kernels, by
    running them once on a tiny input; True when the numba path is ready.  A RUN must answer
    within its deadline (run time + 1 s): the first inference of a process must not carry the
    ~0.5 s (cached) to ~3 s (first use) of CPU this costs."""
    if _WARM.is_set():
        return True
    if not have_kernel():
        return False
    x = np.zeros((1, 2, 8), dtype=bool)
    x[0, 0, 3] = True
    layer_forward(x, np.ones((8, 12)), np.ones((8, 12)), 1, None)   # the chip: 12 neurons, noisy
    layer_forward(x, np.ones((8, 64)), None, None, None)            # hybrid runner: 64-neuron blocks
    srm_spikes(np.ones((1, 2, 2)))
    _WARM.set()
    return True


def prewarm() -> None:
    """Start :func:`warm` in a background thread, once per process (the simulated chip calls
    this when it is built, so the kernel is ready when the first RUN arrives)."""
    global _WARMER
    with _WARM_LOCK:
        if _WARMER is not None or _WARM.is_set():
            return
        _WARMER = threading.Thread(target=_warm_quietly, name="snnbench-kernel-warm", daemon=True)
        _WARMER.start()


def wait_warm(timeout_s: float | None = None) -> bool:
    """Block until the background warm-up started by :func:`prewarm` (if any) has finished;
    True when the kernels are ready.  Benchmarks call it before timing: process CPU time
    counts every thread, and the warm-up's compile or cache load (0.3-3 s of CPU) would
    otherwise land in the first timed repetition."""
    t = _WARMER
    if t is not None:
        t.join(timeout_s)
    return _WARM.is_set()


def _warm_quietly() -> None:
    try:
        warm()
    except Exception:  # noqa: BLE001 - the first real call reports any problem itself
        pass


def have_kernel() -> bool:
    """True when the compiled (numba) path runs; ``jit.report()`` says why not otherwise."""
    return jit.enabled()


def _neuron_consts(params: NeuronParams, n: int, theta, tau_steps):
    th = np.array(np.broadcast_to(np.asarray(params.theta if theta is None else theta, np.float64), (n,)))
    tau = np.array(np.broadcast_to(np.asarray(params.tau_steps if tau_steps is None else tau_steps,
                                              np.float64), (n,)))
    a = np.exp(-1.0 / tau)
    inv_tau = 1.0 / tau
    bref = float(np.exp(-1.0 / params.tau_ref_steps))
    jump = params.ref_scale * th
    return th, a, inv_tau, bref, jump


def srm_spikes(z: np.ndarray, params: NeuronParams = NeuronParams(), *, theta=None,
               tau_steps=None, use_kernel: bool = True) -> np.ndarray:
    """Spikes (bool, z's shape (B, T, N)) identical to ``srm_forward`` - compiled when possible."""
    from .neuron import srm_forward

    k = _kernels(use_kernel)
    z = np.asarray(z, dtype=np.float64)
    if k is None or z.ndim != 3:
        return srm_forward(z, params, theta=theta, tau_steps=tau_steps).astype(bool)
    z = np.ascontiguousarray(z)
    th, a, inv_tau, bref, jump = _neuron_consts(params, z.shape[2], theta, tau_steps)
    s = np.empty(z.shape, dtype=np.uint8)
    k.srm_kernel(z, th, a, inv_tau, bref, jump, float(params.clamp_low), float(params.clamp_high), s)
    return s.view(bool)


SIMD_WIDTHS = (1, 2, 3, 4, 6, 8)
"""Accumulator widths, in blocks of 8 doubles, the SIMD kernel is compiled for (one
specialisation each, compiled on first use and cached on disk): a layer's row - ``wd`` padded
to 8 * width lanes, or with noise ``wd`` and ``var`` each padded to 4 * width lanes - is
rounded up to the next of these.  A wider layer (more than 64 neurons without noise, 32 with)
runs the generic kernel."""


def _simd_width(n: int, noisy: bool) -> int:
    """The SIMD accumulator width (blocks of 8 doubles) for ``n`` neurons, 0 for too wide."""
    need = -(-n // (4 if noisy else 8))
    for w in SIMD_WIDTHS:
        if need <= w:
            return w
    return 0


def _pad(v: np.ndarray, lanes: int, fill: float) -> np.ndarray:
    out = np.full(lanes, fill)
    out[:v.shape[0]] = v
    return out


def _layer_simd(k, spikes, wd, var, key, var0, th, a, inv_tau, bref, jump, params, width):
    """``layer_forward`` through ``_kernels.layer_simd_noisy`` / ``layer_simd_quiet`` (spikes uint8 (B, T, R)
    C-contiguous, not copied: the kernel reads a last partial 64-row word with a masked load),
    the weight rows laid out in ``width`` blocks of 8 doubles (see the kernel), padded with
    zero rows to whole 64-row words, plus one all-zero row."""
    b_, t_, r_ = spikes.shape
    n_ = wd.shape[1]
    rp = -(-r_ // 64) * 64
    noisy = var is not None
    lanes = 8 * width
    nl = k.neuron_lanes(width, noisy)            # lanes of the neuron-side vectors
    wv = np.zeros((rp + 1, lanes))
    wv[:r_, :n_] = wd
    if noisy:
        wv[:r_, lanes // 2:lanes // 2 + n_] = var
    rc = np.zeros(rp, dtype=np.int64)
    s = np.empty(b_ * t_ * n_ + nl, dtype=np.uint8)
    key64 = np.uint64(int(key or 0) & (2 ** 64 - 1))
    consts = (_pad(th, nl, np.inf), _pad(a, nl, 0.0), _pad(inv_tau, nl, 0.0), bref, _pad(jump, nl, 0.0),
              float(params.clamp_low), float(params.clamp_high), s, rc)
    if noisy:
        nout = k.layer_simd_noisy(spikes.reshape(-1), b_, t_, r_, wv.reshape(-1), (0.0,) * width, n_,
                                  key64, NOISE_TABLE, _pad(var0, nl, 0.0), *consts)
    else:
        nout = k.layer_simd_quiet(spikes.reshape(-1), b_, t_, r_, wv.reshape(-1), (0.0,) * width, n_,
                                  *consts)
    return s[:b_ * t_ * n_].reshape(b_, t_, n_).view(bool), rc[:r_], int(nout)


def layer_forward(spikes: np.ndarray, wd: np.ndarray, var: np.ndarray | None,
                  key: int | None, var0: np.ndarray | None,
                  params: NeuronParams = NeuronParams(), *, theta=None, tau_steps=None,
                  use_kernel: bool = True):
    """Crossbar + column-aggregated noise + SRM neurons for a batch.

    z[b,t,j]  = sum over active rows i (ascending) of wd[i, j]
    z        += sqrt(sum over active rows of var[i, j] + var0[j]) * NOISE_TABLE[idx(key) >> 4]
    (no noise if ``key`` is None)
    spikes    = SRM(z)
    Returns (spikes bool (B, T, N), row_counts int64 (R), n_out_spikes).
    """
    spikes = np.asarray(spikes)
    if spikes.dtype == bool:
        spikes = spikes.view(np.uint8)
    else:
        spikes = (spikes != 0).view(np.uint8)
    spikes = np.ascontiguousarray(spikes)
    b_, t_, r_ = spikes.shape
    wd = np.ascontiguousarray(wd, dtype=np.float64)
    n_ = wd.shape[1]
    noisy = key is not None
    var = np.ascontiguousarray(var if noisy else np.zeros_like(wd), dtype=np.float64)
    var0 = np.ascontiguousarray(np.zeros(n_) if var0 is None else np.broadcast_to(var0, (n_,)),
                                dtype=np.float64)
    th, a, inv_tau, bref, jump = _neuron_consts(params, n_, theta, tau_steps)
    k = _kernels(use_kernel)
    if k is not None:
        width = _simd_width(n_, noisy)
        if width:
            return _layer_simd(k, spikes, wd, var if noisy else None, key, var0, th, a, inv_tau, bref,
                               jump, params, width)
        s = np.empty((b_, t_, n_), dtype=np.uint8)
        rc = np.zeros(r_, dtype=np.int64)
        if r_ % 8:                  # whole 8-row words for the kernel's bit scan
            padded = np.zeros((b_, t_, r_ + 8 - r_ % 8), dtype=np.uint8)
            padded[:, :, :r_] = spikes
            spikes = padded
        words = spikes.view(np.uint64)
        if sys.byteorder != "little":
            words = words.byteswap()
        wv = np.ascontiguousarray(np.concatenate([wd, var], axis=1) if noisy else wd)
        rcw = np.zeros(words.shape[2] * 8, dtype=np.int64)
        args = (words, wv, noisy, np.uint64(int(key or 0) & (2 ** 64 - 1)), NOISE_TABLE, var0, th, a,
                inv_tau, bref, jump, float(params.clamp_low), float(params.clamp_high), s, rcw)
        nout = k.layer_kernel(*args)
        rc[:] = rcw[:r_]
        return s.view(bool), rc, int(nout)
    # ---- pure numpy, same arithmetic order ------------------------------------------------
    act = spikes.view(bool)
    z = np.zeros((b_, t_, n_))
    v = np.zeros((b_, t_, n_)) if noisy else None
    for i in range(r_):
        m = act[:, :, i]
        if not m.any():
            continue
        z[m] += wd[i]
        if noisy:
            v[m] += var[i]
    if noisy:
        z = z + np.sqrt(v + var0) * NOISE_TABLE[noise_indices_for(key, z.shape) >> 4]
    from .neuron import srm_forward

    s = srm_forward(z, params, theta=th, tau_steps=tau_steps)
    s = s.astype(bool)
    rc = act.sum(axis=(0, 1)).astype(np.int64)
    return s, rc, int(s.sum())
