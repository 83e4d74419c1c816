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
from numba.core import types
from numba.extending import intrinsic, models, register_model

LANES = 8
"""Doubles per vector value."""

_VEC = ir.VectorType(ir.DoubleType(), LANES)
_I64 = ir.IntType(64)


class F64x8(types.Type):
    """numba type of one ``<8 x double>`` register value."""

    def __init__(self) -> None:
        super().__init__(name="F64x8")


f64x8 = F64x8()


@register_model(F64x8)
class _F64x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _data_ptr(context, builder, arrty, arr, off):
    """Pointer to element ``off`` of the C-contiguous 1-D array value ``arr``."""
    ary = context.make_array(arrty)(context, builder, arr)
    return builder.gep(ary.data, [off])


@intrinsic
def vzeros(typingctx, proto):
    """A tuple of ``len(proto)`` vectors of +0.0 (``proto``: any homogeneous tuple; only its
    length is used, so the kernel is compiled once per accumulator width)."""
    if not isinstance(proto, types.UniTuple):
        return None
    ret = types.UniTuple(f64x8, proto.count)

    def codegen(context, builder, sig, args):
        zero = ir.Constant(_VEC, [0.0] * LANES)
        return context.make_tuple(builder, ret, [zero] * proto.count)
    return ret(proto), codegen


@intrinsic
def vadd_row(typingctx, acc, arr, off):
    """``acc + arr[off : off + 8 * len(acc)]`` lane by lane (``arr`` 1-D float64, C order)."""
    if not (isinstance(acc, types.UniTuple) and acc.dtype == f64x8 and isinstance(arr, types.Array)
            and arr.dtype == types.float64 and isinstance(off, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        accv, arrv, offv = args
        base = _data_ptr(context, builder, sig.args[1], arrv, offv)
        out = []
        for k in range(acc.count):
            p = builder.bitcast(builder.gep(base, [ir.Constant(_I64, LANES * k)]), _VEC.as_pointer())
            out.append(builder.fadd(builder.extract_value(accv, k), builder.load(p, align=8)))
        return context.make_tuple(builder, acc, out)
    return acc(acc, arr, off), codegen


@intrinsic
def vstore(typingctx, arr, off, acc):
    """``arr[off : off + 8 * len(acc)] = acc`` (``arr`` 1-D float64, C order)."""
    if not (isinstance(acc, types.UniTuple) and acc.dtype == f64x8 and isinstance(arr, types.Array)
            and arr.dtype == types.float64 and isinstance(off, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        arrv, offv, accv = args
        base = _data_ptr(context, builder, sig.args[0], arrv, offv)
        for k in range(acc.count):
            p = builder.bitcast(builder.gep(base, [ir.Constant(_I64, LANES * k)]), _VEC.as_pointer())
            builder.store(builder.extract_value(accv, k), p, align=8)
        return context.get_dummy_value()
    return types.none(arr, off, acc), codegen


@intrinsic
def nonzero_mask64(typingctx, arr, off):
    """uint64 whose bit k is set when ``arr[off + k] != 0``, k = 0..63 (``arr`` 1-D uint8):
    one ``vptestmb`` with AVX-512BW, compare + ``pmovmskb`` pairs otherwise."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and isinstance(off, types.Integer)):
        return None
    v8 = ir.VectorType(ir.IntType(8), 64)

    def codegen(context, builder, sig, args):
        arrv, offv = args
        p = builder.bitcast(_data_ptr(context, builder, sig.args[0], arrv, offv), v8.as_pointer())
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
        dv, do, sv, so = args
        pd = builder.bitcast(_data_ptr(context, builder, sig.args[0], dv, do), v8.as_pointer())
        ps = builder.bitcast(_data_ptr(context, builder, sig.args[2], sv, so), v8.as_pointer())
        builder.store(builder.add(builder.load(pd, align=1), builder.load(ps, align=1)), pd, align=1)
        return context.get_dummy_value()
    return types.none(dst, doff, src, soff), codegen


@intrinsic
def ctz64(typingctx, x):
    """Index of the lowest set bit of the uint64 ``x`` (``x != 0``: ``tzcnt``/``bsf``)."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 64):
        return None

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.uint64(x), codegen
