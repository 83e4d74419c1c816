"""HDF5 model files (bench.network.modelfile)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from bench.errors import DataFormatError
from bench.network.model import Network
from bench.network.modelfile import FORMAT_VERSION, load_model, save_model
from sim_backend.physics.neuron import NeuronParams


@pytest.fixture
def model_path(tmp_path):
    net = Network.create(seed=3, neuron=NeuronParams(tau_steps=8.0))
    net.metadata = {"training": {"epochs": 2, "seed": 3}}
    return save_model(net, tmp_path / "m.h5"), net


def test_roundtrip_is_exact(model_path):
    path, net = model_path
    back = load_model(path)
    assert back.sizes == net.sizes and back.chip_layer == net.chip_layer
    for a, b in zip(net.layers, back.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        assert a.neuron == b.neuron and a.clamp == b.clamp and a.name == b.name
    assert back.input == net.input and back.dt_s == net.dt_s and back.acceleration == net.acceleration
    assert back.metadata == net.metadata
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert f["layers/0/weight"].attrs["units"] == "normalised"


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


def test_nan_in_weights_names_file_and_field(model_path):
    path, _ = model_path
    def put_nan(f):
        f["layers/2/weight"][0, 0] = np.nan
    _edit(path, put_nan)
    with pytest.raises(DataFormatError, match=r"m\.h5.*layers/2/weight.*NaN"):
        load_model(path)


def test_wrong_shape_for_chip_layer(model_path):
    path, _ = model_path
    def reshape(f):
        del f["layers/2/weight"]
        f["layers/2"].create_dataset("weight", data=np.zeros((11, 128)))
    _edit(path, reshape)
    with pytest.raises(DataFormatError, match=r"layers/2/weight.*fan-in 128.*120"):
        load_model(path)


@pytest.mark.parametrize("field,where", [
    ("dt_s", "/"), ("theta", "layers/1"), ("pool", "input"),
])
def test_missing_field_is_named(model_path, field, where):
    path, _ = model_path
    _edit(path, lambda f: f[where].attrs.__delitem__(field))
    with pytest.raises(DataFormatError, match=field):
        load_model(path)


def test_missing_weight_and_bad_values(model_path, tmp_path):
    path, _ = model_path
    _edit(path, lambda f: f["layers/0"].__delitem__("weight"))
    with pytest.raises(DataFormatError, match="layers/0/weight"):
        load_model(path)
    with pytest.raises(DataFormatError, match="not found"):
        load_model(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError, match="junk.h5"):
        load_model(tmp_path / "junk.h5")


def test_inf_acceleration_and_unknown_version(tmp_path):
    net = Network.create((8, 4, 2), seed=0)
    p = save_model(net, tmp_path / "a.h5")
    _edit(p, lambda f: f.attrs.__setitem__("acceleration", np.inf))
    with pytest.raises(DataFormatError, match="acceleration"):
        load_model(p)
    p = save_model(net, tmp_path / "b.h5")
    _edit(p, lambda f: f.attrs.__setitem__("format_version", 99))
    with pytest.raises(DataFormatError, match="format_version"):
        load_model(p)


def test_save_refuses_nan(tmp_path):
    net = Network.create((8, 4, 2), seed=0)
    net.layers[0].weight[0, 0] = np.inf
    with pytest.raises(DataFormatError, match="layers/0/weight"):
        save_model(net, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
