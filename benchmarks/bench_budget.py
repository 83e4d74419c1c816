"""Issue 15 items 3-5: chip accuracy at ideal / typical / worst for the shipped reference models
(plain, hardware-aware, hardware-aware + chip-in-the-loop fine-tuned), and the error budget.

    .venv/bin/python benchmarks/bench_budget.py --data DIR|SPIKES.h5 [--quick] [--chips N] [--limit N]
                                                [--scale trained|mse] [--route|--no-route]

Every figure is an accuracy on the test split of DIR (a realistic synthetic set, ``snnbench data
synth``) or on a preprocessed spike file (``bench/models/gesture_test.h5``, the shipped test
split, ``bench.demo_data``), in software and on simulated dies (chip seeds 1..N, fresh ``pesim://`` boards, each
model mapped + programmed by write-verify + streamed as ``snnbench infer`` does); the same-run
baseline of every chip figure is the model's own software accuracy (drop in points).  Median
and min..max over the dies.  The error budget is taken for the plain and the hw-aware model at
``typical``.  Prints one JSON object at the end (--json) or tables.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True,
                    help="data directory (DVS128 Gesture layout) or a snnbench-spikes .h5 file "
                         "(e.g. bench/models/gesture_test.h5)")
    ap.add_argument("--models", default=str(ROOT / "bench" / "models"), help="directory of gesture_*.h5")
    ap.add_argument("--chips", type=int, default=5, help="dies per chip figure (default 5)")
    ap.add_argument("--limit", type=int, default=None, help="at most N test samples")
    ap.add_argument("--quick", action="store_true", help="2 dies, 60 samples")
    ap.add_argument("--no-budget", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--scale", choices=["trained", "mse"], default=None,
                    help="chip layer scale: the g_unit a hw-aware / fine-tuned layer was trained for, or "
                         "the mapper's MSE-optimal one (default: bench.hybrid.DEFAULT_SCALE_POLICY)")
    ap.add_argument("--route", action=argparse.BooleanOptionalAction, default=None,
                    help="route around the stuck cells write-verify reports "
                         "(default: bench.hybrid.DEFAULT_ROUTE_STUCK)")
    ap.add_argument("--fidelities", default="ideal,typical,worst", help="comma-separated presets")
    ap.add_argument("--no-age", action="store_true", help="skip the relaxation-age rows")
    a = ap.parse_args(argv)
    if a.quick:
        a.chips, a.limit = 2, a.limit or 60

    from bench.budget import format_budget, measure_budget
    from bench.commands.infer import preprocess_config
    from bench.data.dataset import load_split
    from bench.data.preprocess import batch_to_spikes
    from bench.network.modelfile import load_model
    from bench.training_gain import BASELINE, SHIPPED_MODELS, compare_models

    t0 = time.perf_counter()
    models = [(k, label, load_model(Path(a.models) / f)) for k, label, f in SHIPPED_MODELS
              if (Path(a.models) / f).is_file()]
    if not models:
        print(f"no gesture_*.h5 models in {a.models}", file=sys.stderr)
        return 2
    net0 = models[0][2]
    if Path(a.data).is_file():
        from bench.demo_data import load_spikes

        x, y, _ = load_spikes(a.data, net0, a.limit)
    else:
        samples = load_split(a.data, "test", a.limit,
                             sensor=(int(net0.input.sensor_width), int(net0.input.sensor_height)))
        x = batch_to_spikes(samples, preprocess_config(net0))
        y = np.array([s.label for s in samples], dtype=np.int64)
    from bench.hybrid import DEFAULT_ROUTE_STUCK, DEFAULT_SCALE_POLICY

    mapping = {"scale_policy": a.scale or DEFAULT_SCALE_POLICY,
               "route_stuck": DEFAULT_ROUTE_STUCK if a.route is None else a.route}
    dies = tuple(range(1, a.chips + 1))
    out: dict = {"data": a.data, "samples": int(y.size), "dies": list(dies), "mapping": mapping, "fidelity": {}}
    if not a.json:
        print(f"mapping: {mapping}", flush=True)
    tuned = [m for m in models if (m[2].metadata or {}).get("finetune")]
    general = [m for m in models if m not in tuned]
    for fid in a.fidelities.split(","):
        c = compare_models(general, x, y, fidelity=fid, chip_seeds=dies, mapping=mapping)
        for m in tuned:  # a fine-tuned model belongs to the die it was tuned on
            seed = _tuned_seed(m[2])
            c["rows"] += compare_models([m], x, y, fidelity=fid, chip_seeds=(seed,), mapping=mapping)["rows"]
        out["fidelity"][fid] = c
        if not a.json:
            print(f"\n{fid} ({len(dies)} dies, {y.size} samples)")
            print(f"{'model':<10} {'software':>9} {'chip median':>12} {'min..max':>16} {'drop median':>12}")
            own = {r["key"]: r["software_accuracy"] for r in c["rows"]}
            for r in c["rows"]:
                ch = 100 * np.array(r["chip_accuracies"])
                base = BASELINE.get(r["key"], r["key"]) if BASELINE.get(r["key"]) in own else r["key"]
                sw = 100 * own[base]
                note = "" if base == r["key"] else f"  (against {base} software; own {100 * r['software_accuracy']:.2f}%)"
                print(f"{r['key']:<10} {sw:8.2f}% {np.median(ch):11.2f}% {ch.min():7.2f}..{ch.max():6.2f}% "
                      f"{sw - np.median(ch):+11.2f}{note}", flush=True)
    out["age"] = {}
    for age in () if a.no_age else (1.0, 3600.0, 86400.0):
        c = compare_models(general[:1], x, y, fidelity="typical", chip_seeds=dies, age_s=age, mapping=mapping)
        out["age"][str(age)] = c
        r = c["rows"][0]
        ch = 100 * np.array(r["chip_accuracies"])
        if not a.json:
            print(f"typical, {r['key']}, {age:g} s after programming: chip median {np.median(ch):.2f}% "
                  f"({ch.min():.2f}..{ch.max():.2f}), drop {100 * r['software_accuracy'] - np.median(ch):+.2f}",
                  flush=True)
    if not a.no_budget:
        out["budget"] = {}
        for key, _, net in general[:2]:
            b = measure_budget(net, x, y, fidelity="typical", chip_seeds=dies, mapping=mapping)
            out["budget"][key] = b
            if not a.json:
                print(f"\nerror budget, {key} model\n" + format_budget(b), flush=True)
    out["seconds"] = time.perf_counter() - t0
    if a.json:
        print(json.dumps(out))
    else:
        print(f"\n{out['seconds']:.0f} s")
    return 0


def _tuned_seed(net) -> int:
    """The chip seed of the die a fine-tuned model was tuned on (from its ``pesim://`` URL)."""
    from urllib.parse import parse_qs, urlsplit

    url = str(net.metadata["finetune"].get("chip_url", ""))
    return int(parse_qs(urlsplit(url).query).get("seed", ["1"])[-1])


if __name__ == "__main__":
    raise SystemExit(main())
