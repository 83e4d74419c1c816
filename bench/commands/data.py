"""``snnbench data ...``: event data sets (issue 6).

``snnbench data synth --out DIR [--seed N] [--per-class N] [--subjects N] [--json]`` writes
the synthetic DVS128-Gesture-like set (see ``bench.data.synth``).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.commands._args import int_range, seed_int
from bench.errors import UsageError



_PER_CLASS = int_range(0, 1000, "the set is generated and written in full; the DVS128 Gesture "
                                 "release has about 133 per class")
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
    s.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    s.add_argument("--per-class", type=_PER_CLASS, default=None, metavar="N",
                   help="samples per class, train + test (default 32 -> 24 train + 8 test)")
    s.add_argument("--subjects", type=_SUBJECTS, default=None, metavar="N",
                   help="number of subjects (default: 4 lighting conditions each)")
    s.set_defaults(func=synth_command)
    p.set_defaults(func=_data_help(p))


def _data_help(p: argparse.ArgumentParser):
    def handler(args) -> dict[str, Any]:
        raise UsageError("data: missing subcommand (synth, info, check); see 'snnbench data --help'")

    return handler


def synth_command(args) -> dict[str, Any]:
    from bench.data import synth

    t0 = time.perf_counter()
    out = synth.generate(args.out, seed=args.seed, per_class=args.per_class,
                         subjects=getattr(args, "subjects", None))
    seconds = time.perf_counter() - t0
    m = json.loads((out / "synth.json").read_text())
    result = {
        "out": str(out),
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
    }
    result["summary"] = (
        f"wrote {result['samples']} samples ({result['train']} train, {result['test']} test, "
        f"{result['events']} events, {len(m['recordings'])} recordings) to {out} in {seconds:.2f} s"
    )
    return result
