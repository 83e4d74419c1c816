"""Network description and software forward pass (bench.network.model)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.network import hwaware
from bench.network.model import Dense, InputConfig, Network, predict
from sim_backend.physics.neuron import NeuronParams, srm_forward


def _spikes(shape, p=0.1, seed=0):
    return np.random.default_rng(seed).random(shape) < p


def test_reference_shapes_and_input_metadata():
    net = Network.create(seed=0)
    assert net.sizes == [800, 480, 120, 11]
    assert net.chip_layer == 2
    assert net.input.grid == (20, 20) and net.input.n_inputs == 800
    assert net.input.padding == 6 and net.input.pool == 7 and net.input.steps == 300
    assert net.dt_s * net.acceleration == pytest.approx(net.input.bin_s)
    assert [layer.clamp for layer in net.layers] == [5.0, 5.0, 3.0]


def test_forward_is_srm_forward_layer_by_layer():
    net = Network.create((32, 16, 8, 4), seed=1, init_scale=3.0)
    x = _spikes((3, 60, 32), 0.2)
    outs = net.forward(x)
    s = x.astype(float)
    for layer, o in zip(net.layers, outs):
        s = srm_forward(s @ layer.weight.T, layer.neuron)
        np.testing.assert_array_equal(o, s)
    assert any(o.sum() > 0 for o in outs)


def test_forward_from_composes_for_hybrid_execution():
    net = Network.create((32, 16, 8, 4), seed=2, init_scale=3.0)
    x = _spikes((5, 40, 32), 0.2, seed=3)
    full = net.forward(x)
    before = net.forward_from(0, x, stop=net.chip_layer)
    assert len(before) == 2
    np.testing.assert_array_equal(before[-1], full[1])
    chip = net.forward_from(net.chip_layer, before[-1])
    np.testing.assert_array_equal(chip[0], full[2])
    # batching does not change results; (T, N) input works too
    np.testing.assert_array_equal(net.forward_from(0, x, batch_size=2)[-1], full[-1])
    np.testing.assert_array_equal(net.forward_from(0, x[0])[-1], full[-1][0])


def test_mismatch_arguments_reach_the_neuron():
    layer = Dense(np.full((3, 4), 0.8), name="t")
    x = np.ones((1, 30, 4))
    a = layer.forward(x)
    b = layer.forward(x, theta=np.array([1.0, 1.5, 100.0]))
    np.testing.assert_array_equal(a[..., 0], b[..., 0])
    assert b[..., 2].sum() == 0 and a[..., 2].sum() > 0


def test_predict_most_spikes_then_earliest():
    s = np.zeros((3, 10, 3), bool)
    s[0, [1, 2], 1] = True; s[0, 5, 0] = True            # class 1 has most
    s[1, [4, 6], 0] = True; s[1, [3, 8], 2] = True         # tie -> earliest first spike: 2
    # sample 2: no spikes at all -> class 0
    assert list(predict(s)) == [1, 2, 0]
    assert predict(s[1]) == 2


def test_validation_errors():
    with pytest.raises(ValueError, match="inputs"):
        Network([Dense(np.zeros((4, 799)))])
    with pytest.raises(ValueError, match="layer 1"):
        Network([Dense(np.zeros((4, 800))), Dense(np.zeros((3, 5)))])
    with pytest.raises(ValueError, match="NaN"):
        Dense(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="chip_layer"):
        Network([Dense(np.zeros((4, 800)))], chip_layer=3)
    with pytest.raises(ValueError):
        InputConfig(pool=0).validate()


def test_quantisation_uses_sixteen_levels_per_cell():
    cfg = hwaware.HWAwareConfig()
    assert cfg.levels == 16 and cfg.w_max == pytest.approx(3.0) and cfg.w_step == pytest.approx(0.2)
    w = np.random.default_rng(0).normal(0, 2, size=(120, 11))
    gp, gm = hwaware.to_conductances(w, cfg)
    levels = np.round(np.unique(np.concatenate([gp.ravel(), gm.ravel()])) / 10e-6, 9)
    assert set(levels) <= set(range(16))
    assert np.all((gp == 0) | (gm == 0))
    q = hwaware.quantize(w, cfg)
    assert np.max(np.abs(q)) <= 3.0 + 1e-12
    assert np.max(np.abs(q - np.clip(w, -3, 3))) <= 0.1 + 1e-12
    assert len(np.unique(np.round(q, 9))) <= 31


def test_perturb_noise_in_microsiemens_and_mismatch():
    cfg = hwaware.HWAwareConfig(quantize=False, weight_noise_s=5e-6)
    w = np.full((200, 200), 1.0)
    rng = np.random.default_rng(0)
    d = hwaware.perturb(w, cfg, rng) - w
    assert np.std(d) == pytest.approx(5e-6 / 50e-6, rel=0.05)
    assert np.all(hwaware.perturb(np.zeros((3, 3)), cfg, rng) == 0)  # off cells stay off
    th, tau = hwaware.mismatch(1000, 1.0, 10.0, hwaware.HWAwareConfig(theta_mismatch=0.03), rng)
    assert np.std(th) == pytest.approx(0.03, rel=0.15) and np.mean(tau) == pytest.approx(10.0, rel=0.01)
    assert isinstance(hwaware.chip_defaults(), hwaware.HWAwareConfig)


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=50))
def test_quantise_property(values):
    cfg = hwaware.HWAwareConfig()
    w = np.array(values)
    q = hwaware.quantize(w, cfg)
    clipped = np.clip(w, -3.0, 3.0)
    assert np.all(np.abs(q - clipped) <= 0.1 + 1e-9)             # nearest level
    assert np.all(np.diff(q[np.argsort(w, kind="stable")]) >= -1e-12)  # monotonic
    k = np.abs(q) / 0.2
    assert np.allclose(k, np.round(k))                             # on the 0.2-unit grid
    assert np.all(np.sign(q) * np.sign(w) >= 0)                    # sign kept
