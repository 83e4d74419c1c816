"""``snnbench train`` end to end on a tiny synthetic set (fast), and its input errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli import main
from bench.network.modelfile import load_model


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from bench.data import synth

    return synth.generate(tmp_path_factory.mktemp("d") / "synth", seed=1, per_class=2, subjects=2)


def test_train_cli_json_and_model_file(tiny_data, tmp_path, capsys):
    out = tmp_path / "m.h5"
    rc = main(["train", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--hidden", "24,12",
               "--seed", "3", "--hw-aware", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    for key in ("train_accuracy", "test_accuracy", "seconds_per_epoch", "test_accuracy_quantized"):
        assert key in res
    assert 0.0 <= res["train_accuracy"] <= 1.0 and res["seconds_per_epoch"] > 0
    assert captured.err == ""  # no progress bar with --json
    net = load_model(out)
    assert net.sizes == [800, 24, 12, 11] and net.chip_layer == 2
    meta = net.metadata["training"]
    assert meta["seed"] == 3 and meta["hw_aware"] is True and len(meta["history"]) == 1
    # deterministic: same command, same weights
    out2 = tmp_path / "m2.h5"
    assert main(["train", "--data", str(tiny_data), "--out", str(out2), "--epochs", "1", "--hidden", "24,12",
                 "--seed", "3", "--hw-aware", "--json"]) == 0
    capsys.readouterr()
    for a, b in zip(net.layers, load_model(out2).layers):
        np.testing.assert_array_equal(a.weight, b.weight)


def test_train_cli_checkpoint_and_resume(tiny_data, tmp_path, capsys):
    ck = tmp_path / "ck.h5"
    args = ["train", "--data", str(tiny_data), "--hidden", "16,8", "--no-augment", "--json"]
    assert main(args + ["--out", str(tmp_path / "a.h5"), "--epochs", "2"]) == 0
    assert main(args + ["--out", str(tmp_path / "b.h5"), "--epochs", "1", "--checkpoint", str(ck)]) == 0
    assert main(args + ["--out", str(tmp_path / "c.h5"), "--epochs", "2", "--resume", str(ck)]) == 0
    capsys.readouterr()
    for a, c in zip(load_model(tmp_path / "a.h5").layers, load_model(tmp_path / "c.h5").layers):
        np.testing.assert_array_equal(a.weight, c.weight)


def test_train_cli_data_without_labels_is_a_clear_error(tiny_data, tmp_path, capsys):
    import shutil

    bad = tmp_path / "nolabels"
    shutil.copytree(tiny_data, bad)
    for f in bad.glob("*_labels.csv"):
        f.unlink()
    rc = main(["train", "--data", str(bad), "--out", str(tmp_path / "m.h5"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "labels" in err and "Traceback" not in err
    rc = main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m.h5")])
    assert rc == 2
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "m.h5"), "--epochs", "-1"])
    assert exc.value.code == 2


def test_train_cli_bad_checkpoint_path_fails_before_training(tiny_data, tmp_path, capsys):
    regfile = tmp_path / "regfile"
    regfile.write_text("x")
    out = tmp_path / "m.h5"
    rc = main(["train", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--hidden", "8,8",
               "--checkpoint", str(regfile / "x.ckpt")])
    err = capsys.readouterr().err
    assert rc == 2 and "regfile/x.ckpt" in err and "Traceback" not in err
    assert not out.exists()  # failed up front: no training, no model written
    rc = main(["train", "--data", str(tiny_data), "--out", str(out), "--resume", str(tmp_path / "none.ckpt")])
    assert rc == 2 and "none.ckpt" in capsys.readouterr().err and not out.exists()


def test_train_cli_requires_at_least_one_epoch(tiny_data, tmp_path, capsys):
    out = tmp_path / "m.h5"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(tiny_data), "--out", str(out), "--epochs", "0"])
    assert exc.value.code == 2 and ">= 1" in capsys.readouterr().err
    assert not out.exists()
    from bench.commands.train import run_training
    from bench.errors import UsageError

    with pytest.raises(UsageError, match="epoch"):
        run_training(tiny_data, out, epochs=0)
