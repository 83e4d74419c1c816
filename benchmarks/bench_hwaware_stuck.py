"""Issue 15: does the hw-aware training noise model with stuck cells buy chip accuracy?  An A/B on
the shipped models and test split (the train split they were trained on is not shipped):

the chip layer (120->11) of ``bench/models/gesture_hwaware.h5`` is re-trained hardware-aware, the
software layers before it fixed, on test subjects 24-26 — arm A with the noise model without stuck
cells, arm B with the `typical` preset's stuck cells (``bench.network.hwaware.chip_defaults``),
same seeds and epochs — and scored on subjects 27-29 on dies 1..N (`typical`, `worst`; the
bench's flow routed and not routed), next to the shipped layer.

    .venv/bin/python benchmarks/bench_hwaware_stuck.py [--epochs 30] [--chips 8] [--seeds 2] [--json]

The shipped spike file is a round robin over the 24 test recordings (4 per subject, sample i from
recording i mod 24), so the subject of sample i is 24 + (i mod 24) // 4.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--chips", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=2, help="training seeds per arm")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    from bench.budget import ChipTail
    from bench.demo_data import load_spikes
    from bench.network import train as T
    from bench.network.hwaware import chip_defaults
    from bench.network.model import InputConfig, Network
    from bench.network.modelfile import load_model
    from bench.training_gain import compare_models

    t0 = time.perf_counter()
    net = load_model(ROOT / "bench" / "models" / "gesture_hwaware.h5")
    x, y, _ = load_spikes(ROOT / "bench" / "models" / "gesture_test.h5", net)
    subject = 24 + (np.arange(len(y)) % 24) // 4
    tune, ev = subject <= 26, subject >= 27
    idx = net.chip_layer
    h = ChipTail(net, x).h
    with_stuck = chip_defaults("typical")
    without = replace(with_stuck, stuck_on_frac=0.0, stuck_off_frac=0.0)
    models = [("shipped", "shipped hw-aware layer", net)]
    for seed in range(a.seeds):
        for key, hw in (("nostuck", without), ("stuck", with_stuck)):
            n2 = net.copy()
            layer = n2.layers[idx]
            sub = Network([layer], chip_layer=0,
                          input=InputConfig(sensor_width=layer.n_in // 2, sensor_height=1, padding=0, pool=1))
            T.train(sub, h[tune], y[tune], T.TrainConfig(epochs=a.epochs, hw_aware=True, hw=hw, seed=seed),
                    progress=False)
            n2.layers[idx].weight = sub.layers[0].weight
            models.append((f"{key}{seed}", f"{key}, seed {seed}", n2))
    out: dict = {"epochs": a.epochs, "dies": list(range(1, a.chips + 1)), "tune": int(tune.sum()),
                 "eval": int(ev.sum()), "results": {}}
    for fid in ("typical", "worst"):
        for route in (True, False):
            c = compare_models(models, x[ev], y[ev], fidelity=fid, chip_seeds=tuple(range(1, a.chips + 1)),
                               mapping={"scale_policy": "mse", "route_stuck": route})
            out["results"][f"{fid}/{'routed' if route else 'not routed'}"] = c
            if not a.json:
                for r in c["rows"]:
                    acc = 100 * np.array(r["chip_accuracies"])
                    print(f"{fid:8s} {'routed' if route else 'not routed':10s} {r['key']:9s} software "
                          f"{100 * r['software_accuracy']:6.2f} %  chip mean {acc.mean():6.2f} % "
                          f"(min {acc.min():.2f}, max {acc.max():.2f})", flush=True)
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps(out, default=float) if a.json else f"{out['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
