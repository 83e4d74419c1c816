"""Mutation testing of the core modules with mutmut (``make mutation``; decision 0013).

    python tools/mutation.py                  # every mutant of every core module (hours)
    python tools/mutation.py --sample 80      # a seeded random sample per module (an estimate)
    python tools/mutation.py --module bench/power.py --sample 80
    python tools/mutation.py --report         # only print the scores of what has been run

The modules are ``[tool.mutmut] only_mutate`` in pyproject.toml.  mutmut generates the
mutants: it copies the packages into ./mutants/ and compiles every mutant of a function
behind a trampoline that picks the active mutant from ``MUTANT_UNDER_TEST``.  The mutants are
then run here, one module at a time (``--engine modules``, the default):

1. the module's test files (``TESTS_FOR``, below: the tests written for that module and the
   ones that drive it) run once with the trampolines recording, per test, which functions it
   reaches (and how long it takes);
2. for each mutant, a child forked from a process that has already imported everything runs
   ``pytest -x`` on only the tests of that module that reach the mutated function; a child
   that outlives 5x their measured time + 20 s is killed and the mutant counts as a time-out.

Restricting each module to its own tests keeps a mutant of a widely used function (the
driver's command loop, the frame encoder) from running half of the suite, and the score
can only be lower for it, never higher.  ``--engine mutmut`` runs ``mutmut run`` instead
(the whole suite's coverage; slower).

Score per module = killed / (checked - equivalent): killed includes time-outs (a mutant that
hangs the suite is caught); "no tests" (no test reaches the mutated function) and survivors
count against the score.  Mutants judged equivalent (no test can tell them apart; each with
its reason) are listed in tools/mutation_equivalent.txt and left out of the denominator.
With ``--sample N`` the score is an estimate; its 95 % Wilson interval is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import fnmatch
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
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


# Test files (globs under tests/) that test each core module: its own tests and the ones that
# drive it.  A mutant is run against the tests of this list that reach its function.
_PROTOCOL = ["test_protocol_golden.py", "test_protocol_v2.py", "test_protocol_spec.py",
             "test_fuzz_firmware.py", "test_firmware_limits.py", "test_framing_properties.py",
             "test_conformance.py"]
_PHYSICS = ["test_physics_*.py", "test_energy_*.py", "test_chip_model.py", "test_chip_limits.py",
            "test_fault_budget.py"]
_DRIVER = ["test_protocol_v2.py", "test_link_faults.py", "test_link_directions.py",
           "test_transports.py", "test_safety.py", "test_firmware_limits.py", "test_streaming.py",
           "test_resume_wear.py", "test_write_verify_confirm.py", "test_conformance.py"]
_SMU = ["test_instrument_*.py", "test_smu_*.py", "test_safety_registry.py", "test_power_idle.py"]
TESTS_FOR: dict[str, list[str]] = {
    "firmware_iface/framing.py": _PROTOCOL + ["test_transports.py", "test_link_faults.py"],
    "firmware_iface/messages.py": _PROTOCOL + ["test_write_verify_identical.py"],
    "firmware_iface/records.py": _PROTOCOL,
    "firmware_iface/spec.py": _PROTOCOL,
    "firmware_iface/spikes.py": _PROTOCOL + ["test_streaming.py"],
    "firmware_iface/bulk.py": ["test_bulk_mode.py", "test_firmware_limits.py", "test_fuzz_firmware.py",
                               "test_resume_wear.py", "test_mut_firmware.py"],
    "firmware_iface/write_verify.py": ["test_write_verify_*.py", "test_programming.py",
                                       "test_firmware_limits.py", "test_fault_budget.py",
                                       "test_protocol_golden.py"],
    "drivers/pechip.py": _DRIVER + ["test_programming.py"],
    "drivers/limits.py": ["test_chip_limits.py", "test_safety.py", "test_firmware_limits.py",
                          "test_conformance.py", "test_programming.py"],
    "drivers/instruments/base.py": _SMU,
    "drivers/instruments/safety.py": _SMU + ["test_power.py"],
    # rowdrive is also driven by the fault-budget tests; fastpath/jit by the kernel tests
    "sim_backend/physics/rowdrive.py": _PHYSICS + ["test_budget.py"],
    "sim_backend/physics/fastpath.py": _PHYSICS + ["test_kernel_*.py"],
    "sim_backend/physics/jit.py": _PHYSICS + ["test_kernel_*.py"],
    "sim_backend/physics/*.py": _PHYSICS,
    "sim_backend/link.py": ["test_link_*.py", "test_transports.py"],
    "sim_backend/firmware.py": _PROTOCOL + ["test_safety.py", "test_streaming.py",
                                            "test_write_verify_*.py", "test_link_faults.py",
                                            "test_resume_wear.py"],
    "bench/programming.py": ["test_programming*.py", "test_write_verify_*.py", "test_streaming.py",
                             "test_mapping_safety.py"],
    "bench/mapping.py": ["test_mapping*.py", "test_programming.py", "test_hybrid.py"],
    "bench/hybrid.py": ["test_hybrid.py", "test_mapping_safety.py"],
    "bench/scoring.py": ["test_scoring*.py"],
    "bench/power.py": ["test_power.py", "test_power_args.py", "test_power_idle.py",
                       "test_power_issue14.py", "test_energy_closed_form.py"],
    "bench/runstore.py": ["test_runstore*.py", "test_power.py", "test_campaign_resume.py"],
    "bench/data/aedat.py": ["test_aedat*.py", "test_dataset.py", "test_preprocess.py"],
}
MUT_TIMEOUT_FACTOR, MUT_TIMEOUT_S = 5.0, 20.0
# pytest exit codes: 1 tests failed, 2 interrupted (a collection/fixture error under -x),
# 3 internal error -> killed; 0 -> survived.  Stored in mutmut's .meta with mutmut's codes.
EXIT_TIMEOUT, EXIT_NO_TESTS = 36, 33


def tests_for(module: str) -> list[str]:
    """The test files (paths relative to the repository) mapped to ``module``."""
    globs = next((g for pat, g in TESTS_FOR.items() if fnmatch.fnmatch(module, pat)), None)
    if globs is None:
        raise SystemExit(f"mutation: no tests mapped to {module} (tools/mutation.py TESTS_FOR)")
    globs = [*globs, f"test_mut_{Path(module).stem}*.py"]     # tests written from this tool's survivors
    files = sorted({str(p.relative_to(ROOT)) for g in globs for p in (ROOT / "tests").glob(g)})
    slow_or_subprocess = set(_pytest_ignores())
    return [f for f in files if f not in slow_or_subprocess]


def _pytest_ignores() -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return [a.split("=", 1)[1] for a in cfg["pytest_add_cli_args"] if a.startswith("--ignore=")]


def _pytest_args(tests: list[str]) -> list[str]:
    return ["--rootdir=.", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
            "-o", "addopts=", "-m", "not slow", "--hypothesis-seed=0", "--tb=no", *tests]


def _settle_threads(timeout_s: float = 300.0) -> None:
    """Wait for this process's background threads before forking.  A fork copies locks held by
    other threads in their held state: the simulated chip's kernel warm-up thread
    (``fastpath.prewarm``, started when a test builds a chip) holds ``jit._LOCK`` while it
    imports numba, and a child forked then deadlocks on its first kernel call (seen: a stats
    pass hung for good).  Only this tool's own process forks this way; the tests never do."""
    for t in threading.enumerate():
        if t.name.startswith("snnbench-") and t is not threading.current_thread():
            t.join(timeout_s)


def _in_child(fn, timeout_s: float | None, quiet: bool = True) -> tuple[int, float, bool]:
    """Run ``fn()`` (returns an exit code) in a forked child in its own process group.
    Returns (exit code, wall seconds, timed out).  A child over ``timeout_s`` is killed with
    its whole group (simulators, servers it started)."""
    _settle_threads()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setsid()
            # as in a fresh interpreter: a runner started in the background (nohup, `&`) inherits
            # SIGINT ignored, and the tests of the Ctrl-C handling would then pass for any mutant
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if quiet:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
            code = int(fn())
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    deadline = None if timeout_s is None else t0 + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            _killgroup(pid)
            return code, time.monotonic() - t0, False
        if deadline is not None and time.monotonic() > deadline:
            _killgroup(pid)
            os.waitpid(pid, 0)
            return EXIT_TIMEOUT, time.monotonic() - t0, True
        time.sleep(0.02)


def _killgroup(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _save_codes(module: str, codes: dict[str, int]) -> None:
    meta = ROOT / "mutants" / (module + ".meta")
    data = json.loads(meta.read_text())
    data["exit_code_by_key"].update(codes)
    meta.write_text(json.dumps(data, indent=4))


def _shared_stats(files: list[str], stamp: dict[str, int], src_stamp: int) -> dict:
    """Stats of ``files`` taken in another module's stats pass (run from ./mutants).  A stats
    pass records the hits of every mutated function, whichever module it was run for, so test
    files that several modules share (the protocol tests) need one pass: a stats file serves
    the test files unchanged since it was taken, when it is newer than this module's mutated
    source (so the function names it records are still this source's)."""
    out: dict = {"files": set(), "hits": {}, "dur": {}}
    want = set(files)
    for p in sorted(Path(".").glob("mutmut-stats-*.json")):
        if not want:
            break
        if p.stat().st_mtime_ns <= src_stamp:
            continue
        try:
            st = json.loads(p.read_text())
        except ValueError:
            continue
        got = {f for f in want if st.get("files", {}).get(f) == stamp[f]}
        if not got:
            continue
        mine = lambda t: t.split("::")[0] in got  # noqa: E731
        for fn, ids in st.get("hits", {}).items():
            ids = [t for t in ids if mine(t)]
            if ids:
                out["hits"].setdefault(fn, []).extend(ids)
        out["dur"].update({t: d for t, d in st.get("dur", {}).items() if mine(t)})
        out["files"] |= got
        want -= got
    return out


def run_modules(todo: dict[str, list[str]], budget_s: float, log=print,
                module_budget_s: float = math.inf) -> None:
    """Run the mutants ``todo`` (module -> mutant names), module by module (see the module
    docstring), until ``budget_s`` of wall time is used.  Results go to mutmut's .meta files."""
    import pytest
    from mutmut.stats import record_trampoline_hit  # noqa: F401  (imported by the trampolines)
    from mutmut.mutation.trampoline import set_mutant_under_test
    from mutmut.state import state
    from mutmut.utils.format_utils import mangled_name_from_mutant_name

    t_end = time.monotonic() + budget_s
    os.chdir(ROOT / "mutants")
    shutil.copytree(ROOT / "tests", ROOT / "mutants" / "tests", dirs_exist_ok=True)
    sys.path.insert(0, str(ROOT / "mutants"))
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for module, names in todo.items():
        if not names:
            continue
        if time.monotonic() > t_end:
            log(f"mutation: budget used up before {module}")
            break
        tests = tests_for(module)
        # the copy the children run, refreshed per module: a test file edited during a long run is
        # then both run and stamped (below) as it is now, never stamped new but run as copied
        shutil.copytree(ROOT / "tests", ROOT / "mutants" / "tests", dirs_exist_ok=True)
        # Warm up: import the tests (and through them the mutated modules) in this process,
        # so each forked child only runs tests.
        set_mutant_under_test("")
        with contextlib.redirect_stdout(io.StringIO()):
            pytest.main(["--collect-only", *_pytest_args(tests)])

        stats_file = Path(f"mutmut-stats-{module.replace('/', '.')}.json")
        # Reuse the stats of test files unchanged since they were taken (same mutated module,
        # same file contents); run the stats pass only on new or changed test files.
        stamp = {f: (ROOT / f).stat().st_mtime_ns for f in tests}
        src_stamp = (ROOT / "mutants" / module).stat().st_mtime_ns
        old = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        if old.get("module_mtime") != src_stamp:
            old = {}
        keep = {f for f in tests if old.get("files", {}).get(f) == stamp[f]}
        shared = _shared_stats([f for f in tests if f not in keep], stamp, src_stamp)
        fresh = [f for f in tests if f not in keep and f not in shared["files"]]

        def stats_run() -> int:
            hits: dict[str, list[str]] = {}
            dur: dict[str, float] = {}

            class Collect:
                def pytest_runtest_teardown(self, item, nextitem):
                    for f in state()._stats:
                        hits.setdefault(f, []).append(item.nodeid)
                    state()._stats.clear()

                def pytest_runtest_logreport(self, report):
                    dur[report.nodeid] = dur.get(report.nodeid, 0.0) + report.duration

            set_mutant_under_test("stats")
            code = pytest.main(_pytest_args(fresh), plugins=[Collect()])
            Path(stats_file.name + ".new").write_text(json.dumps({"hits": hits, "dur": dur}))
            return code

        code, took = 0, 0.0
        if fresh:
            code, took, _ = _in_child(stats_run, None)
        if code != 0:
            raise SystemExit(f"mutation: the tests of {module} fail without a mutant (exit {code}): "
                             f"pytest {' '.join(fresh)}")
        new = json.loads(Path(stats_file.name + ".new").read_text()) if fresh else {"hits": {}, "dur": {}}
        in_kept = lambda t: t.split("::")[0] in keep  # noqa: E731
        old_hits = old.get("hits", {})
        st = {"hits": {f: [t for t in old_hits.get(f, []) if in_kept(t)] + shared["hits"].get(f, [])
                       + new["hits"].get(f, []) for f in {*old_hits, *shared["hits"], *new["hits"]}},
              "dur": {**{t: d for t, d in old.get("dur", {}).items() if in_kept(t)}, **shared["dur"],
                      **new["dur"]},
              "files": stamp, "module_mtime": src_stamp}
        stats_file.write_text(json.dumps(st))

        def forced_fail() -> int:
            set_mutant_under_test("fail")
            return pytest.main(_pytest_args(tests))

        if _in_child(forced_fail, None)[0] == 0:
            raise SystemExit(f"mutation: the trampolines of {module} are not active (a forced failure passed)")
        log(f"mutation: {module}: {len(tests)} test files ({len(shared['files'])} with stats shared from another "
            f"module, {len(fresh)} new or changed: stats run {took:.0f} s); "
            f"{len(names)} mutants to check")
        codes: dict[str, int] = {}
        t_mod = time.monotonic()
        for name in names:
            if time.monotonic() > min(t_end, t_mod + module_budget_s):
                log(f"mutation: budget used up in {module}")
                break
            func = mangled_name_from_mutant_name(name)
            # fastest first: with -x a killed mutant stops at its first failing test
            ids = sorted(set(st["hits"].get(func, [])), key=lambda t: (st["dur"].get(t, 0.0), t))
            if not ids:
                codes[name] = EXIT_NO_TESTS
                continue
            est = sum(st["dur"].get(t, 0.0) for t in ids)

            def one(name=name, ids=ids) -> int:
                set_mutant_under_test(name)
                return pytest.main(_pytest_args(ids))

            code, _, timed_out = _in_child(one, MUT_TIMEOUT_FACTOR * est + MUT_TIMEOUT_S)
            codes[name] = EXIT_TIMEOUT if timed_out else (1 if code in (1, 2, 3) or code < 0 else code)
            if len(codes) % 10 == 0:
                _save_codes(module, codes)
        _save_codes(module, codes)
        took = time.monotonic() - t_mod
        log(f"mutation: {module}: {len(codes)} mutants in {took / 60:.1f} min "
            f"({len(codes) / max(took / 60, 1e-9):.1f} mutants/min)")
    os.chdir(ROOT)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - h), min(1.0, c + h)


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
        lo, hi = wilson(c["killed"], checked)
        rows.append({"module": mod, "mutants": len(codes), "tried": len(names), **c,
                     "checked": checked, "score": (c["killed"] / checked) if checked else None,
                     "interval95": [round(lo, 3), round(hi, 3)] if checked else None,
                     "surviving": survivors})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=0, help="mutants per module (0: all)")
    ap.add_argument("--seed", type=int, default=18, help="seed of the sample")
    ap.add_argument("--children", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--budget-min", type=float, default=24 * 60.0, help="wall-time budget (minutes)")
    ap.add_argument("--module-budget-min", type=float, default=math.inf,
                    help="wall-time budget per module (minutes; --engine modules)")
    ap.add_argument("--module", action="append", help="restrict to these module paths")
    ap.add_argument("--report", action="store_true", help="only report what was run")
    ap.add_argument("--retry", action="store_true",
                    help="run the surviving mutants again too (after new tests were written)")
    ap.add_argument("--engine", choices=("modules", "mutmut"), default="modules",
                    help="modules: each module against its own tests (default); mutmut: `mutmut run`")
    ap.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    modules = core_modules()
    if a.module:        # in the order given (the priority of the run)
        modules = [m for m in a.module if m in modules]
    if not (ROOT / "mutants").exists() or not a.report:
        generate(a.children)
    res = results(modules)
    only = None
    if a.sample:
        # one generator per module: a module's sample depends only on the seed and its path
        only = {m: sorted(random.Random(f"{a.seed}:{m}").sample(sorted(c), min(a.sample, len(c))))
                for m, c in res.items()}
    if not a.report:
        # survivors to re-run first (after new tests), then what was never checked
        todo = ([n for m in modules for n in (only[m] if only else res[m])
                 if a.retry and res[m].get(n) is not None and res[m][n] not in KILLED]
                + [n for m in modules for n in (only[m] if only else res[m]) if res[m].get(n) is None])
        t0 = time.monotonic()
        if a.engine == "mutmut":
            run(todo, a.children, a.budget_min * 60.0)
        else:
            by_mod = {m: [n for n in todo if n in res[m]] for m in modules}
            run_modules(by_mod, a.budget_min * 60.0, log=lambda msg: print(msg, file=sys.stderr),
                        module_budget_s=a.module_budget_min * 60.0)
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
          f"{'equiv':>5} {'score':>6}  95 % interval")
    for r in rows:
        s = f"{100 * r['score']:.0f}%" if r["score"] is not None else "-"
        ci = f"{100 * r['interval95'][0]:.0f}-{100 * r['interval95'][1]:.0f}%" if r["interval95"] else ""
        print(f"{r['module']:<34} {r['mutants']:>7} {r['tried']:>5} {r.get('killed', 0):>6} "
              f"{r.get('survived', 0):>5} {r.get('no tests', 0):>6} {r.get('equivalent', 0):>5} {s:>6}  {ci}")
        if a.survivors:
            for n in r["surviving"]:
                print(f"    surviving: {n} ({STATUS.get(res[r['module']][n], 'survived')})")
    tot = Counter()
    for r in rows:
        tot.update({k: r.get(k, 0) for k in ("killed", "checked")})
    if tot["checked"]:
        print(f"{'all':<34} {'':>7} {'':>5} {tot['killed']:>6} {'':>5} {'':>6} {'':>5} "
              f"{100 * tot['killed'] / tot['checked']:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
