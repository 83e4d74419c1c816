"""``snnbench budget``: the error budget of a model on the simulated chip (issue 15).

    snnbench budget --model MODEL.h5 --data DIR [--split test] [--limit N]
                    [--fidelity typical] [--age-s 0] [--chips 3] [--out DIR] [--json]
                    [--scale mse|trained] [--route|--no-route]

Accuracy with each non-ideality of the chip model ALONE (an ideal chip with only that effect
on, at the preset's value) and ALL TOGETHER (the preset), see ``bench/budget.py``.  Writes
``OUT/budget.h5`` (a run file, kind ``budget``) and its report ``OUT/report/`` (table and bar
chart ``error_budget.png``).  The budget needs the simulator (its effects are switched through
``pesim://`` parameter overrides); it is a planning tool, not a measurement of silicon.

JSON: the budget (``software_accuracy``, ``rows`` [{key, label, accuracy, drop_points,
drop_min, drop_max, params, ...}], ``all``, ``sum_of_rows_points``, ``interaction_points``)
plus ``run_file``, ``report``, ``figures``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.commands._args import MAX_WAIT_S, float_range, int_range, sample_limit, seed_int
from bench.errors import UsageError


def register(subparsers, common_parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "budget", parents=[common_parent],
        help="error budget: accuracy with each chip non-ideality alone and all together",
        description="Score a model on the simulated chip with each non-ideality alone (ideal chip + "
                    "that effect at the preset's value) and all together; table, bar chart, report.")
    p.add_argument("--model", required=True, metavar="MODEL.h5", help="model file (snnbench-model HDF5)")
    p.add_argument("--data", required=True, metavar="DIR", help="data directory (DVS128 Gesture layout)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="split (default test)")
    p.add_argument("--limit", type=sample_limit, default=None, metavar="N", help="at most N samples")
    p.add_argument("--fidelity", default="typical", choices=["ideal", "typical", "worst"],
                   help="preset whose values the effects take (default typical)")
    p.add_argument("--age-s", type=float_range(0.0, MAX_WAIT_S, "the board's WAIT limit"), default=0.0,
                   metavar="S", help="chip time between programming and inference, seconds (default 0)")
    p.add_argument("--chips", type=int_range(1, 64, "each die is programmed once per row"), default=3,
                   metavar="N", help="dies (chip seeds) per noisy row (default 3)")
    p.add_argument("--seed", type=seed_int, default=1, help="first chip seed (default 1)")
    p.add_argument("--run-seed", type=seed_int, default=0, help="noise-stream seed (default 0)")
    p.add_argument("--out", default="runs/budget", metavar="DIR", help="output directory (default runs/budget)")
    p.add_argument("--scale", choices=["mse", "trained"], default=None,
                   help="chip layer scale: the mapper's MSE-optimal one (default) or the g_unit a hw-aware / "
                        "fine-tuned layer was trained for")
    p.add_argument("--route", action=argparse.BooleanOptionalAction, default=None,
                   help="route around the stuck cells write-verify reports (default: on); --no-route programs "
                        "the layer as mapped, stuck cells and all (the flow the chip calibration was measured with)")
    p.set_defaults(func=budget_command)


def budget_command(args) -> dict[str, Any]:
    from bench.budget import format_budget, measure_budget
    from bench.commands.infer import preprocess_config
    from bench.data.dataset import load_split, split_files
    from bench.data.preprocess import batch_to_spikes
    from bench.hybrid import require_chip_layers
    from bench.network.modelfile import load_model
    from bench.runstore import check_writable

    t0 = time.perf_counter()
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a directory")
    run_path = check_writable(out_dir / "budget.h5")
    model = Path(args.model)
    net = load_model(model)
    require_chip_layers(net, str(model))
    cfg = preprocess_config(net)
    split_files(args.data, args.split)
    samples = load_split(args.data, args.split, args.limit,
                         sensor=(int(net.input.sensor_width), int(net.input.sensor_height)))
    if not samples:
        raise UsageError(f"--data {args.data}: split {args.split!r} has no samples")
    labels = np.array([s.label for s in samples], dtype=np.int64)
    if labels.max() >= net.n_classes:
        raise UsageError(f"--data {args.data}: labels go up to {labels.max()}, the model has {net.n_classes} classes")
    x = batch_to_spikes(samples, cfg)
    log = None if args.json else (lambda m: print(f"budget: {m}", file=sys.stderr, flush=True))
    seeds = tuple(range(args.seed, args.seed + args.chips))
    from bench.hybrid import DEFAULT_ROUTE_STUCK, DEFAULT_SCALE_POLICY

    mapping = {"scale_policy": args.scale or DEFAULT_SCALE_POLICY,
               "route_stuck": DEFAULT_ROUTE_STUCK if args.route is None else bool(args.route)}
    budget = measure_budget(net, x, labels, fidelity=args.fidelity, chip_seeds=seeds,
                            run_seed=args.run_seed, age_s=args.age_s, mapping=mapping, log=log)
    write_budget(run_path, budget, model=str(model), data=str(args.data), split=args.split)
    rep = render_report(run_path, out_dir / "report")
    res = dict(budget, run_file=str(run_path), report=rep["report"], figures=rep["figures"],
               wall_seconds=time.perf_counter() - t0)
    if not args.json:
        return {"summary": format_budget(budget) + f"\n\nrun file: {run_path}\nreport:   {rep['report']}"}
    return res


def write_budget(run_path: Path, budget: dict[str, Any], **provenance: Any) -> None:
    """A run file of kind ``budget`` holding the budget (``/budget`` group, JSON attribute)."""
    from bench.runstore import RunFile

    with RunFile(run_path, "budget", seeds={"chip_seeds": budget["chip_seeds"], "run_seed": budget["run_seed"]},
                 fidelity=budget["fidelity"], age_s=budget["age_s"], **provenance) as rf:
        store_budget(rf, budget)


def store_budget(rf, budget: dict[str, Any]) -> None:
    """Write ``budget`` into an open run file (the report draws it from ``/budget``)."""
    rows = budget["rows"] + [budget["all"]]
    rf.write("budget/drop_points", np.array([r["drop_points"] for r in rows]), units="points",
             keys=json.dumps([r["key"] for r in rows]))
    rf.set_attrs("budget", budget_json=json.dumps(budget))
    rf.flush()


def render_report(run_path: Path, out: Path) -> dict[str, Any]:
    """The run file's report, rendered in its own process (as the demo does)."""
    from bench.demo import _report_subprocess

    return _report_subprocess(run_path, out)
