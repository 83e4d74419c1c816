"""The benchmark baselines of issue 17 (benchmarks/baseline_numpy.py, baseline_torch.py)
compute the same SRM network as the fast path: same spikes on a small network (their dense
BLAS sums may differ from the ordered definition only in the last bit, which no threshold
decision here comes near), and the torch baseline is optional."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from bench.network import kernel
from bench.network.model import Network
from benchmarks import baseline_numpy, baseline_torch
from sim_backend.physics.neuron import NeuronParams


def _case():
    net = Network.create((48, 40, 20, 5), seed=11, init_scale=3.0,
                         neuron=NeuronParams(tau_steps=4.0, theta=0.8))
    x = np.random.default_rng(12).random((3, 60, 48)) < 0.2
    ref, h = [], x
    for layer in net.layers:
        h = kernel.reference_layer(h, layer.weight, layer.neuron)
        ref.append(h)
    assert all(r.any() for r in ref)            # every layer spikes: the comparison means something
    return net, x, ref


@pytest.mark.parametrize("mode", baseline_numpy.MODES)
def test_numpy_baseline_is_the_same_network(mode):
    net, x, ref = _case()
    outs = baseline_numpy.forward(x, [l.weight for l in net.layers], [l.neuron for l in net.layers], mode=mode)
    for got, want in zip(outs, ref):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="mode"):
        baseline_numpy.forward(x, [l.weight for l in net.layers], [l.neuron for l in net.layers], mode="fast")


@pytest.mark.parametrize("mode", baseline_torch.MODES)
def test_torch_baseline_is_the_same_network(mode):
    pytest.importorskip("torch", reason="optional extra [torch] not installed")
    net, x, ref = _case()
    tn = baseline_torch.TorchNetwork([l.weight for l in net.layers], [l.neuron for l in net.layers])
    for got, want in zip(tn.forward(x, mode=mode), ref):
        np.testing.assert_array_equal(got, want)


def test_torch_baseline_reports_a_missing_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)      # import torch -> ImportError
    reason = baseline_torch.available()
    assert reason is not None and "torch" in reason
