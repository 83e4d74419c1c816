"""Software network fast path (issue 17 item 2, decision 0017).

Must hold: the compiled fast path gives spikes identical to the plain-numpy reference
definition (ascending-order float64 sums, then the shared SRM neuron) on random networks and
inputs; forcing the fast path off gives the same predictions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bench.network import kernel
from bench.network.model import Dense, Network, predict
from bench.network.modelfile import load_model
from sim_backend.physics.neuron import NeuronParams

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _default_jit():
    kernel.set_jit(None)
    yield
    kernel.set_jit(None)


def test_the_compiled_path_is_in_use():
    """numba is a dependency: the tests below compare the compiled path, not numpy with itself."""
    assert kernel.have_jit(), kernel.jit_status()
    assert kernel.jit_status()["path"] == "numba"


def _reference_stack(x, weights, params, theta=None, tau=None, dtype=np.float64):
    outs, h = [], x
    for k, (w, p) in enumerate(zip(weights, params)):
        h = kernel.reference_layer(h, w, p, theta=theta if k == 0 else None, tau_steps=tau if k == 0 else None,
                                   dtype=dtype)
        outs.append(h)
    return outs


@st.composite
def networks(draw):
    n_layers = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 40))] + [draw(st.integers(1, 300)) for _ in range(n_layers)]
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    weights = [rng.normal(0.0, scale, (n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    params = [NeuronParams(tau_steps=draw(st.sampled_from([1.0, 2.5, 10.0])),
                           tau_ref_steps=draw(st.sampled_from([0.5, 1.0, 3.0])),
                           theta=draw(st.sampled_from([0.2, 1.0])),
                           ref_scale=draw(st.sampled_from([0.0, 1.0, 10.0])),
                           clamp_low=draw(st.sampled_from([-2.0, 0.0])),
                           clamp_high=draw(st.sampled_from([1.0, 5.0])))
              for _ in range(n_layers)]
    b, t = draw(st.integers(1, 4)), draw(st.integers(1, 25))
    x = rng.random((b, t, sizes[0])) < draw(st.sampled_from([0.02, 0.1, 0.5, 1.0]))
    mismatch = draw(st.booleans())
    theta = rng.uniform(0.1, 2.0, sizes[1]) if mismatch else None
    tau = rng.uniform(1.0, 20.0, sizes[1]) if mismatch else None
    return x, weights, params, theta, tau


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=networks(), dtype=st.sampled_from([np.float64, np.float32]))
def test_property_fast_path_spikes_equal_the_reference(case, dtype):
    """Each precision against its own reference (float32: weights rounded, float32 arithmetic)."""
    x, weights, params, theta, tau = case
    ref = _reference_stack(x, weights, params, theta, tau, dtype)
    # layer by layer, with per-neuron mismatch on the first layer
    h = x
    for k, (w, p) in enumerate(zip(weights, params)):
        got = kernel.fast_layer(h, w, p, theta=theta if k == 0 else None, tau_steps=tau if k == 0 else None,
                                dtype=dtype)
        assert got.dtype == bool and got.shape == ref[k].shape
        np.testing.assert_array_equal(got, ref[k])
        h = ref[k]
    if theta is None:
        # the whole stack prepared once, as a batch and one sample at a time
        layers = [Dense(w, neuron=p) for w, p in zip(weights, params)]
        fast = kernel.FastNetwork(layers, dtype)
        for got, want in zip(fast.forward(x), ref):
            np.testing.assert_array_equal(got, want)
        for i in range(x.shape[0]):
            for got, want in zip(fast.forward(x[i:i + 1]), ref):
                np.testing.assert_array_equal(got[0], want[i])


def test_summation_order_is_ascending_input_order():
    """Hand-derived: with w = [1, 2^-53, 2^-53] the ascending sum rounds to 1.0 twice
    ((1 + 2^-53) ties to even), while any order adding the small terms first gives 1 + 2^-52.
    With tau = 1 the first-step membrane potential is z itself, so a threshold of 1 + 2^-52
    tells the two orders apart: the definition (ascending) must not spike."""
    eps = 2.0 ** -53
    w = np.array([[1.0, eps, eps]])
    assert (1.0 + eps) + eps == 1.0 and 1.0 + (eps + eps) == 1.0 + 2 * eps   # the arithmetic premise
    p = NeuronParams(tau_steps=1.0, theta=1.0 + 2 * eps, clamp_high=5.0)
    x = np.ones((1, 1, 3), bool)
    assert not kernel.reference_layer(x, w, p).any()
    assert not kernel.fast_layer(x, w, p).any()
    # reversed input order: now the small terms come first and the neuron must spike
    wr = w[:, ::-1].copy()
    assert kernel.reference_layer(x, wr, p).all()
    assert kernel.fast_layer(x, wr, p).all()


@pytest.mark.parametrize("n_small", [3, 4, 7, 8, 9, 12, 13, 16, 20, 27])
def test_ascending_order_holds_across_the_kernels_row_groups(n_small):
    """Input 0 has weight 1, inputs 1..n have 2^-53 each: in ascending order every small term
    rounds away (z == 1.0 exactly); summing any two small terms first (as a kernel that
    pre-adds its row groups would) gives z > 1.  Threshold 1 + 2^-52 (tau = 1: u = z) tells
    them apart, whichever of the kernel's 8-, 4- and 1-row passes the inputs fall into."""
    eps = 2.0 ** -53
    w = np.array([[1.0] + [eps] * n_small])
    p = NeuronParams(tau_steps=1.0, theta=1.0 + 2 * eps)
    x = np.ones((3, 1, n_small + 1), bool)          # one step: u = z, no PSP carried over
    assert not kernel.reference_layer(x, w, p).any()
    assert not kernel.fast_layer(x, w, p).any()


def test_blocks_padding_and_input_words_beyond_one_tile():
    """270 neurons (three 128-neuron tiles, the last one padded) and 13 inputs (not a whole
    64-bit word): every neuron gets its own hand-computable input."""
    n_out, n_in = 270, 13
    w = np.zeros((n_out, n_in))
    w[np.arange(n_out), np.arange(n_out) % n_in] = 2.0      # neuron j listens to input j % 13
    x = np.zeros((1, 4, n_in), bool)
    x[0, 1, 12] = True                                      # only input 12 fires, at step 1
    p = NeuronParams(tau_steps=1.0, theta=1.0)               # z = 2 >= 1: spike at once
    got = kernel.fast_layer(x, w, p)
    want = np.zeros((1, 4, n_out), bool)
    want[0, 1, np.arange(n_out) % n_in == 12] = True
    np.testing.assert_array_equal(got, want)


def test_dense_forward_layouts_and_non_binary_inputs():
    rng = np.random.default_rng(3)
    layer = Dense(rng.normal(0, 1.5, (20, 16)), name="t")
    x = rng.random((2, 30, 16)) < 0.3
    ref = kernel.reference_layer(x, layer.weight, layer.neuron).astype(np.float64)
    np.testing.assert_array_equal(layer.forward(x), ref)
    np.testing.assert_array_equal(layer.forward(x.astype(np.float64)), ref)     # 0/1 floats
    np.testing.assert_array_equal(layer.forward(x[1]), ref[1])                    # (T, N)
    s, state = layer.forward(x, keep_state=True)                                  # training path
    np.testing.assert_array_equal(s, ref)
    # graded (non-binary) inputs are not spikes: they go through the dense product
    g = x * 0.5
    from sim_backend.physics.neuron import srm_forward
    np.testing.assert_array_equal(layer.forward(g), srm_forward(g @ layer.weight.T, layer.neuron))


def test_forced_off_gives_the_same_predictions():
    net = load_model(ROOT / "bench" / "models" / "reference.h5")
    x = np.random.default_rng(7).random((6, net.input.steps, net.sizes[0])) < 0.05
    fast_out = net.forward(x)
    fast_pred = net.predict(x)
    kernel.set_jit(False)
    assert kernel.jit_status()["path"] == "numpy"
    slow_out = net.forward(x)
    slow_pred = net.predict(x)
    kernel.set_jit(None)
    np.testing.assert_array_equal(fast_pred, slow_pred)
    for a, b in zip(fast_out, slow_out):
        np.testing.assert_array_equal(a, b)
    assert list(fast_pred) == list(predict(fast_out[-1]))
    assert sum(float(o.sum()) for o in fast_out) > 0                 # the network does spike


def test_the_project_kernel_switch_selects_the_numpy_path():
    """SNNBENCH_KERNEL=numpy (decision 0015's one switch) turns the network fast path off too,
    and the forward pass still gives the reference's spikes."""
    code = ("import json, numpy as np; from bench.network import kernel; "
            "from bench.network.model import Network; "
            "net = Network.create((16, 9, 3), seed=1, init_scale=3.0); "
            "x = np.random.default_rng(2).random((2, 30, 16)) < 0.3; "
            "out = net.forward(x); "
            "print(json.dumps({'status': kernel.jit_status(), "
            "'spikes': [o.astype(int).tolist() for o in out]}))")
    env = dict(os.environ, SNNBENCH_KERNEL="numpy")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=ROOT, check=True)
    got = json.loads(res.stdout)
    assert got["status"]["path"] == "numpy" and "SNNBENCH_KERNEL" in got["status"]["reason"]
    net = Network.create((16, 9, 3), seed=1, init_scale=3.0)
    x = np.random.default_rng(2).random((2, 30, 16)) < 0.3
    want = _reference_stack(x, [l.weight for l in net.layers], [l.neuron for l in net.layers])
    for g, w in zip(got["spikes"], want):
        np.testing.assert_array_equal(np.array(g, bool), w)


def test_float32_reference_is_float32_arithmetic():
    """Hand-derived: 1 + 2^-24 is not a float32 (it rounds to 1.0f) but is a float64.  With
    w = [1, 2^-24, 2^-24], tau = 1 and theta just above 1 in float32, the float64 definition
    spikes (z = 1 + 2^-23) and the float32 one does not (z rounds to 1.0f after each add)."""
    e = 2.0 ** -24
    w = np.array([[1.0, e, e]])
    assert np.float32(np.float32(1.0) + np.float32(e)) == np.float32(1.0)
    p = NeuronParams(tau_steps=1.0, theta=1.0 + 2.0 ** -23)           # exactly representable in both
    x = np.ones((1, 1, 3), bool)
    assert kernel.reference_layer(x, w, p).all() and kernel.fast_layer(x, w, p).all()
    assert not kernel.reference_layer(x, w, p, dtype=np.float32).any()
    assert not kernel.fast_layer(x, w, p, dtype=np.float32).any()
    with pytest.raises(ValueError, match="float64 or float32"):
        kernel.FastNetwork([Dense(w)], np.float16)


def test_network_reuses_its_prepared_layers_until_a_weight_changes():
    """Network.forward keeps the fast path's preparation between calls; an in-place change of a
    weight array (as training and benchmarks do) must be seen at the next call."""
    import copy
    import pickle

    net = Network.create((16, 24, 5), seed=2, init_scale=3.0)
    x = np.random.default_rng(4).random((2, 40, 16)) < 0.3
    first = net.forward(x)
    fn = net.fast()
    assert net.fast() is fn                                   # reused while nothing changed
    net.layers[0].weight[:, 3] += 0.75                        # in place
    after = net.forward(x)
    assert net.fast() is not fn
    want = _reference_stack(x, [l.weight for l in net.layers], [l.neuron for l in net.layers])
    for got, ref in zip(after, want):
        np.testing.assert_array_equal(got.astype(bool), ref)
    assert any(not np.array_equal(a, b) for a, b in zip(first, after))
    assert "_fast_cache" not in pickle.loads(pickle.dumps(net)).__dict__
    assert "_fast_cache" not in copy.deepcopy(net).__dict__


def test_any_nonzero_value_is_one_spike():
    """uint8 / int / float inputs with values other than 1 are spikes wherever non-zero (the
    event scan must not count a byte of value 2 or 255 twice or read past its list)."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 1.0, (40, 24))
    x = rng.random((3, 20, 24)) < 0.3
    want = kernel.reference_layer(x, w)
    for v in (x.astype(np.uint8) * 255, x.astype(np.uint8) * 2, x.astype(np.int64) * -7, x * 0.5):
        np.testing.assert_array_equal(kernel.fast_layer(v, w), want)
        np.testing.assert_array_equal(kernel.FastNetwork([Dense(w)]).forward(v)[0], want)


@pytest.mark.slow          # compiles the kernel from an empty cache: 10-40 s on the shared machine
def test_network_kernel_compiles_and_runs_without_a_c_compiler(tmp_path):
    """Issue 17 item 3 for the network kernel: numba compiles it with no C compiler on the
    machine (PATH with no cc/gcc/clang, CC naming a missing program, an empty numba cache), and
    the compiled spikes equal the numpy definition's."""
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SNNBENCH_KERNEL", "NUMBA_CACHE_DIR")}
    env.update(PATH=str(bindir), CC=str(tmp_path / "no-such-cc"), SNNBENCH_CACHE=str(tmp_path / "cache"))
    assert all(shutil.which(c, path=env["PATH"]) is None for c in ("gcc", "cc", "clang"))
    code = ("import json, numpy as np\n"
            "from bench.network import kernel\n"
            "rng = np.random.default_rng(3)\n"
            "x = rng.random((2, 40, 30)) < 0.2\n"
            "w = rng.normal(0, 1.5, (70, 30))\n"
            "a = kernel.fast_layer(x, w)\n"
            "b = kernel.reference_layer(x, w)\n"
            "print(json.dumps({'status': kernel.jit_status(), 'same': bool(np.array_equal(a, b)),"
            " 'spikes': int(a.sum())}))\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout)
    assert got["status"]["path"] == "numba" and got["same"] and got["spikes"] > 0
    assert any((tmp_path / "cache" / "numba").rglob("*.nbi"))      # compiled here, cached there
