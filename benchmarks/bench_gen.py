"""Realistic gesture generator: speed and difficulty (issue 15 items 1-2).

    .venv/bin/python benchmarks/bench_gen.py [--quick] [--data DIR] [--epochs N] [--pairs] [--json]

1. Generation speed: one recording of the realistic generator (11 gestures) against one of the
   stylised generator (the same-run baseline), interleaved, ``--repeats`` times; events per
   CPU-second, median and spread, and the ratio. Also the extrapolated CPU time of the full
   release shape (122 recordings of 11 x 6 s gestures).
2. Difficulty on a set (``--data DIR``, or one generated here: ``--subjects``, ``--per-class``,
   ``--gesture-s``): time-collapsed classifiers (nearest centroid, logistic regression on the
   800 pooled counts of the first 1.5 s), and with ``--epochs N`` the reference network
   800-480-120-11 trained with the paper's recipe (bench.commands.train.run_training:
   surrogate-gradient BPTT, spike-count loss, Adam 0.005, augmentation) — software test accuracy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - t0


def speed(repeats: int, gesture_s: float) -> dict:
    from bench.data import synth
    from bench.data.gesture import recording

    real, styl = [], []
    n_real = n_styl = 0
    rec_s = 0.0
    for r in range(repeats):
        (ev, _, facts), cpu, _ = _cpu(lambda: recording(r, 1 + r, "fluorescent", 0, gesture_s=gesture_s))
        real.append(len(ev) / cpu)
        n_real, rec_s = len(ev), facts["seconds"]
        (ev2, _), cpu2, _ = _cpu(lambda: synth._recording(r, 1 + r, "fluorescent", 0))
        styl.append(len(ev2) / cpu2)
        n_styl = len(ev2)
        real_cpu_per_rec_s = cpu / facts["seconds"]
    med_r, med_s = statistics.median(real), statistics.median(styl)
    # full release: 122 recordings, 11 gestures of ~6 s + ~1.2 s pauses each
    full_rec_s = 122 * (11 * (6.0 + 1.2) + 0.9)
    return {
        "realistic_events_per_cpu_s": round(med_r), "realistic_spread": [round(min(real)), round(max(real))],
        "stylised_events_per_cpu_s": round(med_s), "stylised_spread": [round(min(styl)), round(max(styl))],
        "ratio_realistic_to_stylised": round(med_r / med_s, 4),
        "realistic_events_per_recording": n_real, "stylised_events_per_recording": n_styl,
        "recording_seconds": rec_s, "gesture_s": gesture_s,
        "cpu_s_per_recorded_s": round(real_cpu_per_rec_s, 3),
        "full_release_cpu_minutes_estimate": round(full_rec_s * real_cpu_per_rec_s / 60, 1),
    }


# class pairs that differ (by design) only in direction / timing, or that share a place;
# class indices 0..10 in DVS128 Gesture order (bench.data.gesture.body)
PAIRS = (("right arm CW / CCW", 3, 4), ("left arm CW / CCW", 5, 6), ("hand clap / arm roll", 0, 7),
         ("air drums / other", 8, 10), ("right hand wave / air guitar", 1, 9))


def pairs(train: list, test: list) -> dict:
    """Time-collapsed logistic regression trained and tested on each pair of :data:`PAIRS` alone,
    with polarity (800 counts) and polarity-blind (ON + OFF, 400 counts); and the per-class
    test accuracy of the 11-way classifiers (which classes the counts give away)."""
    from bench.data.gesture.collapsed import collapsed_counts, logistic_regression, nearest_centroid

    Xtr, Xte = collapsed_counts(train), collapsed_counts(test)
    ytr = np.array([s.label for s in train])
    yte = np.array([s.label for s in test])
    half = Xtr.shape[1] // 2
    blind = (lambda X: X[:, :half] + X[:, half:])  # noqa: E731
    out: dict = {"pairs": {}}
    for name, a, b in PAIRS:
        mtr, mte = np.isin(ytr, (a, b)), np.isin(yte, (a, b))
        yt, ye = (ytr[mtr] == b).astype(int), (yte[mte] == b).astype(int)
        row = {"test_samples": int(mte.sum())}
        for key, f in (("with_polarity", lambda X: X), ("polarity_blind", blind)):
            pred = logistic_regression(f(Xtr[mtr]), yt, f(Xte[mte]), 2)
            row[key] = float((pred == ye).mean())
        out["pairs"][name] = row
    for key, fn in (("nearest_centroid", nearest_centroid), ("logistic_regression", logistic_regression)):
        pred = fn(Xtr, ytr, Xte, 11)
        out[f"per_class_{key}"] = [float((pred[yte == c] == c).mean()) if np.any(yte == c) else None
                                   for c in range(11)]
    return out


def difficulty(data: Path, epochs: int, with_pairs: bool = False) -> dict:
    from bench.data.dataset import load_split
    from bench.data.gesture.collapsed import collapsed_accuracy

    train, test = load_split(data, "train"), load_split(data, "test")
    out = {"train": len(train), "test": len(test), "time_collapsed": collapsed_accuracy(train, test)}
    if with_pairs:
        out["time_collapsed_detail"] = pairs(train, test)
    win = []
    for s in train + test:
        e = s.events[(s.events["t"] >= s.start_us) & (s.events["t"] < s.start_us + 1_500_000)]
        win.append((len(e) / 1.5, float(e["p"].mean()) if len(e) else 0.0))
    w = np.array(win)
    out["events_per_s_first_1p5s"] = {"median": round(float(np.median(w[:, 0]))),
                                      "p5": round(float(np.percentile(w[:, 0], 5))),
                                      "p95": round(float(np.percentile(w[:, 0], 95)))}
    out["on_fraction"] = [round(float(w[:, 1].min()), 3), round(float(w[:, 1].max()), 3)]
    if epochs:
        from bench.commands.train import run_training

        with tempfile.TemporaryDirectory() as tmp:
            r, cpu, wall = _cpu(lambda: run_training(data, Path(tmp) / "m.h5", epochs=epochs, seed=0,
                                                     progress=False))
        out["network"] = {"epochs": epochs, "test_accuracy": r["test_accuracy"],
                          "train_accuracy": r["train_accuracy"], "wall_s": round(wall, 1)}
    return out


def subset(src: Path, dst: Path, test_fraction: float = 288 / 1464) -> Path:
    """A release-layout view (symlinks) of the finished recordings in ``src`` (which may still be
    being generated: a recording counts once its labels file exists), the last ~20 % of their
    subjects as the test split."""
    recs = sorted(p for p in src.glob("user*.aedat") if (src / (p.stem + "_labels.csv")).exists())
    subjects = sorted({int(p.name[4:6]) for p in recs})
    if len(subjects) < 2:
        raise SystemExit(f"{src}: fewer than 2 subjects finished")
    n_test = max(1, round(len(subjects) * test_fraction))
    test_subj = set(subjects[-n_test:])
    dst.mkdir(parents=True)
    train, test = [], []
    for p in recs:
        (dst / p.name).symlink_to(p.resolve())
        lab = src / (p.stem + "_labels.csv")
        (dst / lab.name).symlink_to(lab.resolve())
        (test if int(p.name[4:6]) in test_subj else train).append(p.name)
    (dst / "trials_to_train.txt").write_text("".join(n + "\n" for n in train))
    (dst / "trials_to_test.txt").write_text("".join(n + "\n" for n in test))
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small: 2 repeats, 2 s gestures, no training")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=None, help="set to measure difficulty on (default: generate one)")
    ap.add_argument("--subjects", type=int, default=29)
    ap.add_argument("--per-class", type=int, default=58)
    ap.add_argument("--gesture-s", type=float, default=2.2)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--partial", action="store_true",
                    help="--data is a set still being generated (or its .tmp- directory): use the "
                         "recordings finished so far, the last ~20 %% of their subjects as test")
    ap.add_argument("--no-speed", action="store_true", help="skip the generation-speed part")
    ap.add_argument("--pairs", action="store_true",
                    help="also the time-collapsed classifier on each class pair alone and per class")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.subjects, a.per_class, a.gesture_s = 2, 3, 3, 2.0
    res = {} if a.no_speed else {"speed": speed(a.repeats, a.gesture_s)}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(a.data) if a.data else None
        if data is not None and a.partial:
            data = subset(data, Path(tmp) / "partial")
            res["partial"] = {"recordings": len(list(data.glob("*.aedat"))),
                              "test_recordings": len((data / "trials_to_test.txt").read_text().split())}
        if data is None:
            from bench.data.gesture import generate

            data, cpu, wall = _cpu(lambda: generate(Path(tmp) / "set", seed=0, subjects=a.subjects,
                                                    per_class=a.per_class, gesture_s=a.gesture_s))
            m = json.loads((data / "synth.json").read_text())
            res["set"] = {"subjects": a.subjects, "per_class": a.per_class, "gesture_s": a.gesture_s,
                          "events": m["events"], "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                          "events_per_cpu_s": round(m["events"] / cpu)}
        res["difficulty"] = difficulty(data, a.epochs, a.pairs)
    if a.json:
        print(json.dumps(res))
    else:
        if "partial" in res:
            print(f"partial set: {res['partial']}")
    if not a.json and "speed" in res:
        sp = res["speed"]
        print(f"generation: realistic {sp['realistic_events_per_cpu_s']:,} events/CPU-s "
              f"(spread {sp['realistic_spread']}), stylised {sp['stylised_events_per_cpu_s']:,} -> ratio "
              f"{sp['ratio_realistic_to_stylised']}; {sp['cpu_s_per_recorded_s']} CPU-s per recorded s; "
              f"full release ~{sp['full_release_cpu_minutes_estimate']} CPU-min")
    if not a.json:
        d = res["difficulty"]
        print(f"set: {d['train']} train / {d['test']} test; events/s (first 1.5 s) {d['events_per_s_first_1p5s']}; "
              f"ON fraction {d['on_fraction']}")
        print(f"time-collapsed: {d['time_collapsed']}")
        for name, row in d.get("time_collapsed_detail", {}).get("pairs", {}).items():
            print(f"  pair {name}: {row}")
        if "network" in d:
            print(f"reference network: {d['network']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
