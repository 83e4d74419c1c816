"""``snnbench finetune``: chip-in-the-loop fine-tuning of the on-chip layer (issue 7).

``snnbench finetune [--chip URL] --model MODEL.h5 --data DIR --out MODEL2.h5 [--json]``

Forward pass of the chip layer on the chip, backward pass with the model and the measured
outputs, Adam on the layer's weights, re-map at a fixed scale, reprogram only the cells whose
target level changed, stop when chip accuracy on a held-out split (subjects held out of the
train split) stops improving; writes MODEL2.h5 (best round's chip layer) and a run file
(``MODEL2.finetune.h5`` or ``--run RUN.h5``) with every round.  See bench/finetune.py.

JSON: ``chip_accuracy_before``, ``chip_accuracy_after`` (test split, on the chip, before / after),
``software_accuracy`` (test split, the input model in software), ``cells_reprogrammed`` (all
rounds, excluding the initial programming), ``rounds``, ``best_round``, ``per_round`` and more.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.commands._args import add_chip_argument, batch_size, int_range, pos_float, sample_limit, seed_int
from bench.errors import UsageError


def register(subparsers, common_parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "finetune", parents=[common_parent], help="chip-in-the-loop fine-tuning of the on-chip layer",
        description="Fine-tune the model's chip layer with the forward pass measured on the chip.")
    add_chip_argument(p)
    p.add_argument("--model", required=True, metavar="MODEL.h5", help="model file to start from")
    p.add_argument("--data", required=True, metavar="DIR", help="data directory (release or 'data synth')")
    p.add_argument("--out", required=True, metavar="MODEL2.h5", help="fine-tuned model file to write")
    p.add_argument("--run", metavar="RUN.h5", default=None,
                   help="run file (default: MODEL2.finetune.h5 next to --out)")
    p.add_argument("--rounds", type=int_range(1, 10_000, "each round programs the chip layer again"), default=20, metavar="N", help="at most N rounds (default 20)")
    p.add_argument("--patience", type=int_range(1, 10_000, "at most the number of rounds"), default=3, metavar="N",
                   help="stop after N rounds without held-out improvement (default 3)")
    p.add_argument("--lr", type=pos_float, default=0.1, help="Adam learning rate (default 0.1)")
    p.add_argument("--batch-size", type=batch_size, default=64, metavar="N",
                   help="samples per round's chip forward / gradient step (default 64)")
    p.add_argument("--val-subjects", type=int_range(1, 1000, "more subjects than any data set has"), default=2, metavar="N",
                   help="subjects of the train split held out for the stopping rule (default 2)")
    p.add_argument("--limit", type=sample_limit, default=None, metavar="N", help="at most N samples per split")
    p.add_argument("--seed", type=seed_int, default=0, help="batch order seed (default 0)")
    p.set_defaults(func=finetune_command)


def default_run_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".finetune.h5") if out.suffix else out.with_name(out.name + ".finetune.h5")


def finetune_command(args) -> dict[str, Any]:
    from bench.finetune import FinetuneConfig

    cfg = FinetuneConfig(lr=args.lr, max_rounds=args.rounds, patience=args.patience,
                         batch_size=args.batch_size, val_subjects=args.val_subjects, seed=args.seed)
    return run_finetune(args.model, args.data, args.out, run=args.run, chip_url=args.chip, cfg=cfg,
                        limit=args.limit, station_path=getattr(args, "station", None),
                        progress=not args.json)


def run_finetune(model: str | Path, data: str | Path, out: str | Path, *, run: str | Path | None = None,
                 chip_url: str | None = None, cfg=None, limit: int | None = None,
                 station_path: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Library entry point of ``snnbench finetune`` (returns the JSON dict)."""
    from bench.commands.infer import _fidelity, _sha256, preprocess_config
    from bench.data.dataset import load_split, split_files
    from bench.data.preprocess import batch_to_spikes
    from bench.finetune import FinetuneConfig, finetune, split_by_subject
    from bench.hybrid import require_chip_layers
    from bench.network.modelfile import load_model, round_weights, save_model
    from bench.programming import schedule_for_station
    from bench.runstore import RunFile, check_writable
    from bench.session import open_bench, resolve_station
    from bench.streaming import TimeBase

    t_start = time.perf_counter()
    cfg = cfg or FinetuneConfig()
    out = check_writable(out)
    run_path = check_writable(run if run is not None else default_run_path(out))
    if Path(run_path).resolve() == Path(out).resolve():
        raise UsageError(f"--run {run_path}: the run file must differ from --out")
    model = Path(model)
    net = load_model(model)
    if Path(out).resolve() == model.resolve():
        raise UsageError(f"--out {out}: would overwrite the input model; choose another path")
    require_chip_layers(net, str(model))
    pcfg = preprocess_config(net)
    timebase = TimeBase.for_network(net)
    station = resolve_station(station_path)
    schedule = schedule_for_station(station)
    split_files(data, "train")
    split_files(data, "test")
    sensor = (int(net.input.sensor_width), int(net.input.sensor_height))
    train_s = load_split(data, "train", limit, sensor=sensor)
    test_s = load_split(data, "test", limit, sensor=sensor)
    if not train_s:
        raise UsageError(f"--data {data}: the train split has no samples")
    tune_s, val_s, held = split_by_subject(train_s, cfg.val_subjects)
    held_out = "train-subjects"
    if not val_s:
        if not test_s:
            raise UsageError(f"--data {data}: one subject in the train split and no test split: no held-out data")
        tune_s, val_s, held, held_out = train_s, test_s, [], "test"
    for name, ss in (("train", train_s), ("test", test_s)):
        if ss and max(s.label for s in ss) >= net.n_classes:
            raise UsageError(f"--data {data}: {name} labels beyond the model's {net.n_classes} classes")

    def arr(ss):
        return (batch_to_spikes(ss, pcfg), np.array([s.label for s in ss], dtype=np.int64))

    x_tune, y_tune = arr(tune_s)
    x_val, y_val = arr(val_s)
    x_test, y_test = arr(test_s) if test_s else (None, None)
    cfg.batch_size = min(cfg.batch_size, len(y_tune))
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else None

    with open_bench(None, chip_url, station=station) as b:
        info = b.chip.info()
        with RunFile(run_path, "finetune", station=station.as_dict(),
                     seeds={"chip_seed": station.chip.seed, "run_seed": station.chip.run_seed,
                            "finetune_seed": cfg.seed},
                     chip_info=info.as_dict(), chip_url=b.chip_url, model=str(model),
                     model_sha256=_sha256(model), data=str(data), out=str(out), config=cfg.to_dict(),
                     held_out=held_out, held_out_subjects=held,
                     samples={"tune": int(len(y_tune)), "held_out": int(len(y_val)),
                              "test": int(0 if y_test is None else len(y_test))}) as rf:

            def on_round(rec: dict[str, Any], w: np.ndarray) -> None:
                rf.append("rounds/weights", w[None].astype(np.float64), units="weight unit (g_unit)",
                          doc="chip layer float (shadow) weights after the round's update (n_out, n_in)")
                for key, units in (("round", ""), ("val_accuracy", "fraction"), ("val_loss", ""),
                                   ("train_loss", ""), ("train_accuracy", "fraction"),
                                   ("cells_reprogrammed", "cells"), ("levels_changed", "cells"),
                                   ("pulses", "pulses"), ("stuck", "cells"), ("failed", "cells"),
                                   ("program_seconds", "s"), ("seconds", "s")):
                    v = rec.get(key)
                    rf.append(f"rounds/{key}", np.array([np.nan if v is None else v], dtype=np.float64),
                              units=units)
                rf.flush()

            res = finetune(net, b.chip, x_tune, y_tune, x_val, y_val, cfg, schedule=schedule,
                           timebase=timebase, baud=station.link.baud, latency_s=station.link.latency_s,
                           x_test=x_test, y_test=y_test, on_round=on_round, log=log)
            rf.write("best/shadow_weights", res.pop("shadow_weights"), units="weight unit (g_unit)")
            bad = res.pop("bad_cells_s", None)
            if bad is not None:
                rf.write("routing/bad_cells_s", bad, units="S",
                         doc="stuck cells the chip layer is routed around: read-back conductance, NaN = healthy")
            rf.write("best/quantised_weights", net.layers[net.chip_layer].weight, units="weight unit (scale_s)")
            runner_desc = res.pop("runner")
            rf.set_attrs("/chip_layers", **{str(i): d for i, d in runner_desc["chip_layers"].items()})
            fidelity = _fidelity(b, station)
            res.update({"held_out": held_out, "held_out_subjects": held, "fidelity": fidelity,
                        "chip_url": b.chip_url,
                        "samples": {"tune": int(len(y_tune)), "held_out": int(len(y_val)),
                                    "test": int(0 if y_test is None else len(y_test))}})
            res["seconds"]["wall"] = time.perf_counter() - t_start
            round_weights(net, np.float32)
            net.metadata["finetune"] = {
                "command": "snnbench finetune", "from_model": str(model), "data": str(data),
                "chip_url": b.chip_url, "fidelity": fidelity, "config": cfg.to_dict(),
                "held_out": held_out, "held_out_subjects": held, "rounds": res["rounds"],
                "best_round": res["best_round"], "scale_s": res["scale_s"],
                "chip_accuracy_before": res["chip_accuracy_before"],
                "chip_accuracy_after": res["chip_accuracy_after"],
                "software_accuracy": res["software_accuracy"],
                "cells_reprogrammed": res["cells_reprogrammed"], "run_file": str(run_path),
            }
            save_model(net, out, weight_dtype=np.float32)
            res["out"] = str(out)
            res["run"] = str(run_path)
            rf.set_attrs("/", result={k: v for k, v in res.items() if k != "per_round"})
    fmt = (lambda v: "n/a" if v is None else f"{100 * v:.2f}%")
    res["summary"] = (f"{res['rounds']} rounds (best {res['best_round']}), {res['cells_reprogrammed']} cells "
                      f"reprogrammed: chip {fmt(res['chip_accuracy_before'])} -> {fmt(res['chip_accuracy_after'])}, "
                      f"software {fmt(res['software_accuracy'])} ({held_out} held out); "
                      f"{res['seconds']['wall']:.1f} s -> {out}, run file {run_path}")
    return res
