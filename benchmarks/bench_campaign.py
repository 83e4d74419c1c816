"""Campaign engine benchmark (issue 11).

1. Overhead: a campaign of trivial points (register write + register read, each on its own
   in-process simulated board) - campaign wall time over the sum of the points' own wall
   times (measured inside the points).  Baseline = the sum of point times of the same run.
   Target: overhead <= 10 %.  Measured in-process (``workers = 0``: the store's cost alone)
   and on one local dask worker (store + scheduling + shipping).
   The local cluster's start-up and shut-down (once per campaign) are reported apart.
2. Parallel efficiency: the same CPU-bound simulated campaign (program the reference chip
   layer + classify samples) on 1 and on 2 local dask workers, interleaved, median and
   spread; speed-up = wall(1) / wall(2), walls after cluster start-up.  Target >= 1.7x on
   2 cores.
3. Scale-out figures: points/s per worker, bytes shipped back per point (pickled result).

    .venv/bin/python benchmarks/bench_campaign.py [--quick] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.campaign import engine
from bench.campaign.plan import parse_plan
from bench.campaign.store import CampaignStore

TRIVIAL = """
[campaign]
name = "trivial"
seed = 1
repeats = {repeats}

[[step]]
procedure = "reg_write"
register = "V_READ"

[[step]]
procedure = "reg_read"
register = "V_READ"

[[axis]]
param = "reg_write.value"
linspace = {{start = 0.1, stop = 0.4, num = 10}}
"""

CPU = """
[campaign]
name = "cpu"
seed = 2

[setup]
fidelity = "typical"

[[step]]
procedure = "program"
pattern = "model"

[[step]]
procedure = "infer"
samples = {samples}

[[axis]]
param = "setup.chip_seed"
seeds = {points}
"""


def run_once(text: str, workers: int, tmp: Path, tag: str) -> engine.EngineSummary:
    plan = parse_plan(textwrap.dedent(text), tag)
    out = tmp / f"{tag}-{workers}-{time.monotonic_ns()}.h5"
    store = CampaignStore.create(out, plan, "builtin-sim")
    try:
        c0 = time.process_time()
        summary = engine.run(plan, store, engine.EngineOptions(workers=workers))
        client_cpu = time.process_time() - c0
        # the client's own CPU per point: all of it with workers, minus the points' in-process
        summary.extra["client_cpu_s_per_point"] = (
            client_cpu - (summary.point_cpu_s if workers == 0 else 0.0)) / max(1, summary.committed_now)
        store.finish(summary.state)
    finally:
        store.close()
        out.unlink(missing_ok=True)
    assert summary.state == "finished" and summary.failed_now == 0, summary
    return summary


def overhead(tmp: Path, n_points: int) -> dict:
    text = TRIVIAL.format(repeats=n_points // 10)
    out = {}
    for workers in (0, 1):
        s = run_once(text, workers, tmp, "trivial")
        start = s.extra.get("cluster_start_s", 0.0) + s.extra.get("cluster_stop_s", 0.0)
        out[f"workers{workers}"] = {
            "points": s.committed_now, "wall_s": s.wall_s, "sum_point_s": s.point_wall_s,
            "cluster_start_s": start, "overhead_ratio": (s.wall_s - start) / s.point_wall_s - 1.0,
            "overhead_ratio_with_start": s.wall_s / s.point_wall_s - 1.0,
            "points_per_s": s.committed_now / s.wall_s, "bytes_per_point": s.bytes_per_point,
            "point_cpu_ms": 1e3 * s.point_cpu_s / s.committed_now,
            "client_cpu_ms_per_point": 1e3 * s.extra["client_cpu_s_per_point"]}
    return out


def parallel(tmp: Path, points: int, samples: int, reps: int) -> dict:
    text = CPU.format(points=points, samples=samples)
    walls = {1: [], 2: []}
    sums = {1: [], 2: []}
    cpus = {1: [], 2: []}
    bytes_pp = []
    for _ in range(reps):  # interleaved: 1, 2, 1, 2, ...
        for w in (1, 2):
            s = run_once(text, w, tmp, "cpu")
            walls[w].append(s.wall_s - s.extra.get("cluster_start_s", 0.0) - s.extra.get("cluster_stop_s", 0.0))
            sums[w].append(s.point_wall_s)
            cpus[w].append(s.point_cpu_s / s.committed_now)
            bytes_pp.append(s.bytes_per_point)
    speedups = [a / b for a, b in zip(walls[1], walls[2])]
    med = {w: statistics.median(v) for w, v in walls.items()}
    return {"points": points, "samples_per_point": samples, "reps": reps,
            "wall_s_1_worker": walls[1], "wall_s_2_workers": walls[2],
            "speedup_median": statistics.median(speedups), "speedup_min": min(speedups),
            "speedup_max": max(speedups), "point_s_median_1_worker": statistics.median(sums[1]) / points,
            "points_per_s_per_worker_1": points / med[1], "points_per_s_per_worker_2": points / med[2] / 2,
            "cpu_s_per_point_1_worker": statistics.median(cpus[1]),
            "cpu_s_per_point_2_workers": statistics.median(cpus[2]),
            "bytes_per_point": statistics.median(bytes_pp), "load_avg_1min": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller campaigns (CI smoke)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = {"load_avg_1min_start": os.getloadavg()[0],
               "overhead": overhead(tmp, 200 if args.quick else 1000),
               "parallel": parallel(tmp, 4 if args.quick else 12, 32 if args.quick else 96, 1 if args.quick else 3)}
    if args.json:
        print(json.dumps(res))
        return 0
    for k, v in res["overhead"].items():
        print(f"overhead ({k}): {v['points']} trivial points, wall {v['wall_s']:.2f} s (cluster start "
              f"+ stop {v['cluster_start_s']:.2f} s) vs sum of point times {v['sum_point_s']:.2f} s -> overhead "
              f"{100 * v['overhead_ratio']:.1f} % after start ({100 * v['overhead_ratio_with_start']:.1f} % with it) "
              f"({v['points_per_s']:.0f} points/s, {v['bytes_per_point']:.0f} B/point shipped; CPU per point "
              f"{v['point_cpu_ms']:.2f} ms in the point, {v['client_cpu_ms_per_point']:.2f} ms in the client)")
    p = res["parallel"]
    print(f"parallel: {p['points']} points x {p['samples_per_point']} samples, {p['reps']} interleaved reps: "
          f"speed-up 2 vs 1 worker median {p['speedup_median']:.2f}x (min {p['speedup_min']:.2f}, max "
          f"{p['speedup_max']:.2f}); 1 worker {p['points_per_s_per_worker_1']:.2f} points/s, 2 workers "
          f"{p['points_per_s_per_worker_2']:.2f} points/s per worker; CPU per point {p['cpu_s_per_point_1_worker']:.2f} s "
          f"(1 worker) vs {p['cpu_s_per_point_2_workers']:.2f} s (2 workers); {p['bytes_per_point']:.0f} B/point; "
          f"load {res['load_avg_1min_start']:.1f} -> {p['load_avg_1min']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
