"""Event data benchmark (issues 6, 15, 17): AEDAT 3.1 reading speed against a plain numpy
reader of the same file in the same run, ``data check`` wall time on the default stylised
synthetic set (``data synth --kind stylised``: the realistic default takes minutes to
generate), split loading and preprocessing.

    .venv/bin/python benchmarks/bench_events.py [--quick] [--events N] [--repeat N] [--json]

The plain reader (:func:`plain_numpy_read`) is what one writes with ``np.frombuffer`` and no
tricks: walk the packet headers with ``struct``, one ``np.frombuffer`` per polarity packet,
concatenate, decode x / y / p / t and drop invalid events into the same ``EVENT_DTYPE``
array, without validation.  Both readers are checked to give identical events first, then
timed interleaved (plain, ours, plain, ours, ...); the figure is the ratio plain time / our
time per repetition, median and spread (min..max).

Target (issue 17 item 5): median ratio >= 1.0 for every packet size.  Exits 1 if missed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import synth  # noqa: E402
from bench.data.aedat import EVENT_DTYPE, read_aedat, write_aedat  # noqa: E402
from bench.data.check import scan_release  # noqa: E402
from bench.data.dataset import load_split  # noqa: E402
from bench.data.preprocess import PreprocessConfig, batch_to_spikes  # noqa: E402

TARGET_RATIO = 1.0
_PAIR = np.dtype([("d", "<u4"), ("ts", "<i4")])
_HEADER = struct.Struct("<hhiiiiii")


def plain_numpy_read(path: str | os.PathLike) -> np.ndarray:
    """The baseline: a straightforward np.frombuffer AEDAT 3.1 polarity reader."""
    buf = Path(path).read_bytes()
    off = buf.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    parts, ovfs = [], []
    while off < len(buf):
        etype, _src, esize, _tsoff, ovf, cap, num, _valid = _HEADER.unpack_from(buf, off)
        off += _HEADER.size
        if etype == 1 and num:
            parts.append(np.frombuffer(buf, dtype=_PAIR, count=num, offset=off))
            ovfs.append(np.full(num, ovf, dtype=np.int64))
        off += cap * esize
    a = np.concatenate(parts)
    d = a["d"]
    t = (np.concatenate(ovfs) << 31) | a["ts"].astype(np.int64)
    valid = (d & 1).astype(bool)
    ev = np.empty(int(valid.sum()), EVENT_DTYPE)
    ev["x"] = ((d >> 17) & 0x7FFF)[valid]
    ev["y"] = ((d >> 2) & 0x7FFF)[valid]
    ev["p"] = ((d >> 1) & 1)[valid]
    ev["t"] = t[valid]
    return ev


def _events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, 128, n)
    ev["y"] = rng.integers(0, 128, n)
    ev["p"] = rng.integers(0, 2, n)
    # ~1 MHz event rate and a start past 2^31 us, so overflow packets are exercised
    ev["t"] = 2**31 - 1_000_000 + np.cumsum(rng.integers(0, 3, n))
    return ev


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ratio_stats(base: list[float], ours: list[float]) -> dict:
    r = [b / o for b, o in zip(base, ours)]
    return {"ratio_median": round(statistics.median(r), 3), "ratio_min": round(min(r), 3),
            "ratio_max": round(max(r), 3), "ours_s_median": round(statistics.median(ours), 4),
            "plain_s_median": round(statistics.median(base), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 M events, 3 repetitions, a small synthetic set")
    ap.add_argument("--events", type=int, default=None, help="events in the read benchmark (default 5 M)")
    ap.add_argument("--repeat", type=int, default=None, help="interleaved repetitions (default 7)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n_events = args.events or (1_000_000 if args.quick else 5_000_000)
    repeat = args.repeat or (3 if args.quick else 7)
    res: dict = {"events": n_events, "repeat": repeat, "loadavg_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ev = _events(n_events)
        files = {}
        for pe in (8192, 512, 128):
            f = write_aedat(tmp / f"read_{pe}.aedat", ev, packet_events=pe)
            a, b = read_aedat(f), plain_numpy_read(f)
            if not np.array_equal(a, b):
                raise SystemExit(f"readers disagree on {f.name}")
            files[pe] = f
        for pe, f in files.items():
            base, ours = [], []
            for _ in range(repeat):  # interleaved
                base.append(_timed(lambda: plain_numpy_read(f)))
                ours.append(_timed(lambda: read_aedat(f)))
            st = _ratio_stats(base, ours)
            st["packet_events"] = pe
            st["events_per_s"] = round(n_events / st["ours_s_median"])
            res[f"read_{pe}_event_packets"] = st

        kw = {"per_class": 8, "subjects": 2} if args.quick else {}
        t0 = time.perf_counter()
        d = synth.generate(tmp / "synth", seed=0, **kw)
        gen = time.perf_counter() - t0
        m = json.loads((d / "synth.json").read_text())
        res["synth"] = {"seconds": round(gen, 3), "samples": m["samples"], "events": m["events"],
                        "recordings": len(m["recordings"]), "kind": "stylised",
                        "default_stylised_set": not args.quick}
        # data check vs loading both splits (same files read once each), interleaved
        chk, load = [], []
        report = None
        for _ in range(max(3, repeat // 2)):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples = load_split(d, "train") + load_split(d, "test")
            load.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            report = scan_release(d)
            chk.append(time.perf_counter() - t0)
        res["data_check"] = {"seconds_median": round(statistics.median(chk), 3),
                             "seconds_min": round(min(chk), 3), "seconds_max": round(max(chk), 3),
                             "load_split_train_test_s_median": round(statistics.median(load), 3),
                             "check_over_load_median": round(statistics.median(c / x for c, x in zip(chk, load)), 3),
                             "problems": len(report.problems), "file_events_per_s":
                                 round(m["events"] / statistics.median(chk))}
        n_ev = sum(len(s.events) for s in samples)
        cfg = PreprocessConfig()
        t0 = time.perf_counter()
        x = batch_to_spikes(samples, cfg)
        pre = time.perf_counter() - t0
        res["preprocess"] = {"seconds": round(pre, 3), "samples": len(samples), "sample_events": n_ev,
                             "samples_per_s": round(len(samples) / pre), "input_spike_rate": round(float(x.mean()), 4)}
    ok = all(res[f"read_{pe}_event_packets"]["ratio_median"] >= TARGET_RATIO for pe in (8192, 512, 128))
    res["target_ratio"] = TARGET_RATIO
    res["ok"] = ok
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:26s} {v}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
