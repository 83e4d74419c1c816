"""numba-compiled inference kernels of :mod:`bench.network.kernel` (imported lazily, only there).

One source serves float64 and float32: numba compiles a specialisation per argument type
(the weights, neuron constants, scalars and scratch all of the declared precision).

Importing this module imports numba.  The arithmetic is the reference's, in the reference's
order (see :mod:`bench.network.kernel` for the definition); the project's ``njit``
(:mod:`sim_backend.physics.jit`) compiles without fastmath, so LLVM neither reassociates the
sums nor contracts ``a * p + x`` into a fused multiply-add, and caches under
``$SNNBENCH_CACHE/numba``.
"""
from __future__ import annotations

import numpy as np

from sim_backend.physics.jit import njit

BLOCK = 128
"""Neurons per tile (a compile-time constant, so LLVM unrolls the inner loops): a tile's weights
(n_in x 128 x 8 B = 800 kB for 800 inputs) stay in L2 across all steps and samples, its
accumulator (1 kB) in L1.  Measured on the 800-480 layer: 128 and 256 are ~15 % faster than
64 (fewer passes over the event lists); 128 wastes fewer padding neurons on small layers."""


@njit
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


@njit
def layer(offs: np.ndarray, idx: np.ndarray, wb: np.ndarray, th: np.ndarray, a: np.ndarray,
          inv_tau: np.ndarray, jump: np.ndarray, bref: float, clo: float, chi: float,
          b_: int, t_: int, n_out: int, out: np.ndarray, scratch: np.ndarray) -> None:  # pragma: no cover - compiled
    """One layer of SRM neurons on event lists.

    wb (n_blocks, n_in, BLOCK): the transposed weights in tiles of BLOCK neurons (padding
    neurons have zero weights).  th, a, inv_tau, jump: per-neuron constants padded to
    n_blocks * BLOCK.  out (B, T, n_out) uint8 receives the spikes.  scratch: BLOCK elements,
    64-byte aligned (the accumulator; wb too: unaligned rows cost ~25 % in loads split across
    cache lines).
    """
    nblk = wb.shape[0]
    # the loops below index without bounds checks: refuse inconsistent shapes up front
    if wb.shape[2] != BLOCK or scratch.shape[0] < BLOCK or nblk * BLOCK < n_out:
        raise ValueError("layer kernel: weight tiles / scratch do not match BLOCK")
    if th.shape[0] < nblk * BLOCK or a.shape[0] < nblk * BLOCK or inv_tau.shape[0] < nblk * BLOCK \
            or jump.shape[0] < nblk * BLOCK:
        raise ValueError("layer kernel: neuron constants shorter than the tiles")
    if out.shape[0] != b_ or out.shape[1] != t_ or out.shape[2] != n_out or offs.shape[0] != b_ * t_ + 1:
        raise ValueError("layer kernel: output / event shapes do not match")
    if offs[b_ * t_] > idx.shape[0]:
        raise ValueError("layer kernel: event offsets beyond the index list")
    acc = scratch
    p = np.empty_like(scratch)
    r = np.empty_like(scratch)
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
                    i0 = idx[k]
                    i1 = idx[k + 1]
                    i2 = idx[k + 2]
                    i3 = idx[k + 3]
                    i4 = idx[k + 4]
                    i5 = idx[k + 5]
                    i6 = idx[k + 6]
                    i7 = idx[k + 7]
                    for j in range(BLOCK):
                        acc[j] = (((((((acc[j] + w[i0, j]) + w[i1, j]) + w[i2, j]) + w[i3, j]) + w[i4, j])
                                   + w[i5, j]) + w[i6, j]) + w[i7, j]
                    k += 8
                while k + 4 <= end:
                    i0 = idx[k]
                    i1 = idx[k + 1]
                    i2 = idx[k + 2]
                    i3 = idx[k + 3]
                    for j in range(BLOCK):
                        acc[j] = (((acc[j] + w[i0, j]) + w[i1, j]) + w[i2, j]) + w[i3, j]
                    k += 4
                while k < end:
                    i0 = idx[k]
                    for j in range(BLOCK):
                        acc[j] = acc[j] + w[i0, j]
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
                    if s:
                        r[j] = rb - jb[j]
                    else:
                        r[j] = rb
                for j in range(nj):
                    out[b, t, j0 + j] = st[j]
