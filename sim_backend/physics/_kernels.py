"""numba kernels of the simulated PE macro (imported by fastpath only when ``jit.enabled()``).

Same IEEE-754 operations, in the same order, as the numpy references in ``fastpath`` and
``neuron.srm_forward`` (no fastmath: no reassociation, no FMA contraction), so spikes are
bit-identical.  All integer noise arithmetic is explicit uint64 (numba would otherwise promote
mixed signed/unsigned operands to float64).
"""
from __future__ import annotations

import numpy as np

from .jit import njit

_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U5 = np.uint64(5)
_U6 = np.uint64(6)
_U7 = np.uint64(7)
_U8 = np.uint64(8)
_U24 = np.uint64(24)
_U32 = np.uint64(32)
_U40 = np.uint64(40)
_U48 = np.uint64(48)
_U3 = np.uint64(3)
_U4 = np.uint64(4)
_U16 = np.uint64(16)
_UFFFF = np.uint64(0xFFFF)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> _U30)) * _M1
    z = (z ^ (z >> _U27)) * _M2
    return z ^ (z >> _U31)


@njit(inline="always")
def _srm_step(x, xo, th, a, inv_tau, bref, jump, clo, chi, p, r, s, so):
    """One step of the N = p.shape[0] SRM neurons on inputs x[xo:xo+N] (neuron.srm_forward's
    arithmetic, same order), spikes 0/1 into s[so:so+N]; returns their number.  Offsets are
    uint64 (no negative-index fix-up in the loop)."""
    nout = 0
    for j in range(p.shape[0]):
        uj = np.uint64(j)
        v = x[xo + uj]
        v = clo if v < clo else v           # selects, not branches: the sign of the input and
        v = chi if v > chi else v           # the spikes are unpredictable
        xs = v * inv_tau[j]
        pp = a[j] * p[j]
        p[j] = pp + xs
        u = p[j] + r[j]
        spk = u >= th[j]
        s[so + uj] = spk
        nout += spk
        r[j] = bref * r[j] - jump[j] * (1.0 if spk else 0.0)    # numpy: bref * r - jump * s
    return nout


@njit
def srm_kernel(z, th, a, inv_tau, bref, jump, clo, chi, s):
    """SRM neurons on a precomputed input z (B, T, N) float64 -> spikes s (B, T, N) uint8."""
    b_, t_, n_ = z.shape
    zf = z.ravel()
    sf = s.ravel()
    un = np.uint64(n_)
    p = np.empty(n_)
    r = np.empty(n_)
    for b in range(b_):
        p[:] = 0.0
        r[:] = 0.0
        for t in range(t_):
            o = np.uint64(b * t_ + t) * un
            _srm_step(zf, o, th, a, inv_tau, bref, jump, clo, chi, p, r, sf, o)


_DEBRUIJN = 0x07EDD5E59A4E28C2
_CTZ = np.zeros(64, dtype=np.uint64)
for _k in range(64):
    _CTZ[(((1 << _k) * _DEBRUIJN) & 0xFFFFFFFFFFFFFFFF) >> 58] = _k
_UDB = np.uint64(_DEBRUIJN)
_U58 = np.uint64(58)
_U56 = np.uint64(56)
_BYTES_TO_BITS = np.uint64(0x0102040810204080)
"""(w * this) >> 56 gathers the low bit of each of w's 8 little-endian 0/1 bytes into one byte."""


_U255 = 255


@njit
def _count_rows(ww, n_steps, nw, row_counts):
    """row_counts[i] += number of steps with row i active.  ``ww`` holds 0/1 bytes 8 to a
    word, so adding words adds 8 byte-wide counters at once; flushed before any byte reaches 256.
    Kept out of the accumulation loop, where a store would pin its sums to memory."""
    cnt = np.zeros(nw, dtype=np.uint64)
    for s0 in range(0, n_steps, _U255):
        for k in range(nw):
            cnt[k] = _U0
        for st in range(s0, min(s0 + _U255, n_steps)):
            base = st * nw
            for k in range(nw):
                cnt[k] += ww[base + k]
        for k in range(nw):
            c = cnt[k]
            for q in range(8):
                row_counts[k * 8 + q] += np.int64((c >> np.uint64(8 * q)) & np.uint64(0xFF))


@njit
def layer_kernel(words, wv, noisy, key, table, var0, th, a, inv_tau, bref, jump, clo, chi,
                 s, row_counts):
    """Fused layer.  ``words`` (B, T, R/8) uint64 is the 0/1 uint8 spike tensor (B, T, R) viewed
    8 rows per word (little-endian).  Event-driven crossbar accumulation (active rows ascending)
    of the rows of wv (R, m): [wd | var] (m = 2n) when ``noisy``, wd alone (m = n) otherwise;
    column noise z += sqrt(var + var0) * table[idx >> 4] with idx from the counter-based
    stream of ``key`` (if ``noisy``); then the SRM neurons.  Writes spikes s (B, T, n) uint8,
    adds per-row input counts to row_counts (R) int64, returns the number of output spikes."""
    # Hot loops index with uint64 (numba adds a negative-index fix-up to every signed index,
    # which blocks register allocation and vectorisation) and flat arrays.
    b_, t_, nw = words.shape
    n_ = s.shape[2]
    m_ = wv.shape[1]
    um2 = np.uint64(m_)
    unw = np.uint64(nw)
    ww = words.ravel()
    wflat = wv.ravel()
    sflat = s.ravel()
    p = np.zeros(n_)
    r = np.zeros(n_)
    acc = np.empty(m_)
    nz = np.empty(n_)
    ctz = _CTZ
    ukey = np.uint64(key)
    nout = 0
    _count_rows(ww, b_ * t_, nw, row_counts)
    for b in range(b_):
        for j in range(n_):
            p[j] = 0.0
            r[j] = 0.0
        for t in range(t_):
            bt = np.uint64(b * t_ + t)
            base = bt * unw
            for j in range(m_):
                acc[j] = 0.0
            for w0 in range(0, nw, 8):
                uw0 = np.uint64(w0)
                q = base + uw0
                if nw - w0 >= 8:            # a whole 64-row chunk: straight-line code
                    mask = (((ww[q] * _BYTES_TO_BITS) >> _U56)
                            | (((ww[q + _U1] * _BYTES_TO_BITS) >> _U56) << _U8)
                            | (((ww[q + _U2] * _BYTES_TO_BITS) >> _U56) << _U16)
                            | (((ww[q + _U3] * _BYTES_TO_BITS) >> _U56) << _U24)
                            | (((ww[q + _U4] * _BYTES_TO_BITS) >> _U56) << _U32)
                            | (((ww[q + _U5] * _BYTES_TO_BITS) >> _U56) << _U40)
                            | (((ww[q + _U6] * _BYTES_TO_BITS) >> _U56) << _U48)
                            | (((ww[q + _U7] * _BYTES_TO_BITS) >> _U56) << _U56))
                else:
                    mask = _U0
                    for k in range(nw - w0):
                        uk = np.uint64(k)
                        mask |= ((ww[q + uk] * _BYTES_TO_BITS) >> _U56) << (uk * _U8)
                while mask != _U0:
                    lsb = mask & (~mask + _U1)
                    i = uw0 * _U8 + ctz[(lsb * _UDB) >> _U58]
                    mask ^= lsb
                    off = i * um2
                    for j in range(m_):
                        acc[j] = acc[j] + wflat[off + np.uint64(j)]
            if noisy:
                e0 = bt * np.uint64(n_)
                h = _U0
                for j in range(n_):
                    e = e0 + np.uint64(j)
                    if j == 0 or (e & _U3) == _U0:
                        h = _mix64(ukey + (e >> _U2) * _GOLDEN)
                    nz[j] = table[((h >> (_U16 * (e & _U3))) & _UFFFF) >> _U4]
                for j in range(n_):
                    sd = np.sqrt(acc[n_ + j] + var0[j])
                    acc[j] = acc[j] + sd * nz[j]
            nout += _srm_step(acc, _U0, th, a, inv_tau, bref, jump, clo, chi, p, r, sflat,
                              bt * np.uint64(n_))
    return nout


from ._simd import LANES, add_bytes64, ctz64, nonzero_mask64, vadd_row, vstore, vzeros  # noqa: E402

_U64 = np.uint64(64)


@njit
def layer_kernel_simd(x, b_, t_, nw64, wv, proto, kh, n_, noisy, key, table, var0, th, a, inv_tau,
                      bref, jump, clo, chi, s, row_counts):
    """The fused layer of :func:`layer_kernel` with the row accumulator in vector registers.

    ``x`` flat (B * T * 64 * nw64) uint8 0/1 spikes (rows padded with zeros to whole 64-row
    words); ``wv`` flat (64 * nw64, 8 * len(proto)): each row is ``wd`` padded with zeros to
    8 * kh columns, then (``noisy``) ``var`` padded likewise; ``proto`` is any tuple of
    len(proto) = kh (noiseless) or 2 * kh (noisy) elements - its length fixes the accumulator
    width at compile time.  Same arithmetic, same order as :func:`layer_kernel`: active rows
    ascending from +0.0, then the column noise, then the SRM neurons (n_ of them).  Writes
    spikes s (B * T * n_) uint8 0/1, adds per-row input counts to row_counts (64 * nw64) int64,
    returns the number of output spikes."""
    un = np.uint64(n_)
    urw = np.uint64(nw64 * 64)
    stride = np.uint64(LANES * len(proto))
    vo = np.uint64(LANES * kh)
    p = np.zeros(n_)
    r = np.zeros(n_)
    acc = np.empty(LANES * len(proto))
    nz = np.empty(n_)
    cnt = np.zeros(nw64 * 64, dtype=np.uint8)
    ukey = np.uint64(key)
    nout = 0
    since = 0
    for b in range(b_):
        for j in range(n_):
            p[j] = 0.0
            r[j] = 0.0
        for t in range(t_):
            bt = np.uint64(b * t_ + t)
            base = bt * urw
            if since == 255:            # flush the uint8 row counters before they wrap
                for i in range(nw64 * 64):
                    row_counts[i] += np.int64(cnt[i])
                    cnt[i] = 0
                since = 0
            since += 1
            av = vzeros(proto)
            for k in range(nw64):
                uk = np.uint64(k) * _U64
                add_bytes64(cnt, uk, x, base + uk)
                mask = nonzero_mask64(x, base + uk)
                while mask != _U0:
                    i = uk + ctz64(mask)
                    mask &= mask - _U1
                    av = vadd_row(av, wv, i * stride)
            vstore(acc, _U0, av)
            if noisy:
                e0 = bt * un
                h = _U0
                for j in range(n_):
                    e = e0 + np.uint64(j)
                    if j == 0 or (e & _U3) == _U0:
                        h = _mix64(ukey + (e >> _U2) * _GOLDEN)
                    nz[j] = table[((h >> (_U16 * (e & _U3))) & _UFFFF) >> _U4]
                for j in range(n_):
                    uj = np.uint64(j)
                    sd = np.sqrt(acc[vo + uj] + var0[j])
                    acc[uj] = acc[uj] + sd * nz[j]
            nout += _srm_step(acc, _U0, th, a, inv_tau, bref, jump, clo, chi, p, r, s, bt * un)
    for i in range(nw64 * 64):
        row_counts[i] += np.int64(cnt[i])
    return nout
