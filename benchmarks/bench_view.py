"""Benchmark (issue 12): the live view's cost to the measurement, and its refresh rate.

1. Measurement wall time with and without a viewer attached (interleaved A/B pairs):
   ``snnbench chip program --mode host --batch 16`` on the virtual chip (192 flushed units);
   B has ``snnbench view RUN.h5 --wait`` (0.5 s polling) following the same file, started
   2 s before the measurement so its Qt start-up is not counted; C is the same with the
   viewer started by the command itself (``--live``), start-up included.  Reported: the
   command's own programming time (``wall_seconds``) and the process wall time, as ratios
   B/A and C/A per pair (median and spread), and A2/A (a second run without viewer in the
   same cycle: the noise floor of this machine at this load).  Target: <= 2 %.
0. The writer's own cost of the commit log (no viewer needed): ``RunFile.flush`` (commit line
   + counter + HDF5 flush) against a bare ``h5py`` flush of the same appends, per unit.
2. Refresh rate following a fast run: a writer appends programming cells (128 x 24 maps)
   and inference samples (300 x 800 input rasters) every 20 ms into one file while the
   viewer polls with ``--interval-s 0``; frames per second from the viewer's own trace, the
   median per-frame read + panel update + paint time, and the viewer's CPU time per frame
   (frames per CPU-second: the rate a free core would sustain).  Target >= 10 fps.

    .venv/bin/python benchmarks/bench_view.py [--quick] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def _program(levels: Path, out: Path, live: bool = False) -> tuple[float, float, float]:
    """(process wall s, the command's programming wall_seconds, process CPU s) of one run."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as so:
        p = subprocess.Popen(_cli("chip", "program", "--chip", "pesim://?seed=3&fidelity=typical", "--mode", "host",
                                  "--batch", "16", "--levels", str(levels), "--out", str(out), "--force", "--json",
                                  *(["--live"] if live else [])),
                             stdout=so, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        so.seek(0)
        text = so.read()
    if p.returncode:
        raise SystemExit(f"chip program failed (exit {p.returncode})")
    return wall, float(json.loads(text)["wall_seconds"]), usage.ru_utime + usage.ru_stime


def _kill_live_viewers(out: Path) -> None:
    """End the viewer a --live run started (found by its command line; ours only)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"view" in cmd and str(out).encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def overhead(reps: int, tmp: Path) -> dict:
    levels = tmp / "L.npy"
    np.save(levels, np.random.default_rng(0).integers(0, 16, (128, 24)))
    rows = {"A": [], "A2": [], "B": [], "C": []}
    for i in range(reps):
        order = ["A", "B", "A2", "C"] if i % 2 == 0 else ["C", "A2", "B", "A"]
        for mode in order:
            out = tmp / f"run_{mode}_{i}.h5"
            view = None
            try:
                if mode == "B":
                    view = subprocess.Popen(_cli("view", str(out), "--wait"), env=ENV, cwd=ROOT,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(2.0)
                rows[mode].append(_program(levels, out, live=mode == "C"))
            finally:
                if view is not None:
                    view.kill()
                    view.wait()
                if mode == "C":
                    _kill_live_viewers(out)
    res = {}
    for mode in ("A2", "B", "C"):
        for k, name in ((0, "process_wall"), (1, "programming_wall"), (2, "process_cpu")):
            r = [b[k] / a[k] for a, b in zip(rows["A"], rows[mode])]
            res[f"{mode}/{name}"] = {"median_ratio": statistics.median(r), "min": min(r), "max": max(r),
                                     "baseline_median_s": statistics.median(a[k] for a in rows["A"])}
    return res


def commit_cost(units: int, tmp: Path, reps: int = 5) -> dict:
    """Seconds per unit: RunFile append+flush (with the commit log) vs bare h5py append+flush."""
    import h5py

    from bench.programming import CELL_DTYPE
    from bench.runstore import RunFile

    batch = np.zeros(16, CELL_DTYPE)
    ratios, ours, bare = [], [], []
    for i in range(reps):
        t0 = time.perf_counter()
        with RunFile(tmp / f"c{i}.h5", "chip_program") as run:
            for _ in range(units):
                run.append("cells", batch)
                run.flush()
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        with h5py.File(tmp / f"b{i}.h5", "w") as f:
            ds = f.create_dataset("cells", shape=(0,), maxshape=(None,), chunks=(4096,), dtype=CELL_DTYPE)
            for _ in range(units):
                n = ds.shape[0]
                ds.resize(n + batch.size, axis=0)
                ds[n:] = batch
                f.flush()
        t_bare = time.perf_counter() - t0
        ours.append(t_ours / units)
        bare.append(t_bare / units)
        ratios.append(t_ours / t_bare)
    return {"units": units, "runfile_ms_per_unit": 1e3 * statistics.median(ours),
            "bare_h5py_ms_per_unit": 1e3 * statistics.median(bare), "median_ratio": statistics.median(ratios),
            "min": min(ratios), "max": max(ratios)}


def _writer(path: str, units: int, sleep_s: float) -> None:
    """A fast 'demo' run: program cells and inference samples appended every ``sleep_s``."""
    sys.path.insert(0, str(ROOT))
    from bench.programming import CELL_DTYPE
    from bench.runstore import RunFile

    rng = np.random.default_rng(0)
    rec = np.zeros(3072, CELL_DTYPE)
    rr, cc = np.indices((128, 24))
    rec["index"], rec["row"], rec["col"] = np.arange(3072), rr.ravel(), cc.ravel()
    rec["target_s"] = rng.integers(0, 16, 3072) * 10e-6
    rec["g_s"] = rec["target_s"] + rng.normal(0, 1e-6, 3072)
    rec["pulses"] = rng.integers(1, 30, 3072)
    with RunFile(path, "demo", chip_info={"rows": 128, "columns": 24}) as run:
        run.write("maps/target_s", rec["target_s"].reshape(128, 24), units="S")
        run.set_attrs("/", n_classes=11, samples_total=units * 4)
        parts = np.array_split(rec, units)
        for k in range(units):
            x = rng.random((4, 300, 800)) < 0.03
            run.append("cells", parts[k])
            run.append("inputs_packed", np.packbits(x, axis=2, bitorder="little"), shape_per_sample=[300, 800])
            run.append("output_spikes", (rng.random((4, 300, 11)) < 0.05).astype(np.uint8))
            lab = rng.integers(0, 11, 4)
            run.append("labels", lab)
            run.append("predictions", lab)
            run.append("software_predictions", lab)
            run.flush()
            time.sleep(sleep_s)


def refresh(seconds: float, tmp: Path, interval_s: float = 0.0) -> dict:
    f, tr = tmp / f"fast_{interval_s}.h5", tmp / f"trace_{interval_s}.jsonl"
    units = int(seconds / 0.02)
    view = subprocess.Popen(_cli("view", str(f), "--wait", "--until-done", "--interval-s", str(interval_s),
                                 "--trace", str(tr)), env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)
        w = subprocess.run([sys.executable, __file__, "--writer", str(f), "--units", str(units)], env=ENV,
                           cwd=ROOT, timeout=600)
        if w.returncode:
            raise SystemExit("writer failed")
        view.wait(timeout=120)
    finally:
        if view.poll() is None:
            view.kill()
            view.wait()
    lines = [json.loads(x) for x in tr.read_text().splitlines()]
    live = [ln for ln in lines if ln["state"] == "running"]
    span = live[-1]["t"] - live[0]["t"] if len(live) > 1 else float("nan")
    shown = [ln["counts"].get("infer", {}).get("done", 0) for ln in live]
    return {"interval_s": interval_s, "frames": len(live), "seconds": span,
            "fps": (len(live) - 1) / span if span > 0 else float("nan"),
            "median_refresh_ms": 1e3 * statistics.median(ln["refresh_s"] + ln["paint_s"] for ln in live),
            "p95_refresh_ms": 1e3 * float(np.percentile([ln["refresh_s"] + ln["paint_s"] for ln in live], 95)),
            "cpu_ms_per_frame": 1e3 * (live[-1]["cpu_s"] - live[0]["cpu_s"]) / max(1, len(live) - 1),
            "distinct_states_shown": len(set(shown)), "writer_units": units,
            "final_samples": lines[-1]["counts"].get("infer", {}).get("done")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--writer", help=argparse.SUPPRESS)
    ap.add_argument("--units", type=int, default=200, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.writer:
        _writer(a.writer, a.units, 0.02)
        return 0
    reps = a.reps or (3 if a.quick else 8)
    with tempfile.TemporaryDirectory(prefix="bench_view_") as d:
        tmp = Path(d)
        res = {"load_before": os.getloadavg()[0], "commit_cost": commit_cost(192, tmp),
               "overhead": overhead(reps, tmp),
               "refresh": [refresh(3.0 if a.quick else 6.0, tmp, 0.0), refresh(3.0 if a.quick else 6.0, tmp, 0.5)],
               "reps": reps, "load_after": os.getloadavg()[0]}
    if a.json:
        print(json.dumps(res))
        return 0
    print(f"load average before/after: {res['load_before']:.2f} / {res['load_after']:.2f}; {reps} interleaved reps")
    c = res["commit_cost"]
    print(f"writer, per flushed unit: RunFile {c['runfile_ms_per_unit']:.3f} ms vs bare h5py "
          f"{c['bare_h5py_ms_per_unit']:.3f} ms (ratio median {c['median_ratio']:.2f} "
          f"[{c['min']:.2f} .. {c['max']:.2f}], {c['units']} units)")
    print("measurement with a viewer / without (ratio; 1.00 = no cost; A2 = second run without viewer)")
    for k, v in res["overhead"].items():
        print(f"  {k:<22} median {v['median_ratio']:.3f}  [{v['min']:.3f} .. {v['max']:.3f}]  "
              f"(baseline median {v['baseline_median_s']:.3f} s)")
    for r in res["refresh"]:
        print(f"refresh following a fast run (--interval-s {r['interval_s']:g}): {r['fps']:.1f} frames/s over "
              f"{r['seconds']:.1f} s; per frame: read+update+paint median {r['median_refresh_ms']:.1f} ms (p95 "
              f"{r['p95_refresh_ms']:.1f}), viewer CPU {r['cpu_ms_per_frame']:.1f} ms "
              f"(= {1e3 / r['cpu_ms_per_frame']:.0f} frames per CPU-second); "
              f"{r['distinct_states_shown']} distinct sample counts shown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
