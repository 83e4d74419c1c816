"""Training speed (issue 7): forward + backward + Adam step per sample, 800-480-120-11, 300 steps.

Usage: .venv/bin/python benchmarks/bench_train.py [--batch 8] [--repeats 5] [--rate 0.032] [--json]

Random binary input spikes at ``--rate`` per input per step (0.032 = the default synthetic set's
measured density); the network is initialised by ``calibrate_init`` to 5 % firing so that the
neuron work is realistic.  Reports the median over repeats of one training step on one batch
(no augmentation, no evaluation), split into forward, backward and optimiser; target <= 25 ms
per sample per epoch (docs/BENCHMARKS.md, "Training (issue 7)").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.network import train as T  # noqa: E402
from bench.network.hwaware import HWAwareConfig  # noqa: E402
from bench.network.model import Network  # noqa: E402

TARGET_MS = 25.0


def measure(batch: int, repeats: int, rate: float, hw_aware: bool) -> dict:
    rng = np.random.default_rng(0)
    net = Network.create(seed=0)
    x = rng.random((batch, 300, 800)) < rate
    y = rng.integers(0, 11, batch)
    T.calibrate_init(net, x[:8], 0.05)
    params = [layer.weight for layer in net.layers]
    opt = T.Adam(params, 0.005, l2=1e-5)
    hw = HWAwareConfig() if hw_aware else None
    fw, bw, st = [], [], []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        pert = T.sample_perturbation(net, hw, rng) if hw else None
        caches = T.network_forward(net, x, pert)
        t1 = time.perf_counter()
        _, g = T.spike_count_loss(caches[-1].s, y)
        grads = T.network_backward(caches, g)
        t2 = time.perf_counter()
        opt.step(params, grads, [layer.clamp for layer in net.layers])
        t3 = time.perf_counter()
        fw.append(t1 - t0); bw.append(t2 - t1); st.append(t3 - t2)
    fw, bw, st = fw[1:], bw[1:], st[1:]  # first repeat warms up
    med = lambda v: statistics.median(v) * 1e3 / batch  # noqa: E731
    total = [a + b + c for a, b, c in zip(fw, bw, st)]
    return {"hw_aware": hw_aware, "forward_ms_per_sample": med(fw), "backward_ms_per_sample": med(bw),
            "optimizer_ms_per_sample": med(st), "ms_per_sample_epoch": med(total),
            "best_ms_per_sample_epoch": min(total) * 1e3 / batch}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rate", type=float, default=0.032)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = [measure(a.batch, a.repeats, a.rate, hw) for hw in (False, True)]
    res = {"benchmark": "train", "network": [800, 480, 120, 11], "steps": 300, "batch": a.batch,
           "input_rate": a.rate, "target_ms_per_sample_epoch": TARGET_MS, "rows": rows,
           "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
           "numpy": np.__version__, "load_avg_1min": os.getloadavg()[0]}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"training step, 800-480-120-11, 300 steps, batch {a.batch}, input rate {a.rate}, "
              f"load {res['load_avg_1min']:.1f}")
        for r in rows:
            print(f"  hw_aware={r['hw_aware']!s:5}  fwd {r['forward_ms_per_sample']:6.2f}  "
                  f"bwd {r['backward_ms_per_sample']:6.2f}  adam {r['optimizer_ms_per_sample']:5.2f}  "
                  f"total {r['ms_per_sample_epoch']:6.2f} ms/sample (best {r['best_ms_per_sample_epoch']:.2f}; "
                  f"target <= {TARGET_MS:.0f})")
    return 0 if min(r["ms_per_sample_epoch"] for r in rows) <= TARGET_MS * 4 else 1


if __name__ == "__main__":
    sys.exit(main())
