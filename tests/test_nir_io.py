"""NIR export / import (bench.network.nir_io, snnbench model export-nir/import-nir)."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from bench.cli import main
from bench.errors import DataFormatError
from bench.network import nir_io
from bench.network.model import Network
from bench.network.modelfile import load_model, save_model
from sim_backend.physics.neuron import NeuronParams


def _spikes(shape, p=0.1, seed=0):
    return np.random.default_rng(seed).random(shape) < p


@pytest.fixture
def net():
    n = Network.create(seed=7, init_scale=3.0, neuron=NeuronParams(tau_steps=9.0, ref_scale=8.0))
    n.metadata = {"training": {"seed": 7}}
    return n


def test_export_import_reproduces_identical_outputs(net, tmp_path):
    p = nir_io.export_nir(net, tmp_path / "n.nir")
    back = nir_io.import_nir(p)
    x = _spikes((3, 300, 800), 0.05)
    for a, b in zip(net.forward(x), back.forward(x)):
        np.testing.assert_array_equal(a, b)
    assert back.sizes == net.sizes and back.chip_layer == net.chip_layer
    assert [l.neuron for l in back.layers] == [l.neuron for l in net.layers]
    assert [l.clamp for l in back.layers] == [l.clamp for l in net.layers]
    assert back.input == net.input and back.dt_s == net.dt_s and back.acceleration == net.acceleration
    assert back.metadata == net.metadata


def test_graph_is_plain_nir(net):
    g = nir_io.to_nir(net)
    kinds = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert kinds["pool"] == "SumPool2d" and kinds["fc1"] == "Linear" and kinds["lif3"] == "LIF"
    np.testing.assert_array_equal(g.nodes["pool"].kernel_size, [7, 7])
    np.testing.assert_array_equal(g.nodes["pool"].padding, [6, 6])
    np.testing.assert_allclose(g.nodes["lif1"].tau, 9.0 * 100e-9)
    assert g.nodes["fc3"].weight.shape == (11, 120)


def _foreign(kind="LIF", **kw):
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 1, (6, 8)), rng.normal(0, 1, (3, 6))
    def neuron(n):
        if kind == "LIF":
            return nir.LIF(tau=np.full(n, 1e-6), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))
        if kind == "CubaLIF":
            return nir.CubaLIF(tau_syn=np.full(n, kw.get("tau_syn", 1e-6)), tau_mem=np.full(n, kw.get("tau_mem", 1e-9)),
                               r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), w_in=np.full(n, 2.0))
        return nir.IF(r=np.ones(n), v_threshold=np.ones(n))
    nodes = {"in": nir.Input(input_type={"input": np.array([8])}),
             "a": nir.Affine(weight=w1, bias=np.zeros(6)), "n1": neuron(6),
             "b": nir.Linear(weight=w2), "n2": neuron(3),
             "out": nir.Output(output_type={"output": np.array([3])})}
    edges = [("in", "a"), ("a", "n1"), ("n1", "b"), ("b", "n2"), ("n2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges), w1, w2


def test_import_foreign_lif_and_cubalif():
    g, w1, w2 = _foreign("LIF")
    net = nir_io.from_nir(g, dt_s=100e-9)
    assert net.sizes == [8, 6, 3]
    assert net.layers[0].neuron.tau_steps == 10.0 and net.layers[0].neuron.theta == 1.0
    np.testing.assert_array_equal(net.layers[1].weight, w2)
    assert net.layers[-1].clamp == 3.0
    g, w1, _ = _foreign("CubaLIF")
    net = nir_io.from_nir(g, dt_s=100e-9)
    np.testing.assert_allclose(net.layers[0].weight, 2.0 * w1)  # w_in folded into the weights


@pytest.mark.parametrize("kind,match", [
    ("IF", r"'n1' \(IF\)"),
    ("CubaLIF2", r"'n1' \(CubaLIF\).*tau_syn"),
])
def test_unsupported_neuron_is_named(kind, match):
    g, *_ = _foreign("CubaLIF", tau_mem=1e-6) if kind == "CubaLIF2" else _foreign(kind)
    with pytest.raises(nir_io.UnsupportedNIRError, match=match):
        nir_io.from_nir(g)


def test_unsupported_node_and_parameters_are_named(tmp_path):
    g, *_ = _foreign()
    g.nodes["n1"] = nir.LIF(tau=np.full(6, 1e-6), r=np.ones(6), v_leak=np.full(6, 0.1), v_threshold=np.ones(6))
    with pytest.raises(nir_io.UnsupportedNIRError, match=r"'n1'.*v_leak"):
        nir_io.from_nir(g)
    g, *_ = _foreign()
    g.nodes["a"] = nir.Affine(weight=g.nodes["a"].weight, bias=np.ones(6))
    with pytest.raises(nir_io.UnsupportedNIRError, match=r"'a' \(Affine\).*bias"):
        nir_io.from_nir(g)
    g, *_ = _foreign()
    g.nodes["d"] = nir.Delay(delay=np.ones(6))
    g.edges = [("in", "a"), ("a", "n1"), ("n1", "d"), ("d", "b"), ("b", "n2"), ("n2", "out")]
    with pytest.raises(nir_io.UnsupportedNIRError, match=r"'d'.*Delay"):
        nir_io.from_nir(g)
    nir.write(str(tmp_path / "d.nir"), g)
    with pytest.raises(DataFormatError, match=r"d\.nir.*Delay"):
        nir_io.import_nir(tmp_path / "d.nir")


def test_cli_export_import_roundtrip(net, tmp_path, capsys):
    m = save_model(net, tmp_path / "m.h5")
    assert main(["model", "export-nir", str(m), str(tmp_path / "m.nir"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sizes"] == [800, 480, 120, 11]
    assert main(["model", "import-nir", str(tmp_path / "m.nir"), str(tmp_path / "m2.h5"), "--json"]) == 0
    capsys.readouterr()
    back = load_model(tmp_path / "m2.h5")
    for a, b in zip(net.layers, back.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
    (tmp_path / "bad.nir").write_bytes(b"garbage")
    assert main(["model", "import-nir", str(tmp_path / "bad.nir"), str(tmp_path / "x.h5")]) == 2
    assert "bad.nir" in capsys.readouterr().err


def test_cli_unwritable_outputs_fail_up_front_naming_the_path(net, tmp_path, capsys):
    m = save_model(net, tmp_path / "m1.h5")
    regfile = tmp_path / "regfile"
    regfile.write_text("a regular file")
    assert main(["model", "export-nir", str(m), str(tmp_path / "m1.nir")]) == 0
    capsys.readouterr()
    cases = [
        (["model", "export-nir", str(m), str(regfile / "x.nir")], "regfile/x.nir"),
        (["model", "import-nir", str(tmp_path / "m1.nir"), str(regfile / "y4.h5")], "regfile/y4.h5"),
        (["model", "export-nir", str(m), str(tmp_path)], str(tmp_path)),  # a directory
    ]
    for argv, named in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert named in err and "Errno" not in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert regfile.read_text() == "a regular file"
