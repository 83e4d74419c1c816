"""Mapper decisions, and: software and chip execution of a layer agree spike-for-spike at ideal fidelity."""
import json

import numpy as np
import pytest

import sim_backend  # noqa: F401  (registers pesim://)
from bench.hybrid import ChipGeometry, HybridRunner, plan_network, software_layer
from bench.network.model import Dense, Network
from bench.streaming import TimeBase
from drivers.pechip import PEChip
from sim_backend.physics.neuron import NeuronParams


def test_default_plan_for_reference_network():
    net = Network.create((800, 480, 120, 11), seed=0)
    plan = plan_network(net, ChipGeometry())
    assert [p.where for p in plan.layers] == ["software", "software", "chip"]
    assert plan.chip_layers == [2]
    b = plan.layers[2].blocks
    assert len(b) == 1 and (b[0].in_start, b[0].in_stop, b[0].out_start, b[0].out_stop) == (0, 120, 0, 11)
    text = str(plan)
    assert "120->11" in text and "chip" in text and "not asked" in text
    json.loads(plan.to_json())


def _net(sizes, **kw):
    return Network.create(sizes, seed=1, **kw)


def test_wide_layer_split_by_neurons_or_software():
    net = _net((50, 30))
    one = plan_network(net, ChipGeometry(pes=1))
    assert one.layers[0].where == "software" and "needs 3 PE" in one.layers[0].reason
    four = plan_network(net, ChipGeometry(pes=4))
    p = four.layers[0]
    assert p.where == "chip" and p.pes_used == 3 and not p.partial_sum
    assert [(b.out_start, b.out_stop) for b in p.blocks] == [(0, 12), (12, 24), (24, 30)]
    assert all((b.in_start, b.in_stop) == (0, 50) for b in p.blocks)


def test_fan_in_split_only_with_partial_sums():
    net = _net((200, 10))
    no = plan_network(net, ChipGeometry(pes=4))
    assert no.layers[0].where == "software" and "partial-sum" in no.layers[0].reason
    yes = plan_network(net, ChipGeometry(pes=4, partial_sum=True))
    p = yes.layers[0]
    assert p.where == "chip" and p.partial_sum and [(b.in_start, b.in_stop) for b in p.blocks] == [(0, 128), (128, 200)]


def test_neuron_model_the_chip_lacks_runs_in_software():
    net = _net((50, 11), neuron=NeuronParams(tau_ref_steps=2.0))
    p = plan_network(net).layers[0]
    assert p.where == "software" and "refractory" in p.reason


def test_software_only_plan_and_layer_choice():
    net = _net((50, 20, 11))
    assert plan_network(net, chip_layers=[]).chip_layers == []
    assert plan_network(net, chip_layers=[1]).chip_layers == [1]
    assert plan_network(net, chip_layers=[0]).chip_layers == []  # 20 neurons need 2 PEs
    runner = HybridRunner(net, None, plan=plan_network(net, chip_layers=[]))
    x = np.random.default_rng(0).random((5, 300, 50)) < 0.1
    res = runner.run(x)
    np.testing.assert_array_equal(res.outputs, res.software_outputs)


def test_software_layer_matches_model_forward_bit_for_bit():
    rng = np.random.default_rng(2)
    layer = Dense(rng.normal(0, 0.6, (150, 42)))  # > 64 neurons, rows not a multiple of 8
    x = rng.random((6, 120, 42)) < 0.15
    ref = layer.forward(x).astype(bool)
    assert 0.01 < ref.mean() < 0.5
    np.testing.assert_array_equal(software_layer(layer, x, threads=1), ref)
    np.testing.assert_array_equal(software_layer(layer, x, threads=2), ref)


@pytest.mark.parametrize("chip_layer", [1, 0])
def test_chip_and_software_layer_agree_spike_for_spike_at_ideal(chip_layer):
    rng = np.random.default_rng(3)
    net = _net((72, 30, 11) if chip_layer == 1 else (72, 11), init_scale=2.0)
    x = rng.random((24, 300, 72)) < 0.08
    with PEChip("pesim://?seed=5&fidelity=ideal") as chip:
        runner = HybridRunner(net, chip, timebase=TimeBase.for_network(net), chunk=10)
        runner.prepare()
        st = runner.layers[net.chip_layer]
        res = runner.run(x)
    raw = res.chip_raw[net.chip_layer]
    assert raw.shape == (24, 300, 12)
    assert not raw[:, :, 11:].any()  # the spare neuron's pair is programmed to zero
    # the layer's own software forward (bench.network) with the weights the chip holds
    h = x if chip_layer == 0 else net.forward_from(0, x, stop=chip_layer)[-1]
    layer = net.layers[net.chip_layer]
    sw = Dense(st.weights_realised, neuron=layer.neuron).forward(h).astype(bool)
    assert sw.sum() > 100  # the comparison is not vacuous
    np.testing.assert_array_equal(raw[:, :, :11], sw)
    assert all(v.all() for v in res.model_check.values())
    # realised weights are close to the mapping's targets (write-verify window)
    assert np.abs(st.weights_realised - st.weights_target).max() * st.g_unit_s < 5e-6
    ci = runner.chip_inputs(x, rows=128)
    assert ci.shape == (24, 300, 128) and not ci[:, :, layer.n_in:].any()
    np.testing.assert_array_equal(ci[:, :, :layer.n_in], h)
    d = runner.describe()
    json.dumps(d)
    assert d["chip_layers"][str(net.chip_layer)]["registers"]["TIME_STEP"]["in_force"] == pytest.approx(100e-9)


def test_multi_pe_plan_refused_by_runner():
    net = _net((50, 30))
    plan = plan_network(net, ChipGeometry(pes=4))
    from bench.errors import MeasurementError
    with pytest.raises(MeasurementError, match="multi-PE"):
        HybridRunner(net, object(), plan=plan)
