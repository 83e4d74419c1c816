"""``snnbench demo`` (the README's main job) and ``snnbench report RUN.h5``."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands._args import sample_limit
from bench.view.live import add_live_argument


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "demo", parents=[common],
        help="program the chip, stream the gesture test split at 50,000x, measure accuracy and energy, report",
        description="The main job on the built-in simulated bench (or the station's hardware with --station).")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="a third of the test split (for CI)")
    p.add_argument("--limit", type=sample_limit, default=None, metavar="N", help="at most N test samples")
    p.add_argument("--model", metavar="MODEL.h5", help="model file (default: the shipped reference model)")
    add_live_argument(p)
    p.set_defaults(func=_demo)
    r = subparsers.add_parser("report", parents=[common], help="figures (PNG) and an HTML page from a run file")
    r.add_argument("run", metavar="RUN.h5")
    r.add_argument("--out", metavar="DIR", help="report directory (default: next to the run file)")
    r.set_defaults(func=_report)


def _demo(args: argparse.Namespace) -> dict:
    from bench.demo import DemoOptions, run_demo
    from bench.errors import UsageError

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    res = run_demo(DemoOptions(out_dir=Path(args.out), station=args.station, quick=args.quick,
                               progress=not args.json, limit=args.limit,
                               model=Path(args.model) if args.model else None, live=args.live))
    if args.json:
        res.pop("summary", None)
    return res


def _report(args: argparse.Namespace) -> dict:
    from bench.report import make_report

    rep = make_report(args.run, args.out)
    if not args.json:
        return {"summary": rep["summary_table"] + f"\n\nreport: {rep['report']}"}
    rep.pop("summary_table")
    return rep
