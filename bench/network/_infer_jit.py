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
def events(words: np.ndarray):  # pragma: no cover - compiled
    """Active inputs of every (sample, step) row of 0/1 bytes, read as 64-bit words.

    ``words`` (B*T, N/8) uint64: row e = b*T + t holds the N input bytes of (b, t).
    Returns (offsets int64 (B*T + 1), idx int32 (nnz)): the active inputs of row e are
    ``idx[offsets[e]:offsets[e + 1]]``, ascending.  The number of set bytes of a word is its
    byte sum (the top byte of ``w * 0x0101..01``); a non-zero word is expanded without
    branches (write every candidate, advance only past set bytes).
    """
    n_rows, nw = words.shape
    offs = np.empty(n_rows + 1, np.int64)
    offs[0] = 0
    total = 0
    ones = np.uint64(0x0101010101010101)
    s56 = np.uint64(56)
    for e in range(n_rows):
        c = np.uint64(0)
        for q in range(nw):
            c += (words[e, q] * ones) >> s56
        total += np.int64(c)
        offs[e + 1] = total
    idx = np.empty(total + 8, np.int32)
    k = 0
    for e in range(n_rows):
        for q in range(nw):
            w = words[e, q]
            if w == 0:
                continue
            for m in range(8):
                idx[k] = 8 * q + m
                k += np.int64((w >> np.uint64(8 * m)) & np.uint64(1))
    return offs, idx[:total]


@njit(cache=True, nogil=True)
def layer(offs: np.ndarray, idx: np.ndarray, wb: np.ndarray, th: np.ndarray, a: np.ndarray,
          inv_tau: np.ndarray, jump: np.ndarray, bref: float, clo: float, chi: float,
          b_: int, t_: int, n_out: int, out: np.ndarray, scratch: np.ndarray) -> None:  # pragma: no cover - compiled
    """One layer of SRM neurons on event lists.

    wb (n_blocks, n_in, BLOCK): the transposed weights in tiles of BLOCK neurons (padding
    neurons have zero weights).  th, a, inv_tau, jump: per-neuron constants padded to
    n_blocks * BLOCK.  out (B, T, n_out) uint8 receives the spikes.  scratch: BLOCK float64,
    64-byte aligned (the accumulator; wb too: unaligned rows cost ~25 % in loads split across
    cache lines).
    """
    nblk = wb.shape[0]
    acc = scratch
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
                k = offs[e]
                end = offs[e + 1]
                while k + 8 <= end:       # eight rows per pass over the accumulator, same order
                    w0 = w[idx[k]]
                    w1 = w[idx[k + 1]]
                    w2 = w[idx[k + 2]]
                    w3 = w[idx[k + 3]]
                    w4 = w[idx[k + 4]]
                    w5 = w[idx[k + 5]]
                    w6 = w[idx[k + 6]]
                    w7 = w[idx[k + 7]]
                    for j in range(BLOCK):
                        acc[j] = (((((((acc[j] + w0[j]) + w1[j]) + w2[j]) + w3[j]) + w4[j]) + w5[j])
                                  + w6[j]) + w7[j]
                    k += 8
                while k + 4 <= end:
                    w0 = w[idx[k]]
                    w1 = w[idx[k + 1]]
                    w2 = w[idx[k + 2]]
                    w3 = w[idx[k + 3]]
                    for j in range(BLOCK):
                        acc[j] = (((acc[j] + w0[j]) + w1[j]) + w2[j]) + w3[j]
                    k += 4
                while k < end:
                    wr = w[idx[k]]
                    for j in range(BLOCK):
                        acc[j] = acc[j] + wr[j]
                    k += 1
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
