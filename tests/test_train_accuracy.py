"""Accuracy on the default synthetic set (issue 7: software test accuracy >= 95 %).

- the shipped reference model (bench/models/reference.h5) on a freshly generated default set
  (fast: generation + one software forward of the test split);
- training from scratch with the documented command (slow: a few minutes on 2 cores).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.network.modelfile import load_model

REFERENCE = Path(__file__).resolve().parents[1] / "bench" / "models" / "reference.h5"


@pytest.fixture(scope="module")
def default_set(default_synth_set):
    """The default synthetic set, generated once per test run (tests/conftest.py)."""
    return default_synth_set


@pytest.fixture(scope="module")
def heldout(default_set):
    """(input spikes, labels) of the default set's test split, preprocessed once."""
    return _split(default_set, "test")


def _split(data_dir, split):
    from bench.commands.train import preprocess_config
    from bench.data.dataset import load_split
    from bench.data.preprocess import batch_to_spikes
    from bench.network.model import InputConfig

    samples = load_split(data_dir, split)
    return (batch_to_spikes(samples, preprocess_config(InputConfig())),
            np.array([s.label for s in samples]))


def test_reference_model_reaches_95_percent_on_the_default_set(default_set, heldout):
    import json

    net = load_model(REFERENCE)
    trained_on = net.metadata["training"]["data_manifest"]
    now = json.loads((default_set / "synth.json").read_text())
    assert (trained_on["events"], trained_on["samples"], trained_on["seed"]) == \
        (now["events"], now["samples"], now["seed"]), (
        "the default synthetic set changed since bench/models/reference.h5 was trained; retrain it "
        "with the command in docs/training.md")
    assert net.sizes == [800, 480, 120, 11] and net.chip_layer == 2
    x, y = heldout
    assert len(y) == 88
    acc = float(np.mean(net.predict(x) == y))
    assert acc >= 0.95, f"reference model software test accuracy {acc:.3f} < 0.95"
    meta = net.metadata["training"]
    assert meta["test_accuracy"] == pytest.approx(acc)  # the figure stored in the file is this one


def test_reference_model_survives_quantisation(heldout):
    from bench.network.hwaware import chip_defaults, quantize

    net = load_model(REFERENCE)
    q = net.copy()
    q.layers[q.chip_layer].weight = quantize(q.layers[q.chip_layer].weight, chip_defaults())
    x, y = heldout
    assert float(np.mean(q.predict(x) == y)) >= 0.93


class _Reached95(Exception):
    """Raised from the per-epoch log once the held-out accuracy reaches 95 %."""


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_training_from_scratch_reaches_95_percent(default_set, tmp_path):
    """The documented training (the reference model's own recipe: its epochs, seed, hw-aware
    setting and lr schedule) from random weights reaches the issue-7 bar, >= 95 % on the 88
    held-out samples.  It stops at the first epoch whose held-out accuracy (evaluated by the
    training loop itself, every epoch) reaches the bar, instead of always running all 40 epochs:
    the reference run (docs/training.md, history in bench/models/reference.h5) crossed it at
    epoch 14 of 40, so ~2/3 of the cost is skipped; a recipe that only gets there in the last
    epochs still passes through the final, float32-rounded model.  The bar is the issue's, not a
    figure recorded from this code; chance is 1/11 (9 %).

    Kills (planted, both fail: held-out accuracy never leaves chance level over 40 epochs):
    the surrogate gradient's sign flipped (train.surrogate_at), the loss ignoring the label
    (train.count_targets giving every class the same target)."""
    from bench.commands.train import run_training

    meta = load_model(REFERENCE).metadata["training"]
    seen: list[dict] = []

    def stop_at_the_bar(rec: dict) -> None:
        seen.append(rec)
        if rec.get("test_accuracy", 0.0) >= 0.95:
            raise _Reached95

    try:
        res = run_training(default_set, tmp_path / "m.h5", epochs=meta["epochs"], seed=meta["seed"],
                           hw_aware=meta["hw_aware"], progress=False, log=stop_at_the_bar)
    except _Reached95:
        assert len(seen) <= meta["epochs"] and seen[-1]["test_accuracy"] >= 0.95
        return
    assert len(seen) == meta["epochs"]          # the log saw every epoch, and none reached the bar
    assert res["test_accuracy"] >= 0.95, (res, [r.get("test_accuracy") for r in seen])
