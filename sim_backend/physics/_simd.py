"""Portable SIMD building blocks for the chip-layer kernel (numba intrinsics, decision 0015).

numba cannot keep a row accumulator of 8-24 doubles in vector registers on its own: a loop
``acc[j] += w[off + j]`` over a scratch array carries a run-time aliasing check per row, and 24
scalar locals stay 24 scalar registers (LLVM's SLP vectoriser does not bundle loop-carried
phis).  These intrinsics emit plain LLVM vector IR instead: ``<8 x double>`` values that live
in registers (one zmm with AVX-512, two ymm with AVX2, four q registers with NEON - LLVM
legalises the width for the CPU it compiles on, so the code stays portable and needs no
compiler on the user's machine, only numba's bundled LLVM).

Exactness: every lane does the same IEEE-754 ``fadd`` as the scalar code, with no fast-math
flags (no reassociation, no FMA contraction), so sums are bit-identical to the numpy
reference's.  Loads are unaligned (``align 8``/``1``); bounds are the caller's business
(numba compiles the kernels with ``boundscheck=False`` anyway).

Imported only by ``_kernels`` (itself imported only once ``jit.enabled()``): importing numba
here is fine.
"""
from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

LANES = 8
"""Doubles per machine-independent vector block: accumulators are whole blocks wide."""

_I64 = ir.IntType(64)
_DBL = ir.DoubleType()


class F64Vec(types.Type):
    """numba type of one ``<lanes x double>`` SSA value (LLVM splits it into the target's
    registers: 8 lanes per zmm with AVX-512, 4 per ymm with AVX2, 2 per q with NEON)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        super().__init__(name=f"F64Vec({lanes})")


@register_model(F64Vec)
class _F64VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(_DBL, fe_type.lanes))


def _vt(lanes: int) -> ir.VectorType:
    return ir.VectorType(_DBL, lanes)


def _ptr(context, builder, arrty, arr, off, elty):
    """Pointer (as ``elty*``) to element ``off`` of the C-contiguous 1-D array value ``arr``."""
    ary = context.make_array(arrty)(context, builder, arr)
    return builder.bitcast(builder.gep(ary.data, [off]), elty.as_pointer())


def _splat(builder, x, lanes):
    v = builder.insert_element(ir.Constant(_vt(lanes), ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(_vt(lanes), ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def _is_f64_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.float64 and a.ndim == 1


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def neuron_lanes(width: int, noisy: bool) -> int:
    """Lanes of the neuron-side vectors for an accumulator of ``width`` 8-double blocks: the
    power of two that holds one half (``wd`` or ``var``, 4 * width lanes) when noisy, the whole
    row (8 * width) otherwise.  Loop-carried vectors stay powers of two: LLVM splits a
    ``<24 x double>`` phi into scalars."""
    return _pow2(LANES * width // 2 if noisy else LANES * width)


_BLOCK = F64Vec(LANES)


@intrinsic
def vzeros(typingctx, proto):
    """The row accumulator: a tuple of ``len(proto)`` blocks ``<8 x double>`` of +0.0
    (``proto``: any homogeneous tuple; only its length is used, so a kernel is compiled once
    per accumulator width)."""
    if not isinstance(proto, types.UniTuple):
        return None
    ret = types.UniTuple(_BLOCK, proto.count)

    def codegen(context, builder, sig, args):
        zero = ir.Constant(_vt(LANES), [0.0] * LANES)
        return context.make_tuple(builder, ret, [zero] * proto.count)
    return ret(proto), codegen


def _neuron_zeros(proto, noisy: bool):
    if not isinstance(proto, types.UniTuple):
        return None
    ret = F64Vec(neuron_lanes(proto.count, noisy))

    def codegen(context, builder, sig, args):
        return ir.Constant(_vt(ret.lanes), [0.0] * ret.lanes)
    return ret(proto), codegen


@intrinsic
def nzeros_noisy(typingctx, proto):
    """+0.0 in every neuron lane of the noisy layout, for an accumulator like ``proto``."""
    return _neuron_zeros(proto, True)


@intrinsic
def nzeros_quiet(typingctx, proto):
    """+0.0 in every neuron lane of the noiseless layout, for an accumulator like ``proto``."""
    return _neuron_zeros(proto, False)


@intrinsic
def vzeros_like(typingctx, v):
    """+0.0 in every lane of ``v``'s type."""
    if not isinstance(v, F64Vec):
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(_vt(v.lanes), [0.0] * v.lanes)
    return v(v), codegen


@intrinsic
def vload(typingctx, arr, off, like):
    """``arr[off : off + lanes]`` as a vector of ``like``'s width (unaligned load)."""
    if not (_is_f64_array(arr) and isinstance(off, types.Integer) and isinstance(like, F64Vec)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], _vt(like.lanes)), align=8)
    return like(arr, off, like), codegen


def _is_acc(t) -> bool:
    return isinstance(t, types.UniTuple) and t.dtype == _BLOCK


@intrinsic
def vadd_row(typingctx, acc, arr, off):
    """``acc + arr[off : off + 8 * len(acc)]`` lane by lane (one IEEE ``fadd`` per lane)."""
    if not (_is_acc(acc) and _is_f64_array(arr) and isinstance(off, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        base = _ptr(context, builder, sig.args[1], args[1], args[2], _DBL)
        out = []
        for k in range(acc.count):
            p = builder.bitcast(builder.gep(base, [ir.Constant(_I64, LANES * k)]), _vt(LANES).as_pointer())
            out.append(builder.fadd(builder.extract_value(args[0], k), builder.load(p, align=8)))
        return context.make_tuple(builder, acc, out)
    return acc(acc, arr, off), codegen


def _lanes_of(builder, accv, count, start, n, out_lanes):
    """Lanes ``start .. start + n`` of the accumulator tuple, then zeros, as <out_lanes x double>."""
    blocks = [builder.extract_value(accv, k) for k in range(count)]
    zero = ir.Constant(_vt(LANES), [0.0] * LANES)
    while len(blocks) & (len(blocks) - 1):
        blocks.append(zero)
    idx = ir.IntType(32)
    while len(blocks) > 1:                      # concatenate pairwise: <8> <8> -> <16> ...
        w = blocks[0].type.count
        mask = ir.Constant(ir.VectorType(idx, 2 * w), list(range(2 * w)))
        blocks = [builder.shuffle_vector(blocks[i], blocks[i + 1], mask) for i in range(0, len(blocks), 2)]
    whole = blocks[0]
    w = whole.type.count
    sel = [start + j if j < n else w for j in range(out_lanes)]          # index w: first lane of zeros
    return builder.shuffle_vector(whole, ir.Constant(whole.type, [0.0] * w),
                                  ir.Constant(ir.VectorType(idx, out_lanes), sel))


@intrinsic
def vsplit(typingctx, acc):
    """(wd sums, var sums) of a noisy accumulator: lanes 0 .. 4K and 4K .. 8K (K blocks),
    each zero-padded to :func:`neuron_lanes`."""
    if not _is_acc(acc):
        return None
    h = F64Vec(neuron_lanes(acc.count, True))
    ret = types.Tuple((h, h))

    def codegen(context, builder, sig, args):
        half = LANES * acc.count // 2
        lo = _lanes_of(builder, args[0], acc.count, 0, half, h.lanes)
        hi = _lanes_of(builder, args[0], acc.count, half, half, h.lanes)
        return context.make_tuple(builder, ret, [lo, hi])
    return ret(acc), codegen


@intrinsic
def vjoin(typingctx, acc):
    """All lanes of a noiseless accumulator as one vector, zero-padded to :func:`neuron_lanes`."""
    if not _is_acc(acc):
        return None
    ret = F64Vec(neuron_lanes(acc.count, False))

    def codegen(context, builder, sig, args):
        return _lanes_of(builder, args[0], acc.count, 0, LANES * acc.count, ret.lanes)
    return ret(acc), codegen


@intrinsic
def vnoise(typingctx, z, var, var0, nz):
    """``z + sqrt(var + var0) * nz`` lane by lane (separate IEEE operations, no FMA)."""
    if not all(isinstance(a, F64Vec) and a.lanes == z.lanes for a in (z, var, var0, nz)):
        return None

    def codegen(context, builder, sig, args):
        zv, vv, v0, nv = args
        vt = _vt(z.lanes)
        sq = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]), f"llvm.sqrt.v{z.lanes}f64")
        sd = builder.call(sq, [builder.fadd(vv, v0)])
        return builder.fadd(zv, builder.fmul(sd, nv))
    return z(z, var, var0, nz), codegen


_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


@intrinsic
def vdraw(typingctx, table, e0, n, key, like):
    """Column-noise values of elements ``e0 + j`` in lane j < ``n`` (+0.0 in the lanes after):
    ``table[idx >> 4]`` with idx the 16-bit chunk ``e % 4`` of
    splitmix64(key + (e // 4) * golden) - the counter-based stream of
    ``fastpath.noise_indices_for``, every lane hashed on its own (wrapping uint64 arithmetic,
    as in the scalar code) and the table read lane by lane."""
    if not (_is_f64_array(table) and isinstance(like, F64Vec)
            and all(isinstance(x, types.Integer) for x in (e0, n, key))):
        return None

    def codegen(context, builder, sig, args):
        tab, e0v, nv, keyv = args[0], args[1], args[2], args[3]
        lanes = like.lanes
        vi = ir.VectorType(_I64, lanes)

        def splat(x):
            v = builder.insert_element(ir.Constant(vi, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(v, ir.Constant(vi, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))

        def const(c):
            return ir.Constant(vi, [c] * lanes)
        e = builder.add(splat(e0v), ir.Constant(vi, list(range(lanes))))
        z = builder.add(splat(keyv), builder.mul(builder.lshr(e, const(2)), const(_GOLDEN)))
        z = builder.mul(builder.xor(z, builder.lshr(z, const(30))), const(_MIX1))
        z = builder.mul(builder.xor(z, builder.lshr(z, const(27))), const(_MIX2))
        z = builder.xor(z, builder.lshr(z, const(31)))
        sh = builder.shl(builder.and_(e, const(3)), const(4))
        idx = builder.lshr(builder.and_(builder.lshr(z, sh), const(0xFFFF)), const(4))
        base = _ptr(context, builder, sig.args[0], tab, ir.Constant(_I64, 0), _DBL)
        out = ir.Constant(_vt(lanes), ir.Undefined)
        for j in range(lanes):
            i = builder.extract_element(idx, ir.Constant(ir.IntType(32), j))
            out = builder.insert_element(out, builder.load(builder.gep(base, [i]), align=8),
                                         ir.Constant(ir.IntType(32), j))
        live = builder.icmp_unsigned("<", ir.Constant(vi, list(range(lanes))), splat(nv))
        return builder.select(live, out, ir.Constant(_vt(lanes), [0.0] * lanes))
    return like(table, e0, n, key, like), codegen


@intrinsic
def vsrm(typingctx, z, p, r, th, a, inv_tau, jump, bref, clo, chi):
    """One step of the SRM neurons, all lanes at once, exactly ``_kernels._srm_step``:
    v = clamp(z) (selects: ``clo if v < clo``, ``chi if v > chi``), p = a * p + v * inv_tau,
    spike = p + r >= th, r = bref * r - jump * spike.  Returns (p, r, spike bits as uint64:
    bit j = lane j; lanes <= 64)."""
    vec = (z, p, r, th, a, inv_tau, jump)
    if not (all(isinstance(x, F64Vec) and x.lanes == z.lanes for x in vec) and z.lanes <= 64
            and all(isinstance(x, types.Float) for x in (bref, clo, chi))):
        return None
    ret = types.Tuple((z, z, types.uint64))

    def codegen(context, builder, sig, args):
        n = z.lanes
        zv, pv, rv, thv, av, itv, jv, b, lo, hi = args
        lo, hi, b = (_splat(builder, x, n) for x in (lo, hi, b))
        v = builder.select(builder.fcmp_ordered("<", zv, lo), lo, zv)
        v = builder.select(builder.fcmp_ordered(">", v, hi), hi, v)
        xs = builder.fmul(v, itv)
        pp = builder.fmul(av, pv)
        pn = builder.fadd(pp, xs)
        u = builder.fadd(pn, rv)
        spk = builder.fcmp_ordered(">=", u, thv)
        one = builder.select(spk, ir.Constant(_vt(n), [1.0] * n), ir.Constant(_vt(n), [0.0] * n))
        rn = builder.fsub(builder.fmul(b, rv), builder.fmul(jv, one))
        bits = builder.zext(builder.bitcast(spk, ir.IntType(n)), _I64) if n < 64 else builder.bitcast(spk, _I64)
        return context.make_tuple(builder, ret, [pn, rn, bits])
    return ret(z, p, r, th, a, inv_tau, jump, bref, clo, chi), codegen


@intrinsic
def store_bits(typingctx, s, off, bits, like):
    """``s[off + j] = (bits >> j) & 1`` for every lane j of ``like``'s width, as one unaligned
    store of that many bytes (the caller leaves room: lanes past the layer's neurons land in
    the next step's slots, which that step overwrites, or in the slack after the array)."""
    if not (isinstance(s, types.Array) and s.dtype == types.uint8 and isinstance(like, F64Vec)
            and like.lanes <= 64):
        return None

    def codegen(context, builder, sig, args):
        n = like.lanes
        m = builder.bitcast(builder.trunc(args[2], ir.IntType(n)) if n < 64 else args[2],
                            ir.VectorType(ir.IntType(1), n))
        v8 = ir.VectorType(ir.IntType(8), n)
        builder.store(builder.zext(m, v8), _ptr(context, builder, sig.args[0], args[0], args[1], v8), align=1)
        return context.get_dummy_value()
    return types.none(s, off, bits, like), codegen


@intrinsic
def nonzero_mask64(typingctx, arr, off):
    """uint64 whose bit k is set when ``arr[off + k] != 0``, k = 0..63 (``arr`` 1-D uint8):
    one ``vptestmb`` with AVX-512BW, compare + ``pmovmskb`` pairs otherwise."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and isinstance(off, types.Integer)):
        return None
    v8 = ir.VectorType(ir.IntType(8), 64)

    def codegen(context, builder, sig, args):
        p = _ptr(context, builder, sig.args[0], args[0], args[1], v8)
        nz = builder.icmp_unsigned("!=", builder.load(p, align=1), ir.Constant(v8, [0] * 64))
        return builder.bitcast(nz, _I64)
    return types.uint64(arr, off), codegen


@intrinsic
def add_bytes64(typingctx, dst, doff, src, soff):
    """``dst[doff : doff + 64] += src[soff : soff + 64]`` as wrapping uint8 lanes (per-row
    event counters, flushed by the caller before any lane can exceed 255)."""
    if not (isinstance(dst, types.Array) and dst.dtype == types.uint8 and isinstance(src, types.Array)
            and src.dtype == types.uint8):
        return None
    v8 = ir.VectorType(ir.IntType(8), 64)

    def codegen(context, builder, sig, args):
        pd = _ptr(context, builder, sig.args[0], args[0], args[1], v8)
        ps = _ptr(context, builder, sig.args[2], args[2], args[3], v8)
        builder.store(builder.add(builder.load(pd, align=1), builder.load(ps, align=1)), pd, align=1)
        return context.get_dummy_value()
    return types.none(dst, doff, src, soff), codegen


def _count_and_mask(builder, context, sig, args, v):
    """cnt[coff : coff + 64] += v (uint8 lanes); the bit mask of v's non-zero lanes."""
    v8 = ir.VectorType(ir.IntType(8), 64)
    pd = _ptr(context, builder, sig.args[0], args[0], args[1], v8)
    builder.store(builder.add(builder.load(pd, align=1), v), pd, align=1)
    return builder.bitcast(builder.icmp_unsigned("!=", v, ir.Constant(v8, [0] * 64)), _I64)


def _is_u8_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.uint8 and a.ndim == 1


@intrinsic
def count_mask64(typingctx, cnt, coff, x, xoff):
    """Row word of one step: ``cnt[coff : coff + 64] += x[xoff : xoff + 64]`` (byte-wide
    per-row event counters) and the uint64 whose bit k is set when ``x[xoff + k] != 0`` (one
    ``vptestmb`` with AVX-512BW, compare + ``pmovmskb`` otherwise)."""
    if not (_is_u8_array(cnt) and _is_u8_array(x) and isinstance(coff, types.Integer)
            and isinstance(xoff, types.Integer)):
        return None
    v8 = ir.VectorType(ir.IntType(8), 64)

    def codegen(context, builder, sig, args):
        v = builder.load(_ptr(context, builder, sig.args[2], args[2], args[3], v8), align=1)
        return _count_and_mask(builder, context, sig, args, v)
    return types.uint64(cnt, coff, x, xoff), codegen


@intrinsic
def count_mask64_tail(typingctx, cnt, coff, x, xoff, nvalid):
    """:func:`count_mask64` for a last, partial row word: only bytes ``xoff .. xoff + nvalid``
    are read (a masked load, which touches no byte past them), the others count as 0."""
    if not (_is_u8_array(cnt) and _is_u8_array(x) and isinstance(coff, types.Integer)
            and isinstance(xoff, types.Integer) and isinstance(nvalid, types.Integer)):
        return None
    v8 = ir.VectorType(ir.IntType(8), 64)
    m1 = ir.VectorType(ir.IntType(1), 64)

    def codegen(context, builder, sig, args):
        n8 = builder.trunc(args[4], ir.IntType(8))
        splat = builder.shuffle_vector(
            builder.insert_element(ir.Constant(v8, ir.Undefined), n8, ir.Constant(ir.IntType(32), 0)),
            ir.Constant(v8, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), 64), [0] * 64))
        live = builder.icmp_unsigned("<", ir.Constant(v8, list(range(64))), splat)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v8, [ir.PointerType(), ir.IntType(32), m1, v8]),
            "llvm.masked.load.v64i8.p0")
        src = builder.bitcast(_ptr(context, builder, sig.args[2], args[2], args[3], v8), ir.PointerType())
        v = builder.call(fn, [src, ir.Constant(ir.IntType(32), 1), live, ir.Constant(v8, [0] * 64)])
        return _count_and_mask(builder, context, sig, args, v)
    return types.uint64(cnt, coff, x, xoff, nvalid), codegen


@intrinsic
def ctz64(typingctx, x):
    """Number of trailing zero bits of the 64-bit ``x`` (64 when ``x == 0``)."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 64):
        return None

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))
    return types.uint64(x), codegen


@intrinsic
def popcount64(typingctx, x):
    """Number of set bits of the 64-bit ``x``."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 64):
        return None

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])
    return types.uint64(x), codegen


@intrinsic
def vlane(typingctx, v, i):
    """Lane ``i`` of the vector ``v`` as a float64 (benchmarks, tests)."""
    if not (isinstance(v, F64Vec) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return types.float64(v, i), codegen


@intrinsic
def pick(typingctx, cond, a, b):
    """``a if cond else b`` as an LLVM ``select`` of two 64-bit integers (a conditional move,
    not a branch: numba lowers a Python conditional expression to control flow, which costs a
    mispredicted branch when ``cond`` is unpredictable)."""
    if not (isinstance(cond, types.Boolean) and isinstance(a, types.Integer) and a == b and a.bitwidth == 64):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(args[0], args[1], args[2])
    return a(cond, a, b), codegen
