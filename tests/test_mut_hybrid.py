"""Mutation-driven tests of bench.hybrid (issue 18).

Expected values: the mapper rules of the module docstring worked by hand, the G_UNIT
register's range and resolution from the protocol spec (1 nS codes, 1..150 uS), the
network's own software forward (``bench.network.model.Dense``, a second implementation of
the same neuron) and sums over the stream results.  Each test names what it protects.
"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

import sim_backend  # noqa: F401  (registers pesim://)
from bench import hybrid
from bench.hybrid import (ChipGeometry, HybridRunner, _g_unit_code, place_layer, plan_network,
                          software_layer)
from bench.network import kernel
from bench.network.model import Dense, Network
from bench.programming import default_schedule
from bench.streaming import TimeBase
from drivers.pechip import PEChip
from firmware_iface.spec import Capability
from sim_backend.physics.neuron import NeuronParams

CHIP = "pesim://?seed=5&fidelity=ideal"


def _net(sizes, **kw):
    return Network.create(sizes, seed=1, **kw)


# --- mapper ---------------------------------------------------------------------------------
def test_geometry_from_a_chip_info_record():
    """Protects ChipGeometry.from_info: rows, neurons, PEs and the PARTIAL_SUM capability bit
    are taken from the GET_INFO record."""
    info = SimpleNamespace(rows=64, neurons=6, pes=3, capabilities=int(Capability.PARTIAL_SUM) | 1)
    assert ChipGeometry.from_info(info) == ChipGeometry(rows=64, neurons=6, pes=3, partial_sum=True)
    info = SimpleNamespace(rows=128, neurons=12, pes=2, capabilities=0)
    assert ChipGeometry.from_info(info) == ChipGeometry(rows=128, neurons=12, pes=2, partial_sum=False)
    plan = plan_network(_net((100, 11)), SimpleNamespace(rows=64, neurons=12, pes=2, capabilities=0))
    assert plan.geometry == ChipGeometry(rows=64, neurons=12, pes=2) and plan.chip_layers == []


@pytest.mark.parametrize("neuron, reason", [
    (NeuronParams(tau_ref_steps=2.0), "neuron model not on chip: refractory tau 2 steps (chip: fixed 1)"),
    (NeuronParams(clamp_low=-1.0), "neuron model not on chip: input clamp [-1, 5] (chip: [0, 5])"),
])
def test_a_neuron_model_the_chip_lacks_is_named(neuron, reason):
    """Protects place_layer / _neuron_issue: the reason names the parameter and the chip's
    value; a software placement has no blocks and no partial sums."""
    p = place_layer(0, _net((50, 11), neuron=neuron).layers[0], ChipGeometry())
    assert (p.where, p.reason, p.blocks, p.partial_sum) == ("software", reason, [], False)


def test_reasons_of_each_placement():
    """Protects place_layer's reasons (hand-worked from the mapper rules): fits on one PE,
    split by neurons, split by fan-in with partial sums, both, and not enough PEs; software
    placements carry no partial-sum flag."""
    g = ChipGeometry(pes=8, partial_sum=True)
    one = place_layer(0, _net((120, 11)).layers[0], g)
    assert one.reason == "fits: 120 <= 128 rows, 11 <= 12 neurons" and not one.partial_sum
    cols = place_layer(0, _net((50, 30)).layers[0], g)
    assert cols.reason == "split by neurons into 3" and not cols.partial_sum
    rows = place_layer(0, _net((200, 10)).layers[0], g)
    assert rows.reason == "fan-in split into 2 with partial sums" and rows.partial_sum
    both = place_layer(0, _net((200, 20)).layers[0], g, first_pe=2)
    assert both.reason == "split by neurons into 2; fan-in split into 2 with partial sums"
    assert [b.pe for b in both.blocks] == [2, 3, 4, 5]
    full = place_layer(0, _net((200, 20)).layers[0], g, first_pe=6)
    assert full.where == "software" and not full.partial_sum
    assert full.reason == "needs 4 PE(s) (2 row x 2 neuron blocks), 2 free"
    nops = place_layer(0, _net((200, 10)).layers[0], ChipGeometry(pes=8))
    assert nops.where == "software" and not nops.partial_sum


def test_layers_are_placed_on_the_next_free_pes():
    """Protects plan_network: each chip layer starts at the PE after the previous one's; a
    layer not asked for says so."""
    net = _net((30, 24, 11))
    plan = plan_network(net, ChipGeometry(pes=3), chip_layers=[0, 1])
    assert [b.pe for b in plan.layers[0].blocks] == [0, 1]
    assert [b.pe for b in plan.layers[1].blocks] == [2]
    plan = plan_network(net, ChipGeometry(pes=3), chip_layers=[1])
    assert plan.layers[0].reason == "not asked for the chip" and plan.layers[0].where == "software"
    assert [b.pe for b in plan.layers[1].blocks] == [0]


def test_plan_table_names_software_layers():
    """Protects Plan.__str__: a software layer's row says "software"."""
    text = str(plan_network(_net((50, 20, 11)), ChipGeometry()))
    rows = text.splitlines()[2:]
    assert rows[0].split()[2] == "software" and rows[1].split()[2] == "chip"


@pytest.mark.parametrize("scale, code_s", [(12.3456e-6, 12.346e-6), (200e-6, 150e-6), (0.2e-6, 1e-6),
                                           (1e-6, 1e-6), (150e-6, 150e-6)])
def test_g_unit_scale_is_clipped_and_rounded_to_the_register(scale, code_s):
    """Protects _g_unit_code: G_UNIT holds 1 nS codes from 1,000 to 150,000 (spec register
    0x07): the scale is rounded to the nearest nS and clipped to 1..150 uS."""
    assert _g_unit_code(scale) == pytest.approx(code_s, rel=1e-12)


# --- software layer ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_out", [70, 5])
def test_software_layer_without_the_compiled_kernel_matches_the_model(monkeypatch, n_out):
    """Protects software_layer's numpy path (blocks of 64 neurons from neuron 0, padded rows,
    contiguous input): same spikes as Dense.forward (the network's reference) with a neuron
    model other than the default (its threshold and tau reach the kernel)."""
    rng = np.random.default_rng(7)
    neuron = NeuronParams(theta=0.7, tau_steps=4.0)
    w = rng.normal(0, 0.6, (n_out, 21))
    w[0] = np.abs(w[0]) + 0.3                      # neuron 0 (the first of the first block) spikes
    layer = Dense(w, neuron=neuron)
    x = rng.random((3, 60, 21)) < 0.2
    ref = layer.forward(x).astype(bool)
    assert 0.02 < ref.mean() < 0.6 and ref[:, :, 0].any()
    monkeypatch.setattr(kernel, "have_jit", lambda: False)
    np.testing.assert_array_equal(software_layer(layer, x[:, ::1, :][:, :, :], threads=2), ref)
    np.testing.assert_array_equal(software_layer(layer, np.asfortranarray(x.astype(np.uint8)), threads=1), ref)


def test_software_layer_uses_the_layers_neuron_model():
    """Protects software_layer's compiled path: the layer's own neuron parameters are used
    (not the default neuron)."""
    rng = np.random.default_rng(8)
    layer = Dense(rng.normal(0, 0.6, (9, 30)), neuron=NeuronParams(theta=0.5, tau_steps=3.0))
    x = rng.random((2, 80, 30)) < 0.2
    ref = layer.forward(x).astype(bool)
    default = Dense(layer.weight).forward(x).astype(bool)
    assert (ref != default).any()
    np.testing.assert_array_equal(software_layer(layer, x), ref)


def test_software_layer_refuses_inputs_of_the_wrong_width():
    """Protects software_layer's shape check (message names the layer and the shapes)."""
    layer = Dense(np.zeros((3, 4)), name="L")
    with pytest.raises(ValueError, match=r"layer 'L': expected \(B, T, 4\) spikes, got \(2, 5, 3\)"):
        software_layer(layer, np.zeros((2, 5, 3), bool))


def test_batches_give_the_same_spikes_as_one_call():
    """Protects HybridRunner._sw_batched: inputs larger than batch_size are run in batches with
    the given weights (the read-back weights of a chip layer), same spikes as one call."""
    rng = np.random.default_rng(9)
    net = _net((16, 11), init_scale=2.0)
    runner = HybridRunner(net, None, plan=plan_network(net, chip_layers=[]), batch_size=2)
    x = rng.random((5, 50, 16)) < 0.2
    w = rng.normal(0, 1.0, (11, 16))
    layer = net.layers[0]
    want = Dense(w, neuron=layer.neuron).forward(x).astype(bool)
    assert want.any() and (want != layer.forward(x).astype(bool)).any()
    np.testing.assert_array_equal(runner._sw_batched(layer, x, w), want)
    np.testing.assert_array_equal(runner.software_forward(x), layer.forward(x).astype(bool))


# --- runner with a chip -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ran():
    """One hybrid run of 30->11->11->11 with layer 1 on an ideal simulated chip, a custom
    schedule, batch size 2 (5 samples), software layers around it."""
    rng = np.random.default_rng(3)
    net = _net((30, 11, 11, 11), init_scale=2.0)
    net.chip_layer = 1
    x = rng.random((5, 60, 30)) < 0.15
    schedule = default_schedule(4e-6)
    with PEChip(CHIP) as chip:
        runner = HybridRunner(net, chip, schedule=schedule, batch_size=2, chunk=3, timebase=TimeBase(steps=60))
        t0 = time.perf_counter()
        res = runner.run(x)
        wall = time.perf_counter() - t0
        info = chip.info()
    return SimpleNamespace(net=net, x=x, runner=runner, res=res, wall=wall, schedule=schedule, info=info)


def test_chip_layer_records(ran):
    """Protects HybridRunner._program / prepare / describe: the layer is programmed with the
    runner's schedule, every cell of the array is counted, the realised RMS error is that of
    the read-back weights against the clipped weights, and describe() carries the plan,
    mapping, programming and programming time."""
    st = ran.runner.layers[1]
    assert st.program_result.schedule == ran.schedule
    layer = ran.net.layers[1]
    rms = np.sqrt(np.mean((st.weights_realised - np.clip(layer.weight, -layer.clamp, layer.clamp)) ** 2))
    assert st.mapping["realised_rms"] == pytest.approx(rms, rel=1e-12)
    assert st.weights_realised.shape == st.weights_target.shape == (11, 11)
    assert np.abs(st.weights_realised - st.weights_target).max() * st.g_unit_s < 4e-6
    d = ran.runner.describe()
    json.dumps(d)
    c = d["chip_layers"]["1"]
    assert c["programming"]["cells"] == ran.info.rows * ran.info.columns
    assert c["programming"]["success"] + c["programming"]["stuck"] <= c["programming"]["cells"]
    assert "targets_s" not in c["mapping"] and c["mapping"]["mapper"] == "bench.mapping"
    assert c["g_unit_s"] == st.g_unit_s == c["registers"]["G_UNIT"]["in_force"]
    assert 0.0 < d["program_seconds"] < ran.wall
    assert d["plan"]["layers"][1]["where"] == "chip"


def test_hybrid_run_outputs_and_model_check(ran):
    """Protects HybridRunner.run: per sample, the chip output equals the software model run
    with the read-back weights (ideal chip); the software reference is the whole network in
    software; outputs are bool (n, T, classes)."""
    res = ran.res
    assert res.outputs.shape == (5, 60, 11) and res.outputs.dtype == bool
    assert res.model_check[1].shape == (5,) and res.model_check[1].all()
    sw = ran.x
    for layer in ran.net.layers:
        sw = layer.forward(sw).astype(bool)
    np.testing.assert_array_equal(res.software_outputs, sw)
    h = ran.net.layers[0].forward(ran.x).astype(bool)
    np.testing.assert_array_equal(res.chip_inputs[1], h)
    chip_out = res.chip_raw[1][:, :, :11]
    np.testing.assert_array_equal(res.outputs, ran.net.layers[2].forward(chip_out).astype(bool))


def test_seconds_add_up_over_the_streams(ran):
    """Protects HybridRunner.run's time accounting: chip figures are sums over the stream
    results, every figure is >= 0 and below the wall time of the call."""
    sec, s = ran.res.seconds, ran.res.streams
    assert len(s) == 1
    for key, attr in (("chip_wall", "wall_seconds"), ("upload", "upload_seconds"), ("run", "run_seconds"),
                      ("readout", "readout_seconds"), ("chip_seconds", "chip_seconds"),
                      ("link_modelled", "link_modelled_seconds")):
        assert sec[key] == pytest.approx(sum(getattr(x, attr) for x in s), abs=1e-15), key
    assert all(0.0 <= v for v in sec.values())
    assert sec["software"] + sec["software_reference"] + sec["chip_wall"] < ran.wall


def test_software_time_accounts_every_software_layer(monkeypatch):
    """Protects HybridRunner.run: ``software_reference`` adds the model check of the chip
    layer AND the reference layers (each software layer call made 20 ms slower here: three
    calls for the reference part, two for the hybrid's software layers)."""
    net = _net((20, 11, 11, 11), init_scale=2.0)
    net.chip_layer = 1
    x = np.random.default_rng(1).random((2, 30, 20)) < 0.2
    real = hybrid.software_layer

    def slow(*a, **k):
        time.sleep(0.02)
        return real(*a, **k)

    with PEChip(CHIP) as chip:
        runner = HybridRunner(net, chip, timebase=TimeBase(steps=30))
        runner.prepare()
        monkeypatch.setattr(hybrid, "software_layer", slow)
        t0 = time.perf_counter()
        res = runner.run(x)
        wall = time.perf_counter() - t0
    sec = res.seconds
    assert sec["software_reference"] >= 0.06 and sec["software"] >= 0.04
    assert sec["software_reference"] + sec["software"] < wall


def test_two_chip_layers_add_their_stream_times():
    """Protects HybridRunner.run: with two chip layers (two one-PE layers of a two-PE plan)
    the chip figures are sums over both streams."""
    net = _net((20, 11, 11), init_scale=2.0)
    plan = plan_network(net, ChipGeometry(pes=2), chip_layers=[0, 1])
    assert plan.chip_layers == [0, 1]
    x = np.random.default_rng(2).random((2, 30, 20)) < 0.2
    with PEChip(CHIP) as chip:
        res = HybridRunner(net, chip, plan=plan, timebase=TimeBase(steps=30)).run(x, software_reference=False)
    assert len(res.streams) == 2 and res.software_outputs is None
    for key, attr in (("chip_seconds", "chip_seconds"), ("run", "run_seconds"), ("upload", "upload_seconds")):
        parts = [getattr(s, attr) for s in res.streams]
        assert min(parts) > 0 and res.seconds[key] == pytest.approx(sum(parts), abs=1e-15), key


def test_inputs_of_the_wrong_width_are_refused():
    """Protects HybridRunner.run's input check (names the expected width)."""
    net = _net((16, 11))
    runner = HybridRunner(net, None, plan=plan_network(net, chip_layers=[]))
    with pytest.raises(ValueError, match=r"inputs must be \(n, T, 16\), got \(1, 4, 15\)"):
        runner.run(np.zeros((1, 4, 15), bool))
    out = runner.run(np.zeros((1, 4, 16), bool))
    assert out.outputs.shape == (1, 4, 11)
