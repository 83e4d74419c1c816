"""Conformance suite benchmark (issue 13): wall time of the whole suite against the virtual
firmware over socket:// and a pty (target <= 60 s), and the number of checks per section.

Baseline, measured in the same run and interleaved with the suite: the suite's fixed cost per
check (a fresh link, HELLO, RESET, close) times the number of checks.  The ratio says how much
of the suite's time is the checks' own work.  Repetitions alternate suite and baseline;
median and spread (min..max) are printed.

    .venv/bin/python benchmarks/bench_conformance.py [--quick] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__))))

from bench import conformance as C  # noqa: E402
from bench.conformance.rawlink import RawLink  # noqa: E402
from drivers.limits import ChipLimits  # noqa: E402
from firmware_iface.spec import Opcode  # noqa: E402


def serve(pty: bool, fidelity: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "bench", "sim", "serve", "--fidelity", fidelity, "--no-instruments"]
    p = subprocess.Popen(cmd + (["--pty"] if pty else []), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    return p, json.loads(p.stdout.readline())["chip"]


def suite(url: str) -> tuple[float, dict]:
    limits = ChipLimits()
    sandbox = C.Sandbox.for_limits(limits, range(120, 128))
    t0 = time.perf_counter()
    outs = list(C.run(C.CHECKS, lambda: C.Context(url, limits, sandbox)))
    wall = time.perf_counter() - t0
    bad = [o.check.id for o in outs if o.outcome in ("fail", "error")]
    if bad:
        raise SystemExit(f"conformance failed against the virtual firmware: {bad}")
    return wall, {o: sum(x.outcome == o for x in outs) for o in ("pass", "skip")}


def baseline(url: str, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        link = RawLink(url)
        link.open_session()
        link.ok(Opcode.RESET)
        link.close()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repetition per transport")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    reps = 1 if args.quick else 5
    sections = {s: sum(c.section == s for c in C.CHECKS) for s in C.SECTIONS}
    results = {}
    for name, pty, fidelity in (("socket ideal", False, "ideal"), ("socket typical", False, "typical"),
                                ("pty ideal", True, "ideal")):
        p, url = serve(pty, fidelity)
        try:
            walls, bases, counts = [], [], {}
            for _ in range(reps):  # interleaved
                w, counts = suite(url)
                walls.append(w)
                bases.append(baseline(url, len(C.CHECKS)))
        finally:
            p.terminate()
            p.wait(timeout=10)
        ratios = [w / b for w, b in zip(walls, bases)]
        results[name] = {"suite_s_median": statistics.median(walls), "suite_s_min": min(walls),
                         "suite_s_max": max(walls), "baseline_s_median": statistics.median(bases),
                         "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios), "outcomes": counts}
    if args.json:
        print(json.dumps({"checks": len(C.CHECKS), "sections": sections, "results": results}))
        return 0
    print(f"{len(C.CHECKS)} checks; per section: " + ", ".join(f"{k} {v}" for k, v in sections.items()))
    print(f"{'transport':<16} {'suite s (median, min..max)':<30} {'baseline s':<11} ratio (min..max)   outcomes")
    for name, r in results.items():
        print(f"{name:<16} {r['suite_s_median']:6.2f} ({r['suite_s_min']:.2f}..{r['suite_s_max']:.2f})"
              f"{'':<12} {r['baseline_s_median']:6.3f}     {r['ratio_median']:5.1f}x "
              f"({r['ratio_min']:.1f}..{r['ratio_max']:.1f})   {r['outcomes']}")
    print("target: full suite <= 60 s over socket://")
    return 0


if __name__ == "__main__":
    sys.exit(main())
