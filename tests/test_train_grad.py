"""Surrogate BPTT gradient vs finite differences (issue 7, 'Must hold')."""
from __future__ import annotations

import numpy as np
import pytest

from bench.network import train as T
from sim_backend.physics.neuron import NeuronParams, srm_forward

WIDTH = 0.5


def _smooth_net_loss(weights, x, labels, params, *, return_caches=False):
    """Loss of a tiny network whose neurons use the smooth stand-in (sigmoid spikes)."""
    caches = []
    s = x
    for w in weights:
        b, t, n_in = s.shape
        z = (s.reshape(b * t, n_in) @ w.T).reshape(b, t, w.shape[0])
        out, state = T.smooth_forward(z, params, WIDTH)
        caches.append(T.LayerCache(s_in=s, state=state, weight=w, theta=np.full(w.shape[0], params.theta),
                                   tau=np.full(w.shape[0], params.tau_steps), params=params))
        s = out
    loss, g = T.spike_count_loss(s, labels, target_true=12.0, target_false=3.0)
    return (loss, g, caches) if return_caches else loss


def _analytic(weights, x, labels, params, reset_grad=True):
    loss, g, caches = _smooth_net_loss(weights, x, labels, params, return_caches=True)
    grads = []
    gin = g
    for i in range(len(caches) - 1, -1, -1):
        c = caches[i]
        sg = T.surrogate_grad(c.state.u - params.theta, "sigmoid", WIDTH)
        dw, gin = T.layer_backward(c, gin, need_input_grad=i > 0, sg=sg, reset_grad=reset_grad)
        grads.insert(0, dw)
    return grads


def _numeric(weights, x, labels, params, eps=1e-6):
    grads = []
    for li, w in enumerate(weights):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            wp = [v.copy() for v in weights]
            wm = [v.copy() for v in weights]
            wp[li][idx] += eps
            wm[li][idx] -= eps
            g[idx] = (_smooth_net_loss(wp, x, labels, params) - _smooth_net_loss(wm, x, labels, params)) / (2 * eps)
        grads.append(g)
    return grads


def _tiny(seed=0, sizes=(6, 5, 3), steps=25):
    rng = np.random.default_rng(seed)
    x = (rng.random((2, steps, sizes[0])) < 0.4).astype(float)
    ws = [rng.normal(0.8, 1.2, size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    labels = np.array([0, 2])
    return ws, x, labels


@pytest.mark.parametrize("params", [
    NeuronParams(),                                  # reference neuron: tau 10, ref 10, clamp [0, 5]
    NeuronParams(tau_steps=4.0, tau_ref_steps=2.0, ref_scale=2.0, clamp_high=2.0),
])
def test_bptt_matches_finite_differences_full_gradient(params):
    ws, x, labels = _tiny()
    # make sure the clamp is active somewhere (zero-gradient region is exercised)
    ws[0][0, :] += 3.0
    ga = _analytic(ws, x, labels, params, reset_grad=True)
    gn = _numeric(ws, x, labels, params)
    for a, n in zip(ga, gn):
        assert np.max(np.abs(n)) > 1e-4
        np.testing.assert_allclose(a, n, rtol=1e-4, atol=1e-7)


def test_detached_reset_equals_full_gradient_without_refractory():
    params = NeuronParams(ref_scale=0.0)
    ws, x, labels = _tiny(seed=3)
    ga = _analytic(ws, x, labels, params, reset_grad=False)
    gn = _numeric(ws, x, labels, params)
    for a, n in zip(ga, gn):
        np.testing.assert_allclose(a, n, rtol=1e-4, atol=1e-7)


def test_per_neuron_tau_path_matches_uniform_filter():
    rng = np.random.default_rng(1)
    x = (rng.random((3, 40, 7)) < 0.3).astype(float)
    w = rng.normal(0.5, 1.0, size=(4, 7))
    c1 = T.layer_forward(x, w, NeuronParams())
    c2 = T.layer_forward(x, w, NeuronParams(), tau_steps=np.full(4, 10.0))
    g = rng.standard_normal(c1.s.shape)
    d1 = T.neuron_backward(c1, g)
    c2.tau = c2.tau + 0.0  # identical values but goes through the per-step loop only if unequal
    c2.tau[0] = np.nextafter(10.0, 11.0)
    d2 = T.neuron_backward(c2, g)
    np.testing.assert_allclose(d1, d2, rtol=1e-6, atol=1e-12)


def test_layer_forward_uses_shared_neuron_model():
    rng = np.random.default_rng(2)
    x = (rng.random((2, 50, 9)) < 0.3).astype(float)
    w = rng.normal(0.3, 1.0, size=(5, 9))
    c = T.layer_forward(x, w, NeuronParams())
    np.testing.assert_array_equal(c.s, srm_forward(x @ w.T))


def test_layer_gradient_with_measured_equals_model_output():
    from bench.network.model import Network
    rng = np.random.default_rng(4)
    net = Network.create((8, 6, 3), seed=1, init_scale=3.0)
    x = (rng.random((4, 30, 8)) < 0.3).astype(float)
    y = np.array([0, 1, 2, 0])
    caches = T.network_forward(net, x)
    loss, g = T.spike_count_loss(caches[-1].s, y)
    full = T.network_backward(caches, g)
    dw, loss2 = T.layer_gradient(net, -1, caches[-2].s, y)
    np.testing.assert_allclose(dw, full[-1])
    assert loss == pytest.approx(loss2)
    dw3, loss3 = T.layer_gradient(net, 1, caches[-2].s, y, measured_out=caches[-1].s)
    np.testing.assert_allclose(dw3, full[-1])
    with pytest.raises(ValueError):
        T.layer_gradient(net, 1, caches[-2].s, y, measured_out=caches[-1].s[:, :5])


def test_spike_count_loss_targets_scale_with_steps():
    y = T.count_targets(np.array([1]), 3, 150)
    np.testing.assert_allclose(y, [[15.0, 90.0, 15.0]])
    s = np.zeros((1, 150, 3))
    loss, g = T.spike_count_loss(s, np.array([1]))
    assert loss == pytest.approx((15 ** 2 * 2 + 90 ** 2) / 300)
    np.testing.assert_allclose(g[0, 0], np.array([-15.0, -90.0, -15.0]) / 150)


@pytest.mark.parametrize("kind", T.SURROGATES)
def test_surrogates_peak_at_threshold(kind):
    v = np.linspace(-3, 3, 61)
    g = T.surrogate_grad(v, kind)
    assert np.argmax(g) == 30 and np.all(g >= 0)
    with pytest.raises(ValueError):
        T.surrogate_grad(v, "nope")


def test_chip_in_the_loop_step_with_measured_outputs_reduces_loss():
    """A fine-tuning loop's core: the 'chip' (here a quantised, mismatched copy of the output
    layer) measures spikes, layer_gradient uses them, Adam steps the chip layer's weights."""
    from bench.network import hwaware
    from bench.network.model import Network

    rng = np.random.default_rng(0)
    net = Network.create((40, 20, 4), seed=0)
    proto = rng.random((4, 40)) < 0.3
    y = np.arange(32) % 4
    x = rng.random((32, 60, 40)) < (proto[y][:, None, :] * 0.4 + 0.02)
    T.calibrate_init(net, x[:8], 0.05)
    hidden = net.forward_from(0, x, stop=1)[-1]
    cfg = hwaware.HWAwareConfig(weight_noise_s=0.0, tau_mismatch=0.0, neuron_noise=0.0)
    theta = 1.0 + 0.05 * rng.standard_normal(4)

    def chip(w):  # the measured forward: quantised conductances, threshold mismatch
        return net.layers[1].forward(hidden, weight=hwaware.quantize(w, cfg), theta=theta)

    layer = net.layers[1]
    opt = T.Adam([layer.weight], lr=0.1)  # ~ half a conductance level (0.2 units): levels must move
    losses = []
    for _ in range(25):
        measured = chip(layer.weight)
        dw, loss = T.layer_gradient(net, 1, hidden, y, measured_out=measured,
                                    weight=hwaware.quantize(layer.weight, cfg))
        losses.append(loss)
        opt.step([layer.weight], [dw], [layer.clamp])
    assert losses[-1] < 0.7 * losses[0]
