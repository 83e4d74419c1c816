"""``snnbench data ...``: event data sets (issue 6).

``snnbench data synth --out DIR [--kind realistic|stylised] [--seed N] [--per-class N]
[--subjects N] [--gesture-s S] [--json]`` writes a synthetic DVS128-Gesture-like set: the
realistic one (default; an articulated body seen by a DVS pixel model, ``bench.data.gesture``)
or the stylised one (``bench.data.synth``).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.commands._args import int_range, pos_float, seed_int
from bench.errors import UsageError



_PER_CLASS = int_range(0, 1000, "the set is generated and written in full; the DVS128 Gesture "
                                 "release has about 133 per class")
KINDS = ("realistic", "stylised")
_WORKERS = int_range(1, 64, "one process per core is the useful maximum")
_SUBJECTS = int_range(0, 1000, "every subject needs at least one recording per class; the release has 29")


def register(subparsers, parent: argparse.ArgumentParser | None = None) -> None:
    parents = [parent] if parent is not None else []
    p = subparsers.add_parser("data", parents=parents, help="event data sets (DVS128 Gesture, synthetic)",
                              description="Event data sets: DVS128 Gesture layout, synthetic gestures.")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    subparsers.__dict__.setdefault("_snnbench_groups", {})["data"] = sub  # data_check.py adds info/check
    s = sub.add_parser(
        "synth", parents=parents, help="write the synthetic gesture set",
        description="Write a seeded synthetic DVS128-Gesture-like set (AEDAT 3.1 + labels + trial lists).",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)")
    s.add_argument("--kind", choices=KINDS, default="realistic",
                   help="realistic (default): articulated body + DVS pixel model, ~6 s gestures; "
                        "stylised: the fast v2 set of moving discs")
    s.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    s.add_argument("--per-class", type=_PER_CLASS, default=None, metavar="N",
                   help="samples per class = recordings, train + test (realistic default 122 as the "
                        "release; stylised default 32 -> 24 train + 8 test)")
    s.add_argument("--subjects", type=_SUBJECTS, default=None, metavar="N",
                   help="number of subjects (realistic default 29; stylised default: 4 lightings each)")
    s.add_argument("--gesture-s", type=pos_float, default=None, metavar="S",
                   help="realistic only: mean gesture length in seconds (default 6, as the release; "
                        "1.6-30)")
    s.add_argument("--workers", type=_WORKERS, default=1, metavar="N",
                   help="realistic only: recordings computed in N processes (same files; default 1)")
    s.set_defaults(func=synth_command)
    p.set_defaults(func=_data_help(p))


def _data_help(p: argparse.ArgumentParser):
    def handler(args) -> dict[str, Any]:
        raise UsageError("data: missing subcommand (synth, info, check); see 'snnbench data --help'")

    return handler


def synth_command(args) -> dict[str, Any]:
    kind = getattr(args, "kind", "realistic")
    gesture_s = getattr(args, "gesture_s", None)
    t0 = time.perf_counter()
    if kind == "stylised":
        from bench.data import synth

        if gesture_s is not None:
            raise UsageError(f"--gesture-s {gesture_s}: only for --kind realistic (stylised gestures are 1.6-1.9 s)")
        if getattr(args, "workers", 1) != 1:
            raise UsageError(f"--workers {args.workers}: only for --kind realistic (the stylised set takes seconds)")
        out = synth.generate(args.out, seed=args.seed, per_class=args.per_class,
                             subjects=getattr(args, "subjects", None))
    else:
        from bench.data import gesture

        out = gesture.generate(args.out, seed=args.seed, per_class=args.per_class,
                               subjects=getattr(args, "subjects", None), gesture_s=gesture_s,
                               workers=getattr(args, "workers", 1))
    seconds = time.perf_counter() - t0
    m = json.loads((out / "synth.json").read_text())
    result = {
        "out": str(out),
        "kind": kind,
        "seed": m["seed"],
        "per_class": m["per_class"],
        "subjects": m["subjects"],
        "classes": len(m["classes"]),
        "recordings": len(m["recordings"]),
        "samples": m["samples"],
        "train": m["train"],
        "test": m["test"],
        "events": m["events"],
        "seconds": round(seconds, 3),
        "events_per_s": round(m["events"] / seconds) if seconds > 0 else None,
    }
    result["summary"] = (
        f"wrote {kind} set: {result['samples']} samples ({result['train']} train, {result['test']} test, "
        f"{result['events']} events, {len(m['recordings'])} recordings) to {out} in {seconds:.2f} s"
    )
    return result
