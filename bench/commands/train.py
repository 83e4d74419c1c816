"""``snnbench train``: train a network for the chip on an event data set (issue 7).

``snnbench train --data DIR --out MODEL.h5 [--epochs N] [--hw-aware] [--seed N] [--json]``

Loads the train and test splits of a DVS128-Gesture-layout directory (the release or
``snnbench data synth``), preprocesses them (6 px padding, 7x7 pooling, 5 ms bins, 300 steps),
trains the 800-480-120-11 network with surrogate-gradient BPTT (bench.network.train) and writes
the model file.  JSON: ``train_accuracy``, ``test_accuracy`` (software, ideal weights, fractions),
``seconds_per_epoch``, plus ``ms_per_sample_epoch``, ``epochs``, ``samples`` and, with
``--hw-aware``, ``test_accuracy_quantized`` (chip layer quantised to 16 conductance levels).
A progress bar with loss and accuracy goes to stderr unless ``--json``.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.commands._args import batch_size, int_range, pos_float, sample_limit, seed_int
from bench.errors import UsageError


MAX_HIDDEN = 4096
"""Largest hidden layer (neurons): BPTT keeps 300 steps of every layer's state per sample."""
MAX_HIDDEN_LAYERS = 8


def _sizes(text: str) -> list[int]:
    try:
        v = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not v or any(n < 1 for n in v):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    big = [n for n in v if n > MAX_HIDDEN]
    if big:
        raise argparse.ArgumentTypeError(
            f"hidden layer size {big[0]} exceeds {MAX_HIDDEN} (the 800-480-120-11 reference uses 480; "
            f"larger layers do not fit training memory), got {text!r}")
    if len(v) > MAX_HIDDEN_LAYERS:
        raise argparse.ArgumentTypeError(f"at most {MAX_HIDDEN_LAYERS} hidden layers, got {len(v)} in {text!r}")
    return v


DEFAULT_EPOCHS = 40


def register(subparsers, common_parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "train", parents=[common_parent], help="train a network (surrogate-gradient BPTT)",
        description="Train the chip's network on a DVS128-Gesture-layout data directory.")
    p.add_argument("--data", required=True, metavar="DIR", help="data directory (release or 'data synth')")
    p.add_argument("--out", required=True, metavar="MODEL.h5", help="model file to write")
    p.add_argument("--epochs", type=int_range(1, 100_000, "a checkpoint lets a longer run resume"), default=DEFAULT_EPOCHS, help=f"epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--hw-aware", action="store_true",
                   help="hardware-aware training of the chip layer (16-level quantisation, noise, mismatch)")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=batch_size, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=pos_float, default=0.005, help="Adam learning rate (default 0.005)")
    p.add_argument("--hidden", type=_sizes, default=[480, 120], metavar="N,N",
                   help="hidden layer sizes (default 480,120)")
    p.add_argument("--surrogate", choices=("exp", "sigmoid", "fast_sigmoid"), default="exp",
                   help="surrogate derivative (default exp(-|u-theta|))")
    p.add_argument("--no-augment", action="store_true", help="no event augmentation")
    p.add_argument("--limit", type=sample_limit, default=None, metavar="N", help="use at most N samples per split")
    p.add_argument("--checkpoint", metavar="FILE", default=None,
                   help="write a resumable checkpoint after every epoch")
    p.add_argument("--resume", metavar="FILE", default=None, help="continue from a checkpoint")
    p.set_defaults(func=train_command)


def preprocess_config(net_input: Any):
    """bench.data PreprocessConfig for a network's InputConfig."""
    from bench.data.preprocess import PreprocessConfig

    bin_us = int(round(net_input.bin_s * 1e6))
    return PreprocessConfig(sample_duration_us=bin_us * net_input.steps, padding=net_input.padding,
                            pool=net_input.pool, bin_us=bin_us,
                            sensor=(net_input.sensor_width, net_input.sensor_height))


def run_training(data: str | Path, out: str | Path, *, epochs: int = DEFAULT_EPOCHS, hw_aware: bool = False,
                 seed: int = 0, batch_size: int = 8, lr: float = 0.005, hidden: list[int] | None = None,
                 surrogate: str = "exp", augment: bool = True, limit: int | None = None,
                 checkpoint: str | Path | None = None, resume: str | Path | None = None,
                 progress: bool = True, log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Library entry point of ``snnbench train`` (returns the JSON dict).  ``log``, if given, is
    called with each epoch's history record (``bench.network.train.train``'s ``log``: epoch, lr,
    loss, running train accuracy, seconds, held-out ``test_accuracy``) as soon as it is made;
    an exception it raises ends the training there and propagates (the model file is not written)."""
    from bench.data.dataset import load_split
    from bench.data.preprocess import batch_to_spikes
    from bench.network import train as T
    from bench.network.augment import AugmentConfig, augmented_spikes
    from bench.network.hwaware import chip_defaults, quantize
    from bench.network.model import InputConfig, Network
    from bench.network.modelfile import load_checkpoint, round_weights, save_model
    from bench.runstore import check_writable

    if int(epochs) < 1:
        raise UsageError(f"--epochs {epochs}: train at least one epoch (>= 1)")
    out = check_writable(out)
    if checkpoint is not None:
        checkpoint = check_writable(checkpoint)
        if Path(checkpoint).resolve() == Path(out).resolve():
            raise UsageError(f"--checkpoint {checkpoint}: must differ from --out")
    if resume is not None and not Path(resume).is_file():
        raise UsageError(f"--resume {resume}: checkpoint file not found")
    hidden = [480, 120] if hidden is None else list(hidden)
    t_start = time.perf_counter()
    train_s = load_split(data, "train", limit=limit)
    test_s = load_split(data, "test", limit=limit)
    if not train_s:
        raise UsageError(f"--data {data}: the train split has no samples")
    inp = InputConfig()
    pcfg = preprocess_config(inp)
    x_train = batch_to_spikes(train_s, pcfg)
    y_train = np.array([s.label for s in train_s], dtype=np.int64)
    x_test = batch_to_spikes(test_s, pcfg)
    y_test = np.array([s.label for s in test_s], dtype=np.int64)
    n_classes = 11
    if y_train.max(initial=0) >= n_classes or y_test.max(initial=0) >= n_classes:
        raise UsageError(f"--data {data}: labels beyond {n_classes} classes")

    cfg = T.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, surrogate=surrogate,
                        hw_aware=hw_aware, hw=chip_defaults() if hw_aware else None)
    rng = np.random.default_rng(seed)
    opt = None
    start_epoch = 0
    if resume is not None:
        net, opt_state, start_epoch, rng_state = load_checkpoint(resume)
        if net.sizes != [inp.n_inputs, *hidden, n_classes]:
            raise UsageError(f"--resume {resume}: network {net.sizes} does not match "
                             f"{[inp.n_inputs, *hidden, n_classes]}")
        if opt_state is not None:
            opt = T.Adam([layer.weight for layer in net.layers], cfg.lr, cfg.betas, cfg.eps, cfg.l2)
            opt.load_state_dict(opt_state)
        if rng_state is not None:
            rng.bit_generator.state = rng_state
    else:
        net = Network.create([inp.n_inputs, *hidden, n_classes], seed=seed, input=inp)
        init_rng = np.random.default_rng([seed, 1])
        calib = x_train[init_rng.permutation(len(x_train))[:16]]
        T.calibrate_init(net, calib, 0.05)

    aug_cfg = AugmentConfig(sensor=pcfg.sensor)
    batch_fn = None
    if augment:
        def batch_fn(idx: np.ndarray, r: np.random.Generator) -> np.ndarray:
            return augmented_spikes([train_s[i] for i in idx], r, aug_cfg, pcfg)

    t_train = time.perf_counter()
    hist = T.train(net, x_train, y_train, cfg, x_test=x_test, y_test=y_test, batch_fn=batch_fn,
                   progress=progress, checkpoint=checkpoint, start_epoch=start_epoch, optimizer=opt, rng=rng,
                   log=log)
    train_seconds = time.perf_counter() - t_train
    epochs_run = max(len(hist.epochs), 0)
    round_weights(net, np.float32)  # the model file stores float32; evaluate what is stored
    train_acc = T.evaluate(net, x_train, y_train)
    test_acc = T.evaluate(net, x_test, y_test)
    result: dict[str, Any] = {
        "train_accuracy": train_acc,
        "test_accuracy": test_acc,
        "seconds_per_epoch": train_seconds / epochs_run if epochs_run else 0.0,
        "ms_per_sample_epoch": 1e3 * train_seconds / (epochs_run * len(y_train)) if epochs_run else 0.0,
        "epochs": epochs,
        "samples": {"train": int(len(y_train)), "test": int(len(y_test))},
        "hw_aware": hw_aware,
    }
    if hw_aware:
        q = net.copy()
        q.layers[q.chip_layer].weight = quantize(q.layers[q.chip_layer].weight, cfg.hw)
        result["test_accuracy_quantized"] = T.evaluate(q, x_test, y_test)
    manifest = None
    mpath = Path(data) / "synth.json"
    if mpath.is_file():
        import json

        try:
            m = json.loads(mpath.read_text())
            manifest = {k: m.get(k) for k in ("generator", "version", "seed", "per_class", "samples",
                                               "train", "test", "events")}
        except (OSError, ValueError):
            manifest = None
    net.metadata.update({
        "training": {
            "command": "snnbench train",
            "data": str(data), "data_manifest": manifest, "epochs": epochs, "seed": seed, "hw_aware": hw_aware,
            "augment": aug_cfg.to_dict() if augment else None, "limit": limit,
            "config": cfg.to_dict(), "history": hist.epochs,
            "train_accuracy": train_acc, "test_accuracy": test_acc,
            "samples": result["samples"], "seconds": time.perf_counter() - t_start,
        }
    })
    save_model(net, out, weight_dtype=np.float32)
    result["out"] = str(out)
    result["summary"] = (f"trained {net.sizes} for {epochs} epochs: train accuracy {train_acc:.3f}, "
                         f"test accuracy {test_acc:.3f}, {result['seconds_per_epoch']:.1f} s/epoch "
                         f"({result['ms_per_sample_epoch']:.1f} ms/sample/epoch) -> {out}")
    return result


def train_command(args) -> dict[str, Any]:
    return run_training(args.data, args.out, epochs=args.epochs, hw_aware=args.hw_aware, seed=args.seed,
                        batch_size=args.batch_size, lr=args.lr, hidden=args.hidden, surrogate=args.surrogate,
                        augment=not args.no_augment, limit=args.limit, checkpoint=args.checkpoint,
                        resume=args.resume, progress=not args.json)
