"""Fast-path details the mutation run found unchecked (issue 18, sim_backend/physics/fastpath.py).

Expected values are independent of the module: the counter-based noise stream is SplitMix64
(Steele, Lea & Flood 2014; Vigna's reference C code), checked against a pure-Python
SplitMix64 written here and against its published first outputs for seed 0; the noise table
is the inverse normal CDF at the 4096 quantile midpoints (its symmetry and unit variance are
the docstring's); the dispatch is checked by counting calls into the compiled kernels; dtypes
and hand cases come from the docstrings.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.stats import norm

from sim_backend.physics import fastpath, jit
from sim_backend.physics.neuron import NeuronParams

needs_kernel = pytest.mark.skipif(not fastpath.have_kernel(), reason=f"numba path off: {jit.reason()}")

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64_mix(z: int) -> int:
    """SplitMix64's output function, on Python ints (Vigna's reference code)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def test_pure_python_splitmix64_matches_its_published_outputs():
    """The reference the next test uses: SplitMix64 seeded with 0 starts
    0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F."""
    assert [splitmix64_mix(k * GOLDEN & M64) for k in (1, 2, 3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("key", [GOLDEN, 0, 2 ** 64 - 1, 12345678901234567])
def test_noise_indices_are_16_bit_chunks_of_splitmix64(key):
    """Kills fastpath._mix64 mutants _7/_8/_12/_13/_15/_16/_18 (shifts, multipliers) and
    noise_indices_for _2/_3/_17/_20/_21/_25/_27/_29 (counter, chunk selection, dtype, shape).
    Element e is chunk (e % 4), low 16 bits first, of mix(key + (e // 4) * golden)."""
    shape = (3, 2, 5)
    got = fastpath.noise_indices_for(key, shape)
    assert got.dtype == np.uint16 and got.shape == shape
    want = [(splitmix64_mix((key + (e // 4) * GOLDEN) & M64) >> (16 * (e % 4))) & 0xFFFF
            for e in range(30)]
    assert got.ravel().tolist() == want
    if key == GOLDEN:       # seed-0 SplitMix64's first output, low chunk first
        assert got.ravel()[:4].tolist() == [0xCDAF, 0x7B1D, 0xA839, 0xE220]


def test_noise_table_is_the_inverse_normal_at_the_quantile_midpoints():
    """Kills fastpath._noise_table mutants _2/_5/_9 (quantiles outside (0, 1), one entry,
    only the lower half).  The table is computed at import, so the function is called here:
    4096 entries, ascending, odd-symmetric, unit mean square, equal to Phi^-1((i + 1/2)/4096)
    rescaled by one common factor; the outermost entry is Phi^-1(1 - 1/8192) = 3.67 (the
    docstring's "+-3.5 sigma" rounds it) over a mean square a hair below 1."""
    t = fastpath._noise_table()
    assert t.shape == (4096,) and t.flags.c_contiguous
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, -t[::-1], rtol=0, atol=1e-12)
    assert np.mean(t * t) == pytest.approx(1.0, rel=1e-12)
    q = (np.arange(4096) + 0.5) / 4096
    ratio = t / norm.ppf(q)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    assert 3.66 < t[-1] < 3.68
    np.testing.assert_array_equal(t, fastpath.NOISE_TABLE)


def test_noise_keys_cover_64_bits():
    """Kills fastpath.noise_key mutant _15: a key is 63 random bits doubled plus a random low
    bit, so keys are odd and even and reach above 2^63."""
    rng = np.random.default_rng(0)
    keys = [fastpath.noise_key(rng) for _ in range(200)]
    assert all(0 <= k < 2 ** 64 for k in keys)
    assert any(k % 2 for k in keys) and any(k % 2 == 0 for k in keys)
    assert any(k >= 2 ** 63 for k in keys)


@needs_kernel
def test_warm_compiles_both_kernels_from_a_cold_start(monkeypatch):
    """Kills fastpath.warm mutants _18/_25/_26/_44 (the warm-up calls themselves failing):
    with the ready flag cleared warm() runs both kernels once and reports ready."""
    monkeypatch.setattr(fastpath, "_WARM", threading.Event())
    assert fastpath.warm() is True
    assert fastpath._WARM.is_set()
    from sim_backend.physics import _kernels

    # the kernels the chip (12 noisy neurons) and the hybrid runner (64-neuron blocks) use:
    # the SIMD layer kernels since issue 17's chip work (fastpath.SIMD_WIDTHS), and the SRM one
    assert _kernels.layer_simd_noisy.signatures and _kernels.layer_simd_quiet.signatures
    assert _kernels.srm_kernel.signatures


@needs_kernel
def test_prewarm_starts_one_named_background_warm_up(monkeypatch):
    """Kills fastpath.prewarm mutants _4 (the thread runs nothing) and _11 (the thread's name:
    tools/mutation.py waits for threads named "snnbench-*" before forking, decision 0013)."""
    monkeypatch.setattr(fastpath, "_WARM", threading.Event())
    monkeypatch.setattr(fastpath, "_WARMER", None)
    fastpath.prewarm()
    t = fastpath._WARMER
    assert t is not None and t.name == "snnbench-kernel-warm" and t.daemon
    t.join(120)
    assert fastpath._WARM.is_set()
    fastpath.prewarm()                  # once per process
    assert fastpath._WARMER is t


@needs_kernel
def test_the_compiled_kernels_are_what_runs(monkeypatch):
    """Kills fastpath.layer_forward mutant _53 and srm_spikes _2 (k = None: the numpy
    reference always runs - the same numbers, 10-100x slower; decision 0015)."""
    from sim_backend.physics import _kernels

    calls = []
    for name in ("layer_simd_quiet", "layer_kernel", "srm_kernel"):
        real = getattr(_kernels, name)
        monkeypatch.setattr(_kernels, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
    x = np.zeros((1, 3, 8), bool)
    x[0, 0, 1] = True
    want = ["layer_simd_quiet", "layer_kernel", "srm_kernel"]
    fastpath.layer_forward(x, np.ones((8, 2)), None, None, None)      # narrow: the SIMD kernel
    fastpath.layer_forward(x, np.ones((8, 65)), None, None, None)     # > 64 neurons: the generic one
    fastpath.srm_spikes(np.ones((1, 2, 2)))
    assert calls == want
    fastpath.layer_forward(x, np.ones((8, 2)), None, None, None, use_kernel=False)
    fastpath.layer_forward(x, np.ones((8, 65)), None, None, None, use_kernel=False)
    fastpath.srm_spikes(np.ones((1, 2, 2)), use_kernel=False)
    assert calls == want


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.uint8])
def test_layer_forward_takes_0_1_spikes_of_any_dtype(use_kernel, dtype):
    """Kills fastpath.layer_forward mutants _4 (the bool test inverted: int64/float spikes are
    then viewed as bytes) and _7, and _159 (row counts not int64).  Hand case: rows 0 and 2
    carry spikes at steps 0 and 1, weights 0.6 each -> z = 1.2 at step 0 (tau = 1 step):
    one output spike at step 0; row counts (2, 0, 2, 0, 0)."""
    if use_kernel and not fastpath.have_kernel():
        pytest.skip("numba path off")
    x = np.zeros((1, 3, 5), dtype=dtype)
    x[0, :2, 0] = 1
    x[0, :2, 2] = 1
    wd = np.zeros((5, 1))
    wd[[0, 2], 0] = 0.6
    s, rc, n = fastpath.layer_forward(x, wd, None, None, None, NeuronParams(tau_steps=1.0),
                                      use_kernel=use_kernel)
    assert s.dtype == bool and s[0, :, 0].tolist() == [True, False, False]
    assert rc.dtype == np.int64 and rc.tolist() == [2, 0, 2, 0, 0]
    assert n == 1


def test_srm_spikes_of_a_2d_input_are_bool():
    """Kills fastpath.srm_spikes mutant _13 (the fallback returns srm_forward's float 0/1
    instead of bool).  (T, N) input goes through the reference; tau = 1 step, theta = 1:
    z = 1 fires at step 0, the refractory kernel blocks step 1."""
    s = fastpath.srm_spikes(np.array([[1.0], [1.0]]), NeuronParams(tau_steps=1.0))
    assert s.dtype == bool and s[:, 0].tolist() == [True, False]


@needs_kernel
def test_noise_key_zero_is_a_key_like_any_other():
    """Kills fastpath.layer_forward mutant _108 (``key or 1``: key 0 became key 1 on the
    compiled path only).  The compiled and reference paths must agree for key 0 too."""
    rng = np.random.default_rng(2)
    x = rng.random((2, 40, 16)) < 0.3
    wd = rng.normal(0.2, 0.5, (16, 4))
    var = (0.3 * wd) ** 2
    a = fastpath.layer_forward(x, wd, var, 0, np.full(4, 0.05))
    b = fastpath.layer_forward(x, wd, var, 0, np.full(4, 0.05), use_kernel=False)
    c = fastpath.layer_forward(x, wd, var, 1, np.full(4, 0.05), use_kernel=False)
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(b[0], c[0])          # keys 0 and 1 give different noise here


@needs_kernel
def test_single_precision_neuron_constants_do_not_recompile_the_kernels():
    """Kills fastpath._neuron_consts mutant _23 (per-neuron tau kept in its own dtype: float32
    time constants then give float32 decay factors, and numba compiles a second machine-code
    specialisation of both kernels in the middle of a RUN - seconds of CPU that warm() exists
    to keep out of the first inference, decision 0015).  The constants are float64 whatever
    the dtype of theta / tau_steps, so the warmed-up kernels are reused."""
    from sim_backend.physics import _kernels

    fastpath.warm()
    z, x8, w = np.ones((1, 8, 2)), np.ones((1, 8, 8), bool), np.ones((8, 2))
    fastpath.srm_spikes(z, theta=np.ones(2), tau_steps=np.full(2, 3.0))
    fastpath.layer_forward(x8, w, None, None, None, theta=np.ones(2), tau_steps=np.full(2, 3.0))
    n_srm, n_layer = len(_kernels.srm_kernel.signatures), len(_kernels.layer_kernel.signatures)
    for dt in (np.float32, np.int64):
        s32 = fastpath.srm_spikes(z, theta=np.ones(2, dt), tau_steps=np.full(2, 3, dt))
        fastpath.layer_forward(x8, w, None, None, None, theta=np.ones(2, dt), tau_steps=np.full(2, 3, dt))
        # z = 1 per step, tau = 3: p[n] = (1/3)(1 - e^(-(n+1)/3)) / (1 - e^(-1/3)): 0.954 at
        # step 4, 1.017 at step 5 (fires), then the refractory kernel holds it down
        assert s32[0, :, 0].tolist() == [False] * 5 + [True, False, False]
    assert len(_kernels.srm_kernel.signatures) == n_srm
    assert len(_kernels.layer_kernel.signatures) == n_layer


@needs_kernel
@pytest.mark.parametrize("tau_ref", [0.5, 3.0])
def test_the_compiled_neurons_use_the_refractory_time_constant(tau_ref):
    """Kills fastpath._neuron_consts mutant _38 (refractory decay exp(-tau_ref) instead of
    exp(-1/tau_ref): the same at the default tau_ref = 1 step, so every default-parameter test
    passes). The compiled path must give neuron.srm_forward's spikes (the numpy reference,
    which computes its own decay) at tau_ref != 1."""
    from sim_backend.physics.neuron import srm_forward

    p = NeuronParams(tau_ref_steps=tau_ref, ref_scale=0.6)
    z = np.random.default_rng(18).uniform(0.0, 3.0, size=(4, 60, 5))
    want = srm_forward(z, p).astype(bool)
    assert 20 < want.sum() < want.size                          # spikes, refractory periods active
    assert np.array_equal(fastpath.srm_spikes(z, p), want)
