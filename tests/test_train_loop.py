"""Training loop: learning, determinism, clamps, checkpoints, hardware-aware options."""
from __future__ import annotations

import numpy as np
import pytest

from bench.network import hwaware
from bench.network import train as T
from bench.network.model import Network
from bench.network.modelfile import load_checkpoint


def _toy(n, seed, k=4, n_in=50, steps=60):
    rng = np.random.default_rng(seed)
    proto = np.random.default_rng(99).random((k, 3, n_in)) < 0.3
    y = rng.integers(0, k, n)
    rate = proto[y].repeat(steps // 3, axis=1) * 0.4 + 0.02
    return rng.random((n, steps, n_in)) < rate, y


def _net(seed=0):
    net = Network.create((50, 30, 4), seed=seed)
    return net


def test_training_learns_a_toy_problem_and_respects_clamps():
    xtr, ytr = _toy(96, 0)
    xte, yte = _toy(48, 1)
    net = _net()
    T.calibrate_init(net, xtr[:8], 0.05)
    cfg = T.TrainConfig(epochs=14, batch_size=16, seed=0, lr_schedule="constant")
    hist = T.train(net, xtr, ytr, cfg, x_test=xte, y_test=yte, progress=False)
    assert hist.epochs[-1]["loss"] < hist.epochs[0]["loss"]
    assert hist.last["test_accuracy"] >= 0.9
    for layer in net.layers:
        assert np.max(np.abs(layer.weight)) <= layer.clamp


def test_training_is_deterministic_from_seed():
    xtr, ytr = _toy(32, 0)
    nets = []
    for _ in range(2):
        net = _net()
        cfg = T.TrainConfig(epochs=2, batch_size=8, seed=5, hw_aware=True)
        T.train(net, xtr, ytr, cfg, progress=False)
        nets.append(net)
    for a, b in zip(*[n.layers for n in nets]):
        np.testing.assert_array_equal(a.weight, b.weight)


def test_checkpoint_resume_gives_identical_weights(tmp_path):
    xtr, ytr = _toy(32, 0)
    cfg = T.TrainConfig(epochs=3, batch_size=8, seed=1)
    net_a = _net()
    T.train(net_a, xtr, ytr, cfg, progress=False)
    net_b = _net()
    T.train(net_b, xtr, ytr, T.TrainConfig(epochs=1, batch_size=8, seed=1), progress=False,
            checkpoint=tmp_path / "ck.h5")
    net_c, opt_state, epoch, rng_state = load_checkpoint(tmp_path / "ck.h5")
    assert epoch == 1
    opt = T.Adam([layer.weight for layer in net_c.layers], cfg.lr, l2=cfg.l2)
    opt.load_state_dict(opt_state)
    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state
    T.train(net_c, xtr, ytr, cfg, progress=False, start_epoch=epoch, optimizer=opt, rng=rng)
    for a, c in zip(net_a.layers, net_c.layers):
        np.testing.assert_array_equal(a.weight, c.weight)


def test_hw_aware_perturbs_only_the_chip_layer():
    net = _net()
    p = T.sample_perturbation(net, hwaware.HWAwareConfig(), np.random.default_rng(0))
    assert p.weights[0] is net.layers[0].weight
    assert not np.array_equal(p.weights[1], net.layers[1].weight)
    assert p.theta[1] is not None and p.theta[0] is None


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="surrogate"):
        T.TrainConfig(surrogate="tanh")
    with pytest.raises(ValueError):
        T.TrainConfig(lr=0)


def test_cosine_schedule():
    cfg = T.TrainConfig(epochs=5, lr=0.01, lr_min_fraction=0.1)
    lrs = [cfg.lr_at(e) for e in range(5)]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert T.TrainConfig(lr_schedule="constant").lr_at(3) == 0.005
    with pytest.raises(ValueError):
        T.TrainConfig(lr_schedule="step")
