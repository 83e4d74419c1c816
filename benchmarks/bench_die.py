"""Die file benchmark (issue 19): what a command pays for a persistent simulated chip.

Measured, interleaved, on a programmed die (every cell written, wear counted):
- save: ``OpenDie.save()`` (state -> HDF5 image in memory -> temporary file, fsync, rename)
  and the part of it that builds the HDF5 image;
- load: opening a die (lock, read, rebuild the chip with the saved state, release), and the
  part of it that reads the file;
- baselines in the same run: the same arrays written with ``np.savez`` (+ fsync and rename, the
  same durability) and read back with ``np.load``;
- file size, and the raw bytes of the arrays it holds.
Targets: load <= 50 ms and save <= 50 ms.  Figures: median and spread (min-max) over the
repetitions, with the ratio to the baseline of the same repetition.

    .venv/bin/python benchmarks/bench_die.py [--quick] [--json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sim_backend.die import OpenDie, encode_die, read_die


def _program(die: OpenDie) -> None:
    chip = die.chip
    rr, cc = np.meshgrid(np.arange(chip.rows), np.arange(chip.columns), indexing="ij")
    rows, cols = np.repeat(rr.ravel(), 4), np.repeat(cc.ravel(), 4)
    n = rows.size
    chip.pulse(np.ones(n), rows, cols, np.full(n, 2.2), np.full(n, 1.2), np.zeros(n), np.full(n, 1e-6))


def _arrays(state: dict) -> dict[str, np.ndarray]:
    out = {f"cells_{k}": np.asarray(v) for k, v in state["cells"].items()}
    out["theta_mismatch"] = np.asarray(state["theta_mismatch"])
    out["tau_mismatch"] = np.asarray(state["tau_mismatch"])
    return out


def _npz_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _npz_load(path: Path) -> None:
    with np.load(path) as z:
        for k in z.files:
            z[k]


def _timed(fn) -> float:
    """Wall time of ``fn()``, the cyclic garbage collector run before and held off during it
    (so one phase does not pay for another's garbage)."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    reps = 7 if args.quick else 31
    with tempfile.TemporaryDirectory() as d:
        die_path, npz_path = Path(d) / "die.h5", Path(d) / "base.npz"
        die = OpenDie(die_path, seed=1, fidelity="typical")
        _program(die)
        die.save()
        arrays = _arrays(die.chip.state())
        die.close()
        _npz_save(npz_path, arrays)
        rows = {k: [] for k in ("save", "encode", "npz_save", "load", "read", "npz_load")}
        for _ in range(reps):               # interleaved: each repetition measures all
            d_open = OpenDie(die_path)
            rows["save"].append(_timed(d_open.save))
            rows["encode"].append(_timed(lambda: encode_die(d_open.chip.state(), {}, saved_utc=0.0,
                                                             created_utc=0.0)))
            d_open.close()
            rows["npz_save"].append(_timed(lambda: _npz_save(npz_path, arrays)))
            rows["load"].append(_timed(lambda: OpenDie(die_path).close()))
            rows["read"].append(_timed(lambda: read_die(die_path)))
            rows["npz_load"].append(_timed(lambda: _npz_load(npz_path)))
        size = die_path.stat().st_size
        raw = sum(a.nbytes for a in arrays.values())
        npz_size = npz_path.stat().st_size
    save_ratio = [s / b for s, b in zip(rows["save"], rows["npz_save"])]
    load_ratio = [s / b for s, b in zip(rows["load"], rows["npz_load"])]
    result = {
        "repetitions": reps,
        "save_ms": {k: v * 1e3 for k, v in _stats(rows["save"]).items()},
        "encode_ms": {k: v * 1e3 for k, v in _stats(rows["encode"]).items()},
        "npz_save_ms": {k: v * 1e3 for k, v in _stats(rows["npz_save"]).items()},
        "save_vs_npz": _stats(save_ratio),
        "load_ms": {k: v * 1e3 for k, v in _stats(rows["load"]).items()},
        "read_ms": {k: v * 1e3 for k, v in _stats(rows["read"]).items()},
        "npz_load_ms": {k: v * 1e3 for k, v in _stats(rows["npz_load"]).items()},
        "load_vs_npz": _stats(load_ratio),
        "file_bytes": size, "npz_bytes": npz_size, "raw_array_bytes": raw,
        "targets_met": statistics.median(rows["save"]) <= 0.05 and statistics.median(rows["load"]) <= 0.05,
    }
    if args.json:
        print(json.dumps(result))
        return 0

    def line(name: str, key: str, base: str, ratio: str) -> str:
        s, b, r = result[key], result[base], result[ratio]
        return (f"{name:<6} {s['median']:7.2f} ms  (min {s['min']:.2f}, max {s['max']:.2f})   "
                f"np baseline {b['median']:6.2f} ms   ratio {r['median']:.2f}x "
                f"(min {r['min']:.2f}, max {r['max']:.2f})")

    print(f"die file benchmark, {reps} interleaved repetitions (target: load and save <= 50 ms)")
    print(line("save", "save_ms", "npz_save_ms", "save_vs_npz"))
    print(f"       of which building the HDF5 image in memory: {result['encode_ms']['median']:.2f} ms")
    print(line("load", "load_ms", "npz_load_ms", "load_vs_npz"))
    print(f"       of which reading the file: {result['read_ms']['median']:.2f} ms (the rest: lock, "
          f"rebuilding the chip model)")
    print(f"file   {size / 1024:.0f} KiB (npz of the same arrays {npz_size / 1024:.0f} KiB, "
          f"raw arrays {raw / 1024:.0f} KiB, ratio {size / raw:.2f})")
    print(f"targets met: {result['targets_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
