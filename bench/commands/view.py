"""``snnbench view``: a live window following a run or campaign file (issue 12).

    snnbench view RUN.h5|CAMPAIGN.h5 [--wait] [--replay [--speed K]] [--screenshot PNG]
                  [--interval-s S] [--until-done] [--json]

The window reads only what the writer has committed and never writes the file (decision
0008); it can be started before the run (``--wait``), during it, or after it.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench.commands._args import pos_float


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, got {text!r}") from None
    if not (200 <= w <= 8000 and 150 <= h <= 8000):
        raise argparse.ArgumentTypeError(f"size {w}x{h} outside 200x150 .. 8000x8000 pixels")
    return w, h


def _interval(text: str) -> float:
    v = float(text) if text.replace(".", "", 1).isdigit() else -1.0
    if not 0 <= v <= 60:
        raise argparse.ArgumentTypeError(f"expected seconds in 0..60, got {text!r}")
    return v


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "view", parents=[common], help="live window following a run or campaign file",
        description="Open a window (pyqtgraph) that follows a run or campaign file while it is "
                    "written, or shows a finished one; --screenshot renders it once offscreen.")
    p.add_argument("file", metavar="FILE", help="run file (chip program/read, infer, power, demo) or campaign file")
    p.add_argument("--wait", action="store_true", help="wait for FILE to appear (start before the measurement)")
    p.add_argument("--wait-timeout-s", type=pos_float, default=None, metavar="S",
                   help="with --screenshot --wait: give up after S seconds (default: wait for ever)")
    p.add_argument("--replay", action="store_true", help="play a finished run back at its recorded pace")
    p.add_argument("--speed", type=pos_float, default=1.0, metavar="K", help="replay K times faster (default 1)")
    p.add_argument("--at-commit", type=int, default=None, metavar="N",
                   help="show the file as it was after its N-th commit (flushed unit)")
    p.add_argument("--screenshot", metavar="PNG", help="render the window once offscreen into PNG and exit")
    p.add_argument("--size", type=_size, default=(1500, 950), metavar="WxH",
                   help="window size in pixels (default 1500x950)")
    p.add_argument("--interval-s", type=_interval, default=0.5, metavar="S",
                   help="refresh period in seconds (default 0.5; 0 = as fast as possible)")
    p.add_argument("--until-done", action="store_true",
                   help="close once the run has finished or ended without finishing")
    p.add_argument("--trace", metavar="JSONL", help="append one JSON line per refresh (what the window shows)")
    p.add_argument("--nice", type=int, choices=range(0, 20), default=10, metavar="N",
                   help="lower the viewer's CPU priority by N (0..19, default 10: the measurement goes first)")
    p.add_argument("--axis", help="campaign: sweep axis for the result plot")
    p.add_argument("--column", help="campaign: result column for the result plot")
    p.set_defaults(func=_view)


def _view(args: argparse.Namespace) -> dict:
    from bench.errors import BenchError
    from bench.view.app import ViewOptions, check_input, run_viewer

    opts = ViewOptions(path=Path(args.file), wait=args.wait, wait_timeout_s=args.wait_timeout_s or 0.0,
                       replay=args.replay, speed=args.speed, at_commit=args.at_commit,
                       screenshot=Path(args.screenshot) if args.screenshot else None, size=args.size,
                       interval_s=args.interval_s, until_done=args.until_done,
                       trace=Path(args.trace) if args.trace else None, axis=args.axis, column=args.column,
                       debug=args.debug, nice=args.nice)
    check_input(opts)        # bad input: one line, exit 2, before Qt starts (the CLI reports it)
    try:
        res = run_viewer(opts)
    except BenchError as exc:
        _exit(None, args, f"snnbench: error: {' '.join(str(exc).split())}", exc.exit_code)
    c = res.get("counts", {})
    parts = [f"{k}: {v.get('done', v.get('points'))}/{v.get('total', '?')}" for k, v in c.items()]
    res["summary"] = (f"{res['file']}: {res['state']}" + (f" ({res['detail']})" if res.get("detail") else "")
                      + (", " + ", ".join(parts) if parts else "")
                      + (f"; screenshot {res['screenshot']}" if res.get("screenshot") else ""))
    if args.json:
        res.pop("summary")
    _exit(res, args)
    return res  # pragma: no cover - _exit does not return


def _finite(obj):
    """Strict JSON: NaN / infinity (e.g. a figure not measured yet) become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _exit(res: dict | None, args: argparse.Namespace, error: str = "", code: int = 0) -> None:
    """Print the result (or the error line) and leave without interpreter finalisation: PySide6
    aborted in its garbage collection at exit ("none_dealloc") after windows had been shown
    (decision 0004); the viewer holds no open files or instruments, so nothing is skipped."""
    import json
    import os
    import sys

    from bench.cli import _human, _jsonable

    try:
        if error:
            print(error, file=sys.stderr)
        elif args.json:
            print(json.dumps(_finite(_jsonable(res)), allow_nan=False))
        else:
            print(_human(res))
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
