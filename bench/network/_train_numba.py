"""numba kernels of :mod:`bench.network.train_kernel` (imported lazily: importing this module
compiles nothing; the first call compiles or loads numba's cache).  See that module for the
arithmetic; every floating-point operation here is one of the numpy reference's, in its order
(numba does not contract ``a * b + c`` into an FMA unless fastmath is on, and it is off).

Layout: neurons are processed in chunks of ``chunk`` (64: a 800 x 64 float64 weight block is
400 kB and stays in a core's L2 cache); work is split over (chunk, sample) in the forward and
over chunks in the backward, so each thread owns the columns of ``dW^T`` it writes (no
reduction, the same summation order for any thread count).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from sim_backend.physics.jit import njit


@njit
def active_lists(s_in):
    """Active inputs of every (b, t) row in ascending order, as CSR (indptr, idx), and the
    number of entries that are neither 0 nor 1.

    Serial on purpose: split over the samples it could save at most half of its ~1.3-1.5 ms CPU
    per batch of 8 on an idle machine, but its parallel regions (numba also parallelises the allocations and the sum)
    each wait for the slowest thread, and on the loaded 2-core machine it took 6-9 ms instead
    of 2.8 (median of 40, 2026-12-03)."""
    nb_, nt, ni = s_in.shape
    counts = np.zeros(nb_ * nt + 1, dtype=np.int64)
    bad = np.zeros(nb_, dtype=np.int64)
    for b in range(nb_):
        nbad = 0
        for t in range(nt):
            c = 0
            for i in range(ni):
                v = s_in[b, t, i]
                if v != 0.0:
                    c += 1
                    if v != 1.0:
                        nbad += 1
            counts[b * nt + t + 1] = c
        bad[b] = nbad
    indptr = np.cumsum(counts)
    idx = np.empty(indptr[-1], dtype=np.int32)
    for b in range(nb_):
        for t in range(nt):
            k = indptr[b * nt + t]
            for i in range(ni):
                if s_in[b, t, i] != 0.0:
                    idx[k] = i
                    k += 1
    return indptr, idx, bad.sum()


@njit(parallel=True)
def forward(indptr, idx, wt, noise, th, a, inv_tau, bref, jump, lo, hi, s_out, u_out, mask_out, chunk):
    # Inner loops index views with range() variables only: an index like ``j0 + jj`` could be
    # negative to numba (wraparound check), which stops LLVM from vectorising the loop.
    nb_, nt, n = s_out.shape
    has_noise = noise.shape[0] > 0
    nch = (n + chunk - 1) // chunk
    for task in prange(nch * nb_):
        c = task // nb_
        b = task - c * nb_
        j0 = c * chunk
        j1 = min(n, j0 + chunk)
        m = j1 - j0
        th_c, a_c, it_c, jump_c = th[j0:j1], a[j0:j1], inv_tau[j0:j1], jump[j0:j1]
        z = np.empty(m)
        p = np.zeros(m)
        r = np.zeros(m)
        for t in range(nt):
            row = b * nt + t
            for jj in range(m):
                z[jj] = 0.0
            for k in range(indptr[row], indptr[row + 1]):
                w = wt[idx[k], j0:j1]
                for jj in range(m):
                    z[jj] += w[jj]
            if has_noise:
                nz = noise[b, t, j0:j1]
                for jj in range(m):
                    z[jj] += nz[jj]
            s_c, u_c, mk_c = s_out[b, t, j0:j1], u_out[b, t, j0:j1], mask_out[b, t, j0:j1]
            for jj in range(m):
                x = min(max(z[jj], lo), hi)
                p[jj] = a_c[jj] * p[jj] + x * it_c[jj]
                u = p[jj] + r[jj]
                fired = u >= th_c[jj]
                s_c[jj] = 1.0 if fired else 0.0
                r[jj] = bref * r[jj] - (jump_c[jj] if fired else 0.0)
                u_c[jj] = u
                mk_c[jj] = (x > lo) and (x < hi)


@njit(parallel=True)
def backward(gs, sg, mask, indptr, idx, a, inv_tau, bref, jump, reset_grad, dz, dwt, chunk):
    # dz of shape (0, 0, 0): not kept (the first layer needs no input gradient); each step's
    # dz then lives in a chunk-sized buffer.
    nb_, nt, n = sg.shape
    keep = dz.shape[0] > 0
    nch = (n + chunk - 1) // chunk
    for c in prange(nch):
        j0 = c * chunk
        j1 = min(n, j0 + chunk)
        m = j1 - j0
        a_c, it_c, jump_c = a[j0:j1], inv_tau[j0:j1], jump[j0:j1]
        acc = np.empty(m)
        dr = np.empty(m)
        dloc = np.empty(m)
        for b in range(nb_):
            for jj in range(m):
                acc[jj] = 0.0
                dr[jj] = 0.0
            for t in range(nt - 1, -1, -1):
                g_c, sg_c, mk_c = gs[b, t, j0:j1], sg[b, t, j0:j1], mask[b, t, j0:j1]
                d = dz[b, t, j0:j1] if keep else dloc[:]
                if reset_grad:
                    for jj in range(m):
                        du = (g_c[jj] - jump_c[jj] * dr[jj]) * sg_c[jj]
                        dr[jj] = du + bref * dr[jj]
                        acc[jj] = du + a_c[jj] * acc[jj]
                        d[jj] = acc[jj] * it_c[jj] * (1.0 if mk_c[jj] else 0.0)
                else:
                    for jj in range(m):
                        acc[jj] = g_c[jj] * sg_c[jj] + a_c[jj] * acc[jj]
                        d[jj] = acc[jj] * it_c[jj] * (1.0 if mk_c[jj] else 0.0)
                row = b * nt + t
                for k in range(indptr[row], indptr[row + 1]):
                    w = dwt[idx[k], j0:j1]
                    for jj in range(m):
                        w[jj] += d[jj]


@njit
def adam(p, g, m, v, l2, b1, b2, c1, c2, lr, eps, clamp):
    """One Adam step on 2-D arrays in place: the reference's operations, element by element,
    in the same order."""
    rows, cols = p.shape
    for i in range(rows):
        for j in range(cols):
            gk = g[i, j]
            if l2 != 0.0:
                gk = gk + l2 * p[i, j]
            mk = m[i, j] * b1
            mk = mk + (1.0 - b1) * gk
            vk = v[i, j] * b2
            vk = vk + (1.0 - b2) * gk * gk
            m[i, j] = mk
            v[i, j] = vk
            q = p[i, j] - lr * (mk / c1) / (np.sqrt(vk / c2) + eps)
            p[i, j] = min(max(q, -clamp), clamp)
