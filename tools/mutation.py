"""Mutation testing of the core modules with mutmut (``make mutation``; decision 0013).

    python tools/mutation.py                  # every mutant of every core module (hours)
    python tools/mutation.py --sample 25      # a seeded random sample per module (an estimate)
    python tools/mutation.py --report         # only print the scores of what has been run

The modules are ``[tool.mutmut] only_mutate`` in pyproject.toml.  mutmut copies the packages
into ./mutants/, runs the test suite once to learn which tests reach which function, and then
for each mutant runs only those tests.  Score per module = killed / (checked - equivalent):
killed includes time-outs (a mutant that hangs the suite is caught); "no tests" (no test
reaches the mutated function) and survivors count against the score.  Mutants judged
equivalent (no test can tell them apart; each with its reason) are listed in
tools/mutation_equivalent.txt and left out of the denominator.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.txt"
KILLED = {1, 3, 24, -24, 36, 152, 255, -9, -11, 37}     # failed, pytest error, time-out, crash
STATUS = {None: "not checked", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}


def core_modules() -> list[str]:
    """Paths of the modules configured for mutation (pyproject ``[tool.mutmut]``)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    files = sorted(str(p.relative_to(ROOT)) for src in cfg["source_paths"]
                   for p in (ROOT / src).rglob("*.py"))
    keep = [f for f in files if any(fnmatch.fnmatch(f, pat) for pat in cfg["only_mutate"])]
    return [f for f in keep if not any(fnmatch.fnmatch(f, pat) for pat in cfg.get("do_not_mutate", []))]


def equivalent() -> dict[str, str]:
    """Mutant name -> why it is equivalent (tools/mutation_equivalent.txt: NAME  reason)."""
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, why = line.strip().partition(" ")
                out[name] = why.strip()
    return out


def results(modules: list[str]) -> dict[str, dict[str, int | None]]:
    """module path -> {mutant name: exit code or None}, from mutmut's ./mutants/*.meta."""
    out = {}
    for m in modules:
        meta = ROOT / "mutants" / (m + ".meta")
        out[m] = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    return out


def generate(children: int) -> None:
    """Create ./mutants/ (mutated copies, .meta files) without running anything."""
    os.chdir(ROOT)
    from mutmut.__main__ import create_mutants
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir

    Path("mutants").mkdir(exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    create_mutants(children)


def run(names: list[str], children: int, budget_s: float) -> None:
    """``mutmut run NAMES`` for at most ``budget_s`` (then interrupted: results so far are kept)."""
    if not names:
        return
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *names]
    p = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        p.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        print(f"mutation: budget of {budget_s:g} s used up, stopping", file=sys.stderr)
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def score(res: dict[str, dict[str, int | None]], only: dict[str, list[str]] | None,
          eq: dict[str, str]) -> list[dict]:
    rows = []
    for mod, codes in res.items():
        names = only[mod] if only is not None else list(codes)
        c = Counter()
        survivors = []
        for n in names:
            code = codes.get(n)
            if n in eq:
                c["equivalent"] += 1
            elif code is None:
                c["not checked"] += 1
            elif code in KILLED:
                c["killed"] += 1
            else:
                c[STATUS.get(code, "survived")] += 1
                survivors.append(n)
        checked = c["killed"] + c["survived"] + c["no tests"] + c["skipped"]
        rows.append({"module": mod, "mutants": len(codes), "tried": len(names), **c,
                     "checked": checked, "score": (c["killed"] / checked) if checked else None,
                     "surviving": survivors})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=0, help="mutants per module (0: all)")
    ap.add_argument("--seed", type=int, default=18, help="seed of the sample")
    ap.add_argument("--children", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--budget-min", type=float, default=24 * 60.0, help="wall-time budget (minutes)")
    ap.add_argument("--module", action="append", help="restrict to these module paths")
    ap.add_argument("--report", action="store_true", help="only report what was run")
    ap.add_argument("--retry", action="store_true",
                    help="run the surviving mutants again too (after new tests were written)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    modules = [m for m in core_modules() if not a.module or m in a.module]
    if not (ROOT / "mutants").exists() or not a.report:
        generate(a.children)
    res = results(modules)
    only = None
    if a.sample:
        rng = random.Random(a.seed)
        only = {m: sorted(rng.sample(sorted(c), min(a.sample, len(c)))) for m, c in res.items()}
    if not a.report:
        todo = [n for m in modules for n in (only[m] if only else res[m])
                if res[m].get(n) is None or (a.retry and res[m][n] not in KILLED)]
        t0 = time.monotonic()
        run(todo, a.children, a.budget_min * 60.0)
        took = time.monotonic() - t0
        res = results(modules)
        done = sum(1 for m in modules for n in (only[m] if only else res[m]) if res[m].get(n) is not None)
        print(f"mutation: {done} mutants checked in {took / 60:.1f} min "
              f"({done / max(took / 60, 1e-9):.1f} mutants/min)", file=sys.stderr)
    rows = score(res, only, equivalent())
    if a.json:
        print(json.dumps({"sample_per_module": a.sample, "seed": a.seed, "modules": rows}))
        return 0
    print(f"{'module':<34} {'mutants':>7} {'tried':>5} {'killed':>6} {'surv':>5} {'notest':>6} "
          f"{'equiv':>5} {'score':>6}")
    for r in rows:
        s = f"{100 * r['score']:.0f}%" if r["score"] is not None else "-"
        print(f"{r['module']:<34} {r['mutants']:>7} {r['tried']:>5} {r.get('killed', 0):>6} "
              f"{r.get('survived', 0):>5} {r.get('no tests', 0):>6} {r.get('equivalent', 0):>5} {s:>6}")
    tot = Counter()
    for r in rows:
        tot.update({k: r.get(k, 0) for k in ("killed", "checked")})
    if tot["checked"]:
        print(f"{'all':<34} {'':>7} {'':>5} {tot['killed']:>6} {'':>5} {'':>6} {'':>5} "
              f"{100 * tot['killed'] / tot['checked']:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
