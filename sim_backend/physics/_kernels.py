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


# ---- the SIMD kernel (issue 17): vector values in registers through numba intrinsics -----------
from ._simd import (count_mask64, count_mask64_tail, ctz64, neuron_lanes, nzeros_noisy,  # noqa: E402,F401
                    nzeros_quiet, pick, popcount64, store_bits, vadd_row, vdraw, vjoin, vload, vnoise,
                    vsplit, vsrm, vzeros, vzeros_like)

_U64 = np.uint64(64)


@njit(inline="always")
def _scan_pair(x, base_a, base_b, has_b, nw64, tail, wv, proto, stride, zoff, cnt):
    """Crossbar sums of two consecutive steps A and B (B absent: ``has_b`` False), interleaved
    so their two addition chains overlap: each is the sum of the active rows of ``wv`` in
    ascending order from +0.0, one 64-row word after the other.  Within a word the step with
    fewer active rows is padded with the all-zero row at offset ``zoff`` (a select, not a
    branch): x + 0.0 == x exactly for every x but -0.0, and a sum that starts at +0.0 is never
    -0.0 in round-to-nearest, so the padding changes no bit.  Adds each step's 0/1 inputs to
    the byte-wide row counters ``cnt``; the last word reads only its ``tail`` valid rows.
    (Written out here, not in a helper: an inlined helper taking the arrays left reference
    count calls in the loop, and the accumulators were spilled around them.)"""
    acc_a = vzeros(proto)
    acc_b = vzeros(proto)
    for k in range(nw64):
        uk = np.uint64(k) * _U64
        mb = _U0
        if k == nw64 - 1 and tail != 64:       # a last, partial word: read its valid rows only
            ma = count_mask64_tail(cnt, uk, x, base_a + uk, tail)
            if has_b:
                mb = count_mask64_tail(cnt, uk, x, base_b + uk, tail)
        else:
            ma = count_mask64(cnt, uk, x, base_a + uk)
            if has_b:
                mb = count_mask64(cnt, uk, x, base_b + uk)
        while (ma | mb) != _U0:
            off_a = pick(ma == _U0, zoff, (uk + ctz64(ma)) * stride)
            off_b = pick(mb == _U0, zoff, (uk + ctz64(mb)) * stride)
            ma &= ma - _U1
            mb &= mb - _U1
            acc_a = vadd_row(acc_a, wv, off_a)
            acc_b = vadd_row(acc_b, wv, off_b)
    return acc_a, acc_b


@njit(inline="always")
def _flush(cnt, row_counts):
    """row_counts += the byte-wide counters; counters back to 0."""
    for i in range(cnt.shape[0]):
        row_counts[i] += np.int64(cnt[i])
        cnt[i] = 0


@njit
def layer_simd_noisy(x, b_, t_, nrow, wv, proto, n_, key, table, var0, th, a, inv_tau, bref, jump, clo,
                     chi, s, row_counts):
    """The fused layer of :func:`layer_kernel` with column noise, in vector registers
    (``_simd``), bit-identical to it and to the numpy reference.

    ``x`` flat (B * T * nrow) uint8 0/1 spikes.  With nw64 = ceil(nrow / 64) 64-row words,
    ``wv`` is flat (64 * nw64 + 1, L) with L = 8 * len(proto) (``proto``: a tuple whose
    length fixes the accumulator width at compile time): row i is ``wd[i]`` padded with zeros
    to L/2 lanes, then ``var[i]`` likewise; the last row is all zeros.  ``var0, th, a,
    inv_tau, jump`` are padded to ``_simd.neuron_lanes(len(proto), True)`` lanes with 0
    (``th``: +inf, so padding lanes never fire).  ``s`` flat uint8 with room for
    B * T * n_ + neuron_lanes bytes (one lane-wide store per step).  Writes spikes, adds per-row
    input counts to row_counts (64 * nw64) int64, returns the number of output spikes."""
    un = np.uint64(n_)
    urw = np.uint64(nrow)
    nw64 = (nrow + 63) // 64
    tail = nrow - 64 * (nw64 - 1)
    stride = np.uint64(8 * len(proto))
    zoff = np.uint64(64 * nw64) * stride
    like = nzeros_noisy(proto)
    v0 = vload(var0, _U0, like)
    thv = vload(th, _U0, like)
    av = vload(a, _U0, like)
    itv = vload(inv_tau, _U0, like)
    jv = vload(jump, _U0, like)
    cnt = np.zeros(nw64 * 64, dtype=np.uint8)
    ukey = np.uint64(key)
    nout = _U0
    since = 0
    for b in range(b_):
        p = vzeros_like(like)
        r = vzeros_like(like)
        for t in range(0, t_, 2):
            if since >= 254:            # flush the byte-wide row counters before they wrap
                _flush(cnt, row_counts)
                since = 0
            since += 2
            bt = np.uint64(b * t_ + t)
            has_b = t + 1 < t_
            acc_a, acc_b = _scan_pair(x, bt * urw, (bt + _U1) * urw, has_b, nw64, tail, wv, proto,
                                      stride, zoff, cnt)
            z, var = vsplit(acc_a)
            z = vnoise(z, var, v0, vdraw(table, bt * un, un, ukey, like))
            p, r, bits = vsrm(z, p, r, thv, av, itv, jv, bref, clo, chi)
            store_bits(s, bt * un, bits, like)
            nout += popcount64(bits)
            if has_b:
                z, var = vsplit(acc_b)
                z = vnoise(z, var, v0, vdraw(table, (bt + _U1) * un, un, ukey, like))
                p, r, bits = vsrm(z, p, r, thv, av, itv, jv, bref, clo, chi)
                store_bits(s, (bt + _U1) * un, bits, like)
                nout += popcount64(bits)
    _flush(cnt, row_counts)
    return nout


@njit
def layer_simd_quiet(x, b_, t_, nrow, wv, proto, n_, th, a, inv_tau, bref, jump, clo, chi, s, row_counts):
    """:func:`layer_simd_noisy` without noise: rows of ``wv`` are ``wd`` padded to L lanes, the
    neuron vectors ``neuron_lanes(len(proto), False)`` lanes wide."""
    un = np.uint64(n_)
    urw = np.uint64(nrow)
    nw64 = (nrow + 63) // 64
    tail = nrow - 64 * (nw64 - 1)
    stride = np.uint64(8 * len(proto))
    zoff = np.uint64(64 * nw64) * stride
    like = nzeros_quiet(proto)
    thv = vload(th, _U0, like)
    av = vload(a, _U0, like)
    itv = vload(inv_tau, _U0, like)
    jv = vload(jump, _U0, like)
    cnt = np.zeros(nw64 * 64, dtype=np.uint8)
    nout = _U0
    since = 0
    for b in range(b_):
        p = vzeros_like(like)
        r = vzeros_like(like)
        for t in range(0, t_, 2):
            if since >= 254:
                _flush(cnt, row_counts)
                since = 0
            since += 2
            bt = np.uint64(b * t_ + t)
            has_b = t + 1 < t_
            acc_a, acc_b = _scan_pair(x, bt * urw, (bt + _U1) * urw, has_b, nw64, tail, wv, proto,
                                      stride, zoff, cnt)
            p, r, bits = vsrm(vjoin(acc_a), p, r, thv, av, itv, jv, bref, clo, chi)
            store_bits(s, bt * un, bits, like)
            nout += popcount64(bits)
            if has_b:
                p, r, bits = vsrm(vjoin(acc_b), p, r, thv, av, itv, jv, bref, clo, chi)
                store_bits(s, (bt + _U1) * un, bits, like)
                nout += popcount64(bits)
    _flush(cnt, row_counts)
    return nout
