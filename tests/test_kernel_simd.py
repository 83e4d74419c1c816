"""The SIMD chip-layer kernel (issue 17, decision 0015): its building blocks against
hand-derived values and the numpy noise stream, and which kernel serves which layer width.

The end-to-end must-hold (spikes, row counts and output counts identical to the numpy
reference on random layers, ideal and with a fixed noise key) is in test_kernel_exact.py;
these tests pin the pieces whose failure could hide in a random layer.
"""
import subprocess
import sys

import numpy as np
import pytest

from sim_backend.physics import fastpath, jit
from sim_backend.physics.neuron import NeuronParams

pytestmark = pytest.mark.skipif(not fastpath.have_kernel(), reason=f"numba path off: {jit.reason()}")


@pytest.fixture(scope="module")
def probes():
    """Small compiled wrappers around the intrinsics (numba imported only here)."""
    from sim_backend.physics import _simd as S
    from sim_backend.physics.jit import njit

    @njit(cache=False)
    def mask_of(x, off):
        return S.nonzero_mask64(x, np.uint64(off))

    @njit(cache=False)
    def ctz(v):
        return S.ctz64(v)

    @njit(cache=False)
    def popc(v):
        return S.popcount64(v)

    @njit(cache=False)
    def draw(table, e0, n, key, out):
        v = S.vdraw(table, np.uint64(e0), np.uint64(n), np.uint64(key), S.nzeros_noisy((0.0, 0.0, 0.0)))
        for j in range(out.shape[0]):
            out[j] = S.vlane(v, j)

    @njit(cache=False)
    def split(row, out_lo, out_hi):
        acc = S.vadd_row(S.vzeros((0.0, 0.0, 0.0)), row, np.uint64(0))
        lo, hi = S.vsplit(acc)
        for j in range(out_lo.shape[0]):
            out_lo[j] = S.vlane(lo, j)
            out_hi[j] = S.vlane(hi, j)

    @njit(cache=False)
    def bits_store(s, off, bits):
        S.store_bits(s, np.uint64(off), np.uint64(bits), S.nzeros_noisy((0.0, 0.0, 0.0)))

    return dict(mask_of=mask_of, ctz=ctz, popc=popc, draw=draw, split=split, bits_store=bits_store)


def test_row_mask_and_bit_helpers_hand_cases(probes):
    """kills _simd.nonzero_mask64 / ctz64 / popcount64 mutants: bit k <-> byte k != 0 (any
    non-zero value), lowest set bit, ctz of 0 is 64 (the scan relies on it being defined)."""
    x = np.zeros(200, np.uint8)
    x[[10, 15, 73, 137]] = [1, 7, 255, 1]
    assert probes["mask_of"](x, 10) == (1 | 1 << 5 | 1 << 63)
    assert probes["mask_of"](x, 11) == (1 << 4 | 1 << 62)
    assert probes["mask_of"](x, 136) == 1 << 1
    assert [probes["ctz"](np.uint64(v)) for v in (1, 8, 1 << 63, 0)] == [0, 3, 63, 64]
    assert [probes["popc"](np.uint64(v)) for v in (0, 1, 0xF0F0, 2 ** 64 - 1)] == [0, 1, 8, 64]


@pytest.mark.parametrize("e0, n", [(0, 12), (36, 12), (7, 9), (1, 16), (12 * 299, 12), (2 ** 40 + 3, 5)])
def test_vector_noise_draws_equal_the_numpy_stream(probes, e0, n):
    """kills _simd.vdraw mutants (hash constants, chunk selection, lane offset, padding): lane
    j < n holds NOISE_TABLE[idx >> 4] for element e0 + j of the numpy stream
    ``fastpath.noise_indices_for`` (a separate implementation); lanes >= n hold +0.0."""
    key = 0xDEADBEEF12345678
    out = np.full(16, np.nan)
    probes["draw"](fastpath.NOISE_TABLE, e0, n, key, out)
    if e0 < 2 ** 20:
        idx = fastpath.noise_indices_for(key, (e0 + n,))[e0:]
    else:                               # same stream, elements e0 .. e0 + n computed directly
        e = np.arange(e0, e0 + n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            h = fastpath._mix64(np.uint64(key) + (e >> np.uint64(2)) * fastpath._GOLDEN)
        idx = ((h >> (np.uint64(16) * (e & np.uint64(3)))) & np.uint64(0xFFFF)).astype(np.uint16)
    assert np.array_equal(out[:n], fastpath.NOISE_TABLE[idx >> 4])
    assert np.all(out[n:] == 0.0) and not np.any(np.signbit(out[n:]))


def test_split_puts_wd_and_var_sums_in_aligned_lanes(probes):
    """kills _simd.vsplit / _lanes_of mutants: a 3-block (24-lane) accumulator holds wd in
    lanes 0..11 and var in 12..23; each half comes out in lanes 0..11 of a 16-lane vector,
    lanes 12..15 zero."""
    row = np.arange(1.0, 25.0)
    lo, hi = np.full(16, np.nan), np.full(16, np.nan)
    probes["split"](row, lo, hi)
    assert lo.tolist() == list(range(1, 13)) + [0.0] * 4
    assert hi.tolist() == list(range(13, 25)) + [0.0] * 4


def test_spike_bits_store_one_byte_per_lane(probes):
    """kills _simd.store_bits mutants: bit j of the mask becomes byte 0/1 at off + j for all
    16 lanes, nothing before off."""
    s = np.full(40, 9, np.uint8)
    probes["bits_store"](s, 3, 0b1000_0000_0010_0101)
    assert s[:3].tolist() == [9, 9, 9]
    assert s[3:19].tolist() == [1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert s[19:].tolist() == [9] * 21


def _spy_paths(monkeypatch):
    from sim_backend.physics import _kernels as K
    used = []
    for name in ("layer_kernel", "layer_simd_noisy", "layer_simd_quiet"):
        real = getattr(K, name)

        def spy(*a, _real=real, _name=name):
            used.append(_name)
            return _real(*a)
        monkeypatch.setattr(K, name, spy)
    return used


@pytest.mark.parametrize("n, noisy, path", [
    (12, True, "layer_simd_noisy"), (29, True, "layer_simd_noisy"), (32, True, "layer_simd_noisy"),
    (33, True, "layer_kernel"), (64, False, "layer_simd_quiet"), (57, False, "layer_simd_quiet"),
    (65, False, "layer_kernel"), (3, False, "layer_simd_quiet"),
])
def test_widest_simd_layers_and_the_generic_fallback_equal_the_reference(monkeypatch, n, noisy, path):
    """kills fastpath._simd_width / SIMD_WIDTHS mutants and width-8 layout slips: layers at the
    widest SIMD accumulator (32 neurons with noise, 64 without) and just past it (the generic
    kernel) give the numpy reference's spikes, row counts and output count; the spy shows which
    kernel ran, so the fallback is exercised, not assumed."""
    rng = np.random.default_rng(n)
    spikes = rng.random((2, 37, 130)) < 0.2          # odd step count, rows past two 64-row words
    wd = rng.normal(0.0, 0.6, (130, n))
    var = (0.1 * wd) ** 2 if noisy else None
    key = 12345 if noisy else None
    var0 = np.full(n, 1e-3) if noisy else None
    theta = 1.0 + 0.05 * rng.standard_normal(n)
    used = _spy_paths(monkeypatch)
    fast = fastpath.layer_forward(spikes, wd, var, key, var0, NeuronParams(), theta=theta)
    assert used == [path]
    ref = fastpath.layer_forward(spikes, wd, var, key, var0, NeuronParams(), theta=theta, use_kernel=False)
    assert fast[0].flags.c_contiguous and fast[0].shape == (2, 37, n)
    assert np.array_equal(fast[0], ref[0]) and np.array_equal(fast[1], ref[1]) and fast[2] == ref[2]
    assert 0 < fast[2] < fast[0].size


@pytest.mark.parametrize("use_kernel", [True, False])
def test_uneven_step_pairs_hand_case(use_kernel):
    """kills the zero-row padding of _kernels._scan_pair (the shorter step of a pair gets
    extra additions of the pad row: if that row is not all zeros, the short step's sum grows)
    and a row-order slip.  tau = 1 step, theta = 1, no refractory (ref_scale 0):
    p_t = e^-1 p_(t-1) + z_t.  Step 0: row 0 (0.6) -> p = 0.6; step 1: rows 1..9 (0.5 + eight
    zeros) -> p = 0.6/e + 0.5 = 0.72; step 2: rows 0, 1 -> p = 0.72/e + 1.1 = 1.37 >= 1
    fires; step 3: nothing -> p = 0.50.  Spikes [no, no, yes, no], by hand."""
    spikes = np.zeros((1, 4, 64), bool)
    spikes[0, 0, 0] = True
    spikes[0, 1, 1:10] = True
    spikes[0, 2, [0, 1]] = True
    wd = np.zeros((64, 1))
    wd[0, 0], wd[1, 0] = 0.6, 0.5
    params = NeuronParams(tau_steps=1.0, theta=1.0, ref_scale=0.0)
    s, rc, n = fastpath.layer_forward(spikes, wd, None, None, None, params, use_kernel=use_kernel)
    assert s[0, :, 0].tolist() == [False, False, True, False] and n == 1
    assert rc[:10].tolist() == [2, 2] + [1] * 8 and rc[10:].sum() == 0


def test_wait_warm_joins_the_chip_warm_up_thread(monkeypatch):
    """kills fastpath.wait_warm mutants (no join, wrong result): building a chip starts the
    warm-up thread (here a stand-in warm() that takes 0.3 s); wait_warm() returns only once
    that thread has ended, with the kernels marked ready."""
    import threading
    import time

    from sim_backend.chip import VirtualChip

    ready = threading.Event()

    def slow_warm():
        time.sleep(0.3)
        ready.set()
        return True
    monkeypatch.setattr(fastpath, "_WARM", ready)
    monkeypatch.setattr(fastpath, "_WARMER", None)
    monkeypatch.setattr(fastpath, "warm", slow_warm)
    VirtualChip(chip_seed=0, fidelity="typical")
    assert fastpath._WARMER is not None
    assert fastpath.wait_warm(60.0) is True
    assert not fastpath._WARMER.is_alive()


_GUARD_PAGE = """
import ctypes, mmap, sys
import numpy as np
from sim_backend.physics import fastpath
page = mmap.PAGESIZE
buf = mmap.mmap(-1, 2 * page)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
assert ctypes.CDLL(None).mprotect(ctypes.c_void_p(addr + page), ctypes.c_size_t(page), 0) == 0
r_, t_ = int(sys.argv[1]), int(sys.argv[2])
arr = np.frombuffer(buf, np.uint8, count=page)
spikes = arr[page - t_ * r_:].reshape(1, t_, r_)       # its last byte is the last before the guard
spikes[:] = 0
spikes[:, :, 0] = 1
s, rc, n = fastpath.layer_forward(spikes.view(bool), np.full((r_, 2), 0.3), None, None, None)
print(int(rc[0]), int(rc[1:].sum()))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="mprotect guard page: POSIX only")
@pytest.mark.parametrize("r_, t_", [(100, 3), (100, 4), (1, 2), (130, 5)])
def test_partial_last_row_word_reads_no_byte_past_the_array(r_, t_):
    """kills _kernels._word_masks mutants reading a partial last 64-row word in full (bytes past
    a row word's valid rows weigh nothing, so only memory safety shows it): the spike tensor
    ends right before a PROT_NONE guard page; a 64-byte read of its last, partial word would
    fault.  Odd and even step counts: the last step is step A or step B of its pair.  Hand
    count: row 0 active at every step, no other row."""
    out = subprocess.run([sys.executable, "-c", _GUARD_PAGE, str(r_), str(t_)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(t_), "0"]


_IR_PROBE = """
import numpy as np
from sim_backend.physics import jit
jit.OPTIONS["cache"] = False          # numba refuses to show the IR of code loaded from its cache
from sim_backend.physics import _kernels as K, fastpath
rng = np.random.default_rng(0)
wd = rng.normal(0, 1, (128, 12))
fastpath.layer_forward(rng.random((2, 6, 128)) < 0.2, wd, wd ** 2 * 0.01, 5, np.full(12, 1e-3))
f = K.layer_simd_noisy
ir = f.inspect_llvm(f.signatures[0])
print(ir.count("fadd <8 x double>"), ir.count("llvm.sqrt.v16f64"), ir.count("icmp ne <64 x i8>"))
"""


def test_chip_kernel_ir_keeps_the_vector_operations():
    """kills a silent fall back to scalar code (a numba or llvmlite change in how the intrinsics
    lower, or an edit that routes the chip's layer elsewhere): the LLVM IR of the kernel the
    chip's 12-neuron noisy layer runs holds the 8-lane row additions (3 blocks x 2 steps), the
    16-lane square root and the 64-byte row-mask compare."""
    out = subprocess.run([sys.executable, "-c", _IR_PROBE], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    n_add, n_sqrt, n_mask = (int(v) for v in out.stdout.split())
    assert n_add >= 6 and n_sqrt >= 1 and n_mask >= 2
