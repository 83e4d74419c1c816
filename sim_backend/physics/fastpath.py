"""Fast inference paths: a pure-numpy reference and an optional compiled kernel.

Both give bit-identical spikes (same arithmetic in the same order; the C kernel is built
with -ffp-contract=off).  The kernel is compiled on first use with the system C compiler
into a per-user cache (``$SNNBENCH_CACHE`` or ``~/.cache/snnbench``); if that fails, or if
``SNNBENCH_NO_CKERNEL=1``, the numpy path is used.  Profiling showed the per-step neuron
loop and per-step noise draws dominate (DESIGN.md section 8), hence the kernel.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.special import ndtri

from .neuron import NeuronParams

_SRC = Path(__file__).with_name("_kernel.c")
_LIB = None
_TRIED = False

NOISE_TABLE_BITS = 12
"""The table is small enough to stay in L1 cache; indices are the top 12 bits of 16-bit draws."""


def _noise_table() -> np.ndarray:
    """Inverse normal CDF at the 2^12 quantile midpoints, rescaled to unit variance
    (a discrete Gaussian: tails end at +-3.5 sigma)."""
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
    splitmix64(key + (e // 4) * golden) - the same counter-based stream as the C kernel."""
    n = int(np.prod(shape))
    e = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _mix64(np.uint64(key) + (e >> np.uint64(2)) * _GOLDEN)
    return ((h >> (np.uint64(16) * (e & np.uint64(3)))) & np.uint64(0xFFFF)).astype(np.uint16).reshape(shape)


def _cpu_fingerprint() -> bytes:
    """-march=native objects must not be reused on another CPU: key the cache by its flags."""
    import platform

    fp = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "model name", "Features")):
                    fp += line
                    if line.startswith(("flags", "Features")):
                        break
    except OSError:
        pass
    return fp.encode()


def _load():
    global _LIB, _TRIED
    if _TRIED:
        return _LIB
    _TRIED = True
    if os.environ.get("SNNBENCH_NO_CKERNEL"):
        return None
    try:
        src = _SRC.read_bytes()
        tag = hashlib.sha1(src + sys.platform.encode() + b"O3native" + _cpu_fingerprint()).hexdigest()[:12]
        cache = Path(os.environ.get("SNNBENCH_CACHE", Path.home() / ".cache" / "snnbench"))
        cache.mkdir(parents=True, exist_ok=True)
        so = cache / f"snn_kernel_{tag}.so"
        if not so.exists():
            cc = os.environ.get("CC", "cc")
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
            os.close(fd)
            subprocess.run([cc, "-O3", "-march=native", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno",
                            "-fno-fast-math", str(_SRC), "-o", tmp, "-lm"],
                           check=True, capture_output=True, timeout=120)
            os.replace(tmp, so)
            for old in cache.glob("snn_kernel_*.so"):      # stale builds of older sources
                if old != so:
                    try:
                        old.unlink()
                    except OSError:
                        pass
        lib = ctypes.CDLL(str(so))
        dp = ctypes.POINTER(ctypes.c_double)
        u8 = ctypes.POINTER(ctypes.c_uint8)
        i64 = ctypes.c_int64
        lib.srm_kernel.argtypes = [dp, i64, i64, i64, dp, dp, dp, ctypes.c_double, dp,
                                   ctypes.c_double, ctypes.c_double, u8]
        lib.srm_kernel.restype = None
        lib.layer_kernel.argtypes = [u8, i64, i64, i64, i64, dp,
                                     ctypes.c_int, ctypes.c_uint64, dp, dp, dp, dp, dp,
                                     ctypes.c_double, dp, ctypes.c_double, ctypes.c_double, u8,
                                     ctypes.POINTER(ctypes.c_int64)]
        lib.layer_kernel.restype = ctypes.c_int64
        _LIB = lib
    except Exception:  # no compiler, sandbox, ... -> numpy path
        _LIB = None
    return _LIB


def have_kernel() -> bool:
    return _load() is not None


def _ptr(a, ct):
    return a.ctypes.data_as(ctypes.POINTER(ct))


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

    lib = _load() if use_kernel else None
    z = np.asarray(z, dtype=np.float64)
    if lib is None or z.ndim != 3 or z.shape[2] > 4096:
        return srm_forward(z, params, theta=theta, tau_steps=tau_steps).astype(bool)
    z = np.ascontiguousarray(z)
    b_, t_, n_ = z.shape
    th, a, inv_tau, bref, jump = _neuron_consts(params, n_, theta, tau_steps)
    s = np.empty(z.shape, dtype=np.uint8)
    lib.srm_kernel(_ptr(z, ctypes.c_double), b_, t_, n_, _ptr(th, ctypes.c_double),
                   _ptr(a, ctypes.c_double), _ptr(inv_tau, ctypes.c_double), bref,
                   _ptr(jump, ctypes.c_double), float(params.clamp_low), float(params.clamp_high),
                   _ptr(s, ctypes.c_uint8))
    return s.view(bool)


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
    lib = _load() if use_kernel else None
    if lib is not None and n_ <= 4096 and r_ % 8 == 0 and r_ <= 65536:
        s = np.empty((b_, t_, n_), dtype=np.uint8)
        rc = np.zeros(r_, dtype=np.int64)
        wv = np.ascontiguousarray(np.concatenate([wd, var], axis=1))
        nout = lib.layer_kernel(_ptr(spikes, ctypes.c_uint8), b_, t_, r_, n_, _ptr(wv, ctypes.c_double),
                                int(noisy), int(key or 0) & (2 ** 64 - 1),
                                _ptr(NOISE_TABLE, ctypes.c_double),
                                _ptr(var0, ctypes.c_double), _ptr(th, ctypes.c_double),
                                _ptr(a, ctypes.c_double), _ptr(inv_tau, ctypes.c_double), bref,
                                _ptr(jump, ctypes.c_double), float(params.clamp_low),
                                float(params.clamp_high), _ptr(s, ctypes.c_uint8), _ptr(rc, ctypes.c_int64))
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
