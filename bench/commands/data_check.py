"""``snnbench data info DIR`` and ``snnbench data check DIR``: a DVS128 Gesture release
directory, what it holds and what is wrong with it (issue 15 item 6; see bench.data.check).

``info`` reports recordings, trial lists, per-class sample counts per split, event rates and
the problems found, and exits 0.  ``check`` lists every problem, one line each naming the
file, where in it (line / byte) and the value, and exits 2 when there is any (0 otherwise);
warnings (labels clipped on load, unsorted timestamps, recordings in no split) are listed but
do not fail the check.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

from bench.commands._groups import group


def register(subparsers, parent: argparse.ArgumentParser | None = None) -> None:
    parents = [parent] if parent is not None else []
    data = group(subparsers, "data", "event data sets (DVS128 Gesture, synthetic)")
    i = data.add_parser(
        "info", parents=parents, help="what a DVS128 Gesture release directory holds",
        description="Recordings, trial lists, per-class counts per split, event rates and problems found "
                    "in a DVS128 Gesture release directory (userNN_<lighting>.aedat + _labels.csv + "
                    "trials_to_train.txt / trials_to_test.txt). Exits 0 whatever it finds.",
    )
    i.add_argument("dir", metavar="DIR", help="release directory")
    i.set_defaults(func=info_command)
    c = data.add_parser(
        "check", parents=parents, help="check a DVS128 Gesture release directory (exit 2 on problems)",
        description="Check every trial list, recording and labels file of a DVS128 Gesture release "
                    "directory; list each problem on one line (file, line/byte, value). Exit 2 if any "
                    "problem is found. Labels partly outside their recording are warnings (clipped on load).",
    )
    c.add_argument("dir", metavar="DIR", help="release directory")
    c.set_defaults(func=check_command)


def _scan(args) -> tuple[Any, float]:
    from bench.data.check import scan_release

    t0 = time.perf_counter()
    report = scan_release(args.dir)
    return report, time.perf_counter() - t0


def _findings_text(res: dict[str, Any]) -> list[str]:
    return [f"problem: {p}" for p in res["problems"]] + [f"warning: {w}" for w in res["warnings"]]


def info_command(args) -> dict[str, Any]:
    from bench.data.labels import CLASS_NAMES   # bench.data: the AEDAT reader and preprocessing

    report, seconds = _scan(args)
    res = report.to_dict()
    res["seconds"] = round(seconds, 3)
    sp = res["splits"]
    lines = [
        f"{res['dir']}: {res['recordings']} recordings, {res['events']} events, "
        f"{len(res['problems'])} problem(s), {len(res['warnings'])} warning(s) ({seconds:.2f} s)",
        f"{'split':6s} {'recordings':>10s} {'subjects':>8s} {'samples':>8s} {'events':>11s} "
        f"{'events/s':>10s} {'in labels/s':>11s}",
    ]
    for name, s in sp.items():
        lines.append(f"{name:6s} {s['recordings']:10d} {len(s['subjects']):8d} {s['samples']:8d} {s['events']:11d} "
                     f"{_num(s['event_rate_per_s']):>10s} {_num(s['labelled_event_rate_per_s']):>11s}")
    lines.append(f"{'class':31s} " + " ".join(f"{n:>6s}" for n in sp))
    for k, cname in enumerate(CLASS_NAMES):
        lines.append(f"{k + 1:2d} {cname:28s} " + " ".join(f"{s['per_class'][cname]:6d}" for s in sp.values()))
    lines += _findings_text(res)
    res["summary"] = "\n".join(lines)
    return res


def check_command(args) -> dict[str, Any]:
    report, seconds = _scan(args)
    full = report.to_dict()
    res = {k: full[k] for k in ("dir", "ok", "recordings", "trial_lists", "events", "problems", "warnings")}
    res["samples"] = {s: v["samples"] for s, v in full["splits"].items()}
    res["seconds"] = round(seconds, 3)
    res["exit_code"] = 0 if res["ok"] else 2
    head = (f"{res['dir']}: ok, {res['recordings']} recordings, "
            f"{sum(res['samples'].values())} samples" if res["ok"] else
            f"{res['dir']}: {len(res['problems'])} problem(s)")
    head += f", {len(res['warnings'])} warning(s)"
    res["summary"] = "\n".join([head] + _findings_text(res))
    return res


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"
