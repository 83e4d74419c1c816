"""``snnbench infer`` end to end on the virtual chip, and its input validation."""
import json

import h5py
import numpy as np
import pytest

from tests.strict_json import loads_strict

import sim_backend  # noqa: F401
from bench.cli import main
from bench.data.synth import generate
from bench.network.model import Network, predict
from bench.network.modelfile import load_model, save_model

IDEAL = "pesim://?seed=2&fidelity=ideal"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("infer")
    generate(d / "syn", seed=0, per_class=4)
    save_model(Network.create((800, 480, 120, 11), seed=0, init_scale=3.0), d / "m.h5")
    return d


def _run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_infer_json_and_run_file(world, capsys):
    out = world / "run.h5"
    code, so, se = _run(capsys, "infer", "--chip", IDEAL, "--model", str(world / "m.h5"),
                        "--data", str(world / "syn"), "--limit", "13", "--batch", "5",
                        "--out", str(out), "--json")
    assert code == 0, se
    d = loads_strict(so)
    assert d["samples"] == 13
    # accuracies and drop counted independently: the software model run here on the stored
    # inputs, the chip's stored predictions against the labels
    net = load_model(world / "m.h5")
    with h5py.File(out, "r") as f:
        x = np.unpackbits(f["inputs_packed"][:], axis=2, bitorder="little").astype(bool)
        labels, chip_pred = f["labels"][:], f["predictions"][:]
    sw_correct = int(np.sum(predict(net.forward(x)[-1]) == labels))
    chip_correct = int(np.sum(chip_pred == labels))
    assert d["software_accuracy"] == sw_correct / 13
    assert d["accuracy"] == chip_correct / 13
    assert d["drop_points"] == pytest.approx(100 * (sw_correct - chip_correct) / 13)
    assert d["samples_per_second"] > 0 and d["chip_latency_s"] == pytest.approx(14.31e-6)
    assert d["model_check"] == 1.0  # ideal fidelity: chip == software model with realised weights
    assert [p["where"] for p in d["plan"]] == ["software", "software", "chip"]
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] and f.attrs["kind"] == "infer"
        assert f["inputs_packed"].shape == (13, 300, 100)
        x = np.unpackbits(f["inputs_packed"][:], axis=2, bitorder="little").astype(bool)
        assert x.shape == (13, 300, 800) and x.any()
        assert f["chip_output_spikes"].shape == (13, 300, 12)
        assert f["output_spikes"].shape == (13, 300, 11)
        cm = f["confusion"][:]
        assert cm.sum() == 13 and np.trace(cm) == round(d["accuracy"] * 13)
        np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(f["labels"][:], minlength=11))
        assert np.mean(f["predictions"][:] == f["labels"][:]) == pytest.approx(d["accuracy"])
        plan = json.loads(f.attrs["plan"])
        assert plan["layers"][2]["where"] == "chip"
        c = f["clocks"].attrs
        assert c["timebase_dt_s"] == pytest.approx(100e-9)
        assert c["dataset_seconds"] == pytest.approx(13 * 1.5)
        assert c["chip_seconds"] == pytest.approx(13 * (30e-6 + 14.31e-6), rel=1e-6)
        assert f["sample_start_us"].attrs["clock"] == "dataset"
        assert json.loads(f.attrs["chip_info"])["rows"] == 128
        assert f.attrs["model_sha256"]


def test_infer_over_socket_default_station(world, capsys):
    """No --chip: the built-in simulated bench, reached over socket:// (typical fidelity)."""
    code, so, se = _run(capsys, "infer", "--model", str(world / "m.h5"), "--data", str(world / "syn"),
                        "--limit", "4", "--out", str(world / "run_sock.h5"), "--json")
    assert code == 0, se
    d = loads_strict(so)
    assert d["chip_url"].startswith("socket://") and d["samples"] == 4


@pytest.mark.parametrize("case", ["model", "data", "split_empty", "limit", "accel", "corrupt_model"])
def test_infer_bad_input_is_one_line_before_the_chip(world, capsys, case, tmp_path):
    args = {"--model": str(world / "m.h5"), "--data": str(world / "syn"), "--out": str(tmp_path / "r.h5")}
    extra = []
    if case == "model":
        args["--model"] = str(tmp_path / "missing.h5")
    elif case == "data":
        args["--data"] = str(tmp_path / "nowhere")
    elif case == "split_empty":
        extra = ["--limit", "0"]
    elif case == "limit":
        extra = ["--limit", "-1"]
    elif case == "accel":
        extra = ["--acceleration", "1e12"]
    elif case == "corrupt_model":
        p = tmp_path / "bad.h5"
        p.write_bytes(b"not hdf5")
        args["--model"] = str(p)
    # an unreachable chip: validation must fail before the link is opened
    argv = ["infer", "--chip", "socket://127.0.0.1:9"] + [x for kv in args.items() for x in kv] + extra
    code, so, se = _run(capsys, *argv)
    assert code == 2, se
    assert se.startswith("snnbench: error:") and se.count("\n") == 1 and "Traceback" not in se
    assert not (tmp_path / "r.h5").exists()


def test_acceleration_factor_changes_chip_clock_not_spikes(world, capsys):
    """Proportional time scaling: another factor gives another chip step, the same spikes."""
    outs = {}
    for k in ("50000", "12500"):
        out = world / f"acc{k}.h5"
        code, so, se = _run(capsys, "infer", "--chip", IDEAL, "--model", str(world / "m.h5"),
                            "--data", str(world / "syn"), "--limit", "3", "--acceleration", k,
                            "--out", str(out), "--json")
        assert code == 0, se
        d = loads_strict(so)
        assert d["dt_s"] == pytest.approx(0.005 / float(k)) and d["fidelity"] == "ideal"
        with h5py.File(out, "r") as f:
            outs[k] = f["chip_output_spikes"][:]
            assert f["clocks"].attrs["chip_seconds"] == pytest.approx(3 * (300 * 0.005 / float(k) + 14.31e-6))
    assert outs["50000"].any()
    np.testing.assert_array_equal(outs["50000"], outs["12500"])
