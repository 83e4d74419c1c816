"""numba-compiled inference kernels of :mod:`bench.network.kernel` (imported lazily, only there).

Importing this module imports numba.  The arithmetic is the reference's, in the reference's
order (see :mod:`bench.network.kernel` for the definition); numba compiles without fastmath,
so LLVM neither reassociates the sums nor contracts ``a * p + x`` into a fused multiply-add.
"""
from __future__ import annotations

import numpy as np
from numba import njit

BLOCK = 64
"""Neurons per tile: a tile's weights (n_in x 64 x 8 B = 400 kB for 800 inputs) stay in L2
across all steps and samples, its accumulator (512 B) in L1 / registers."""


@njit(cache=True, nogil=True)
def events(x: np.ndarray):  # pragma: no cover - compiled
    """Active inputs of every (sample, step) of a uint8 0/1 array (B, T, N), ascending.

    Returns (offsets int64 (B*T + 1), idx int32 (nnz)): the active inputs of row e = b*T + t
    are ``idx[offsets[e]:offsets[e + 1]]``.
    """
    b_, t_, n_ = x.shape
    rows = x.reshape(b_ * t_, n_)
    offs = np.empty(b_ * t_ + 1, np.int64)
    offs[0] = 0
    total = 0
    for e in range(b_ * t_):
        c = 0
        for i in range(n_):
            c += rows[e, i]
        total += c
        offs[e + 1] = total
    idx = np.empty(total, np.int32)
    k = 0
    for e in range(b_ * t_):
        if offs[e + 1] == offs[e]:
            continue
        for i in range(n_):
            if rows[e, i]:
                idx[k] = i
                k += 1
    return offs, idx


@njit(cache=True, nogil=True)
def layer(offs: np.ndarray, idx: np.ndarray, wb: np.ndarray, th: np.ndarray, a: np.ndarray,
          inv_tau: np.ndarray, jump: np.ndarray, bref: float, clo: float, chi: float,
          b_: int, t_: int, n_out: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """One layer of SRM neurons on event lists.

    wb (n_blocks, n_in, BLOCK): the transposed weights in tiles of BLOCK neurons (padding
    neurons have zero weights).  th, a, inv_tau, jump: per-neuron constants padded to
    n_blocks * BLOCK.  out (B, T, n_out) uint8 receives the spikes.
    """
    nblk = wb.shape[0]
    acc = np.empty(BLOCK)
    p = np.empty(BLOCK)
    r = np.empty(BLOCK)
    st = np.empty(BLOCK, np.uint8)
    for kb in range(nblk):
        j0 = kb * BLOCK
        nj = min(BLOCK, n_out - j0)
        w = wb[kb]
        thb = th[j0:j0 + BLOCK]
        ab = a[j0:j0 + BLOCK]
        itb = inv_tau[j0:j0 + BLOCK]
        jb = jump[j0:j0 + BLOCK]
        for b in range(b_):
            for j in range(BLOCK):
                p[j] = 0.0
                r[j] = 0.0
            for t in range(t_):
                e = b * t_ + t
                for j in range(BLOCK):
                    acc[j] = 0.0
                for k in range(offs[e], offs[e + 1]):
                    wr = w[idx[k]]
                    for j in range(BLOCK):
                        acc[j] = acc[j] + wr[j]
                for j in range(BLOCK):
                    x = acc[j]
                    x = clo if x < clo else x
                    x = chi if x > chi else x
                    xs = x * itb[j]
                    pp = ab[j] * p[j]
                    p[j] = pp + xs
                    u = p[j] + r[j]
                    s = u >= thb[j]
                    st[j] = s
                    rb = bref * r[j]
                    r[j] = rb - (jb[j] if s else 0.0)
                for j in range(nj):
                    out[b, t, j0 + j] = st[j]
