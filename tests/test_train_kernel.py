"""The compiled training path (bench.network.train_kernel, issue 17 item 5) against the numpy
reference (bench.network.train):

- forward: identical spikes and bit-identical membrane potentials on random networks and
  inputs (ideal, per-neuron mismatch, hardware-aware noise);
- backward: dW within the summation-order bound, input gradients identical;
- Adam: bit-identical parameters and moments;
- a short training run gives the same history and (to rounding) the same weights;
- the fallback switch and a broken numba both leave the numpy path in use.

Expected values come from the numpy reference (a second implementation), whose input current
is checked against a hand-written ascending sum in test_reference_input_current_order.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.network import train as T
from bench.network import train_kernel as K
from bench.network.model import Dense, InputConfig, Network
from sim_backend.physics.neuron import NeuronParams

pytestmark = pytest.mark.skipif(K.kernels() is None, reason="numba kernel unavailable")

EPS = np.finfo(np.float64).eps


def _net(rng: np.random.Generator, sizes: list[int], scale: float) -> Network:
    layers = [Dense(rng.normal(0.3 * scale, scale, (n_out, n_in)), name=f"l{i}")
              for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))]
    # a 1-polarity, 1-row "sensor" with n_in pixels and no pooling: the input size is free
    inp = InputConfig(sensor_width=sizes[0], sensor_height=1, polarities=1, padding=0, pool=1)
    return Network(layers, input=inp)


net_cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2 ** 32 - 1),
    "sizes": st.lists(st.integers(1, 24), min_size=2, max_size=4),
    "batch": st.integers(1, 3),
    "steps": st.integers(1, 40),
    "rate": st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    "scale": st.sampled_from([0.3, 1.0, 3.0]),
    "mismatch": st.booleans(),
    "noise": st.sampled_from([0.0, 0.05]),
})


def _case(c):
    rng = np.random.default_rng(c["seed"])
    net = _net(rng, c["sizes"], c["scale"])
    x = (rng.random((c["batch"], c["steps"], c["sizes"][0])) < c["rate"]).astype(np.float64)
    labels = rng.integers(0, c["sizes"][-1], c["batch"])
    pert = T.ideal(net)
    if c["mismatch"]:
        for i, layer in enumerate(net.layers):
            pert.theta[i] = rng.uniform(0.8, 1.2, layer.n_out)
            pert.tau[i] = rng.uniform(5.0, 15.0, layer.n_out)
    pert.noise = [c["noise"]] * len(net.layers)
    return net, x, labels, pert


def _with_rng(pert: T.Perturbation, seed: int) -> T.Perturbation:
    return T.Perturbation(pert.weights, pert.theta, pert.tau, pert.noise, np.random.default_rng(seed))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net_cases, st.booleans(), st.sampled_from(T.SURROGATES))
def test_fast_forward_and_backward_match_the_reference(c, reset_grad, surrogate):
    net, x, labels, pert = _case(c)
    ref = T.network_forward(net, x, _with_rng(pert, 7), kernel="numpy")
    fast = T.network_forward(net, x, _with_rng(pert, 7), kernel="numba")
    for r, f in zip(ref, fast):
        assert isinstance(f, K.FastCache)
        np.testing.assert_array_equal(f.s, r.s)             # identical spikes
        np.testing.assert_array_equal(f.u, r.state.u)       # same arithmetic, same order
        np.testing.assert_array_equal(f.mask, (r.state.x > 0.0) & (r.state.x < 5.0))
    _, g = T.spike_count_loss(ref[-1].s, labels)
    g_ref = T.network_backward(ref, g, surrogate=surrogate, width=0.7, reset_grad=reset_grad)
    g_fast = T.network_backward(fast, g, surrogate=surrogate, width=0.7, reset_grad=reset_grad)
    # per layer: dz is the reference's bit for bit, so dW differs only by summation order:
    # |error| <= (number of terms) * eps * sum |terms|
    for i, (gr, gf) in enumerate(zip(g_ref, g_fast)):
        dz = T.neuron_backward(ref[i], _grad_into(ref, g, i, surrogate, reset_grad), surrogate=surrogate,
                               width=0.7, reset_grad=reset_grad)
        b, t, n = dz.shape
        bound = (np.abs(dz).reshape(b * t, n).T @ ref[i].s_in.reshape(b * t, -1)) * (b * t + 1) * EPS
        assert np.all(np.abs(gf - gr) <= bound + 1e-300), f"layer {i}"
        np.testing.assert_allclose(gf, gr, rtol=1e-10, atol=1e-12 * max(np.abs(gr).max(), 1e-300))


def _grad_into(caches, g_out, i, surrogate, reset_grad):
    """dL/ds of layer i by the reference (through the layers above it)."""
    g = g_out
    for j in range(len(caches) - 1, i, -1):
        _, g = T.layer_backward(caches[j], g, surrogate=surrogate, width=0.7, reset_grad=reset_grad)
    return g


@settings(max_examples=30, deadline=None)
@given(net_cases)
def test_fast_input_gradient_is_the_reference_bit_for_bit(c):
    net, x, labels, pert = _case(c)
    ref = T.network_forward(net, x, _with_rng(pert, 3), kernel="numpy")[-1]
    fast = T.network_forward(net, x, _with_rng(pert, 3), kernel="numba")[-1]
    _, g = T.spike_count_loss(ref.s, labels)
    _, gi_ref = T.layer_backward(ref, g)
    sg = T.surrogate_grad(fast.u - fast.theta)
    _, gi_fast = K.layer_backward(K.kernels(), fast, g, sg, need_input_grad=True, reset_grad=False)
    np.testing.assert_array_equal(gi_fast, gi_ref)


def test_reference_input_current_order():
    """z is the ascending sum over active inputs (hand-written loop), not a BLAS product: with
    these weights the order changes the last bits, so a different order fails the equality."""
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, (5, 300)) * 10.0 ** rng.integers(-8, 3, (5, 300))
    s = (rng.random((2, 4, 300)) < 0.5).astype(np.float64)
    z = T.input_current(s, w)
    for b in range(2):
        for t in range(4):
            acc = np.zeros(5)
            for i in range(300):
                if s[b, t, i]:
                    acc = acc + w[:, i]
            np.testing.assert_array_equal(z[b, t], acc)


def test_non_binary_input_uses_the_reference():
    rng = np.random.default_rng(1)
    net = _net(rng, [6, 4, 3], 1.0)
    x = rng.random((2, 10, 6)) * (rng.random((2, 10, 6)) < 0.5)
    ref = T.network_forward(net, x, kernel="numpy")
    fast = T.network_forward(net, x, kernel="numba")
    assert isinstance(fast[0], T.LayerCache)        # graded input: BLAS reference path
    assert isinstance(fast[1], K.FastCache)         # spikes again from the second layer on
    for r, f in zip(ref, fast):
        np.testing.assert_array_equal(f.s, r.s)
    np.testing.assert_allclose(fast[0].state.u, ref[0].state.u)


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_fused_adam_is_the_reference_bit_for_bit(l2):
    rng = np.random.default_rng(2)
    p0 = [rng.normal(0, 2, (7, 5)), rng.normal(0, 2, (3, 7))]
    clamps = [1.5, 3.0]
    pr, pf = [p.copy() for p in p0], [p.copy() for p in p0]
    ref = T.Adam(pr, lr=0.05, l2=l2, kernel="numpy")
    fast = T.Adam(pf, lr=0.05, l2=l2, kernel="numba")
    for _ in range(5):
        grads = [rng.normal(0, 1, p.shape) for p in p0]
        ref.step(pr, grads, clamps)
        fast.step(pf, grads, clamps)
    for a, b, ma, mb, va, vb in zip(pr, pf, ref.m, fast.m, ref.v, fast.v):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(mb, ma)
        np.testing.assert_array_equal(vb, va)
    assert any(np.any(np.abs(p) == c) for p, c in zip(pr, clamps))  # the clamp was exercised


@pytest.mark.parametrize("hw_aware", [False, True])
def test_training_run_is_the_same_with_either_kernel(hw_aware):
    rng = np.random.default_rng(5)
    sizes = [20, 12, 4]
    x = (rng.random((12, 30, 20)) < 0.2).astype(np.float64)
    y = rng.integers(0, 4, 12)
    nets = {}
    hists = {}
    for kern in ("numpy", "numba"):
        net = _net(np.random.default_rng(9), sizes, 0.5)
        T.calibrate_init(net, x[:4], 0.05, kernel=kern)
        cfg = T.TrainConfig(epochs=3, batch_size=4, seed=1, kernel=kern, hw_aware=hw_aware)
        hists[kern] = T.train(net, x, y, cfg, progress=False)
        nets[kern] = net
    for a, b in zip(hists["numpy"].epochs, hists["numba"].epochs):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-12, abs=0)
        assert a["train_accuracy_running"] == b["train_accuracy_running"]
    for la, lb in zip(nets["numpy"].layers, nets["numba"].layers):
        np.testing.assert_allclose(lb.weight, la.weight, rtol=1e-9, atol=1e-12)
    assert not np.allclose(nets["numba"].layers[0].weight,
                           _net(np.random.default_rng(9), sizes, 0.5).layers[0].weight)  # it trained


@pytest.fixture
def fresh_jit(monkeypatch):
    from sim_backend.physics import jit

    jit._reset_for_tests()
    yield monkeypatch
    jit._reset_for_tests()


def test_fallback_switch_and_broken_numba(fresh_jit):
    from sim_backend.physics import jit

    monkeypatch = fresh_jit
    monkeypatch.setenv("SNNBENCH_KERNEL", "numpy")
    assert K.kernels() is None
    st0 = K.status()
    assert {k: st0[k] for k in ("train_kernel", "requested", "reason")} == {
        "train_kernel": "numpy", "requested": "numpy", "reason": "forced by SNNBENCH_KERNEL=numpy"}
    net = _net(np.random.default_rng(0), [5, 3], 1.0)
    x = np.ones((1, 4, 5))
    assert isinstance(T.network_forward(net, x, kernel="auto")[0], T.LayerCache)
    assert T.layer_spikes(x, net.layers[0].weight, net.layers[0].neuron).shape == (1, 4, 3)
    with pytest.raises(RuntimeError, match="numba training kernel is unavailable .forced by SNNBENCH_KERNEL=numpy"):
        T.network_forward(net, x, kernel="numba")
    monkeypatch.setenv("SNNBENCH_KERNEL", "bogus")
    with pytest.raises(ValueError, match="SNNBENCH_KERNEL"):
        K.kernels()
    # numba failing to import: auto falls back to the reference and says why
    monkeypatch.setenv("SNNBENCH_KERNEL", "auto")
    jit._reset_for_tests()
    monkeypatch.setitem(__import__("sys").modules, "numba", None)   # "import numba" raises
    assert K.kernels() is None
    st = K.status()
    assert st["train_kernel"] == "numpy" and st["reason"].startswith("numba cannot be imported")
    assert isinstance(T.network_forward(net, x, kernel="auto")[0], T.LayerCache)
    cfg = T.TrainConfig(epochs=1, batch_size=1, kernel="auto")
    T.train(net, x, np.array([0]), cfg, progress=False)     # trains on the numpy path
    with pytest.raises(jit.KernelUnavailable):
        monkeypatch.setenv("SNNBENCH_KERNEL", "numba")
        K.kernels()


@settings(max_examples=20, deadline=None)
@given(net_cases)
def test_training_forward_gives_the_inference_spikes(c):
    """Training (either kernel) and inference (Network.forward, decision 0017) define the
    input current alike, so a trained network spikes in use exactly as it did in training."""
    net, x, _, _ = _case(c)
    infer = net.forward(x)
    for kern in ("numpy", "numba"):
        for cache, s in zip(T.network_forward(net, x, kernel=kern), infer):
            np.testing.assert_array_equal(cache.s, s)
