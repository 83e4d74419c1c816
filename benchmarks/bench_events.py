"""Event data benchmark (issue 6): AEDAT 3.1 reading speed, synthetic set generation,
split loading and preprocessing.

    .venv/bin/python benchmarks/bench_events.py [--events N] [--json]

Target: reading >= 20 M events/s.  Exits 1 if the large-packet read misses the target.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import synth  # noqa: E402
from bench.data.aedat import EVENT_DTYPE, read_aedat, write_aedat  # noqa: E402
from bench.data.dataset import load_split  # noqa: E402
from bench.data.preprocess import PreprocessConfig, batch_to_spikes  # noqa: E402

TARGET_EVENTS_PER_S = 20e6


def _events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, 128, n)
    ev["y"] = rng.integers(0, 128, n)
    ev["p"] = rng.integers(0, 2, n)
    # ~1 MHz event rate and a start past 2^31 us, so overflow packets are exercised
    ev["t"] = 2**31 - 1_000_000 + np.cumsum(rng.integers(0, 3, n))
    return ev


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ev = _events(args.events)
        for label, pe in (("read_large_packets", 8192), ("read_small_packets", 512), ("read_128_event_packets", 128)):
            f = write_aedat(tmp / f"{label}.aedat", ev, packet_events=pe)
            s = _best(lambda: read_aedat(f))
            res[label] = {"events": args.events, "packet_events": pe, "seconds": round(s, 4),
                          "events_per_s": round(args.events / s)}
        t0 = time.perf_counter()
        d = synth.generate(tmp / "synth", seed=0)
        gen = time.perf_counter() - t0
        m = json.loads((d / "synth.json").read_text())
        res["synth_default"] = {"seconds": round(gen, 3), "samples": m["samples"], "events": m["events"],
                                "bytes": sum(p.stat().st_size for p in d.iterdir())}
        t0 = time.perf_counter()
        samples = load_split(d, "train") + load_split(d, "test")
        load = time.perf_counter() - t0
        n_ev = sum(len(s.events) for s in samples)
        res["load_split_train_test"] = {"seconds": round(load, 3), "samples": len(samples),
                                        "file_events_per_s": round(m["events"] / load)}
        cfg = PreprocessConfig()
        t0 = time.perf_counter()
        x = batch_to_spikes(samples, cfg)
        pre = time.perf_counter() - t0
        res["preprocess"] = {"seconds": round(pre, 3), "samples": len(samples), "sample_events": n_ev,
                             "samples_per_s": round(len(samples) / pre), "input_spike_rate": round(float(x.mean()), 4)}
    ok = res["read_large_packets"]["events_per_s"] >= TARGET_EVENTS_PER_S
    res["target_events_per_s"] = TARGET_EVENTS_PER_S
    res["ok"] = ok
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:26s} {v}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
