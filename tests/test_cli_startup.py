"""Issue 17, deliverable 6: the CLI's start-up stays cheap.

Registering every command (what ``snnbench --help`` and every usage error pay for) must not
import the simulator, the chip driver, h5py, scipy, numba, dask or the viewer: those belong
to the commands that use them.  The suite starts the CLI as a separate process ~150 times
(``tests/test_bad_inputs.py`` alone ~70), so a heavy start-up costs minutes of CI.  The
check is on *which modules are imported*, not on a time, so it cannot flake on a loaded
machine; the measured CPU times are in docs/BENCHMARKS.md (issue 17, suite wall time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("h5py", "scipy", "numba", "llvmlite", "dask", "distributed", "pyqtgraph", "PySide6",
         "sim_backend.server", "sim_backend.firmware", "sim_backend.chip", "drivers.pechip",
         "drivers.instruments", "bench.runstore", "bench.programming", "bench.session", "bench.data",
         "importlib.metadata")
"""Modules that only the commands using them may import (each costs 10-330 ms of CPU)."""

_PROBE = """
import contextlib, io, json, sys
from bench.cli import main
err = io.StringIO()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
    try:
        code = main(sys.argv[2:])
    except SystemExit as exc:
        code = exc.code
heavy = [m for m in json.loads(sys.argv[1]) if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy, "stderr": err.getvalue()}))
"""


def _probe(*argv: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY), *argv], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


@pytest.mark.parametrize("argv,code", [
    (["--help"], 0),
    (["frobnicate"], 2),
    ([], 2),
    (["chip", "program", "--levels"], 2),
    (["sim", "frob"], 2),
    (["data", "synth", "--out", "x", "--seed", "-1"], 2),
])
def test_help_and_usage_errors_import_no_heavy_module(argv, code):
    """Kills: a command module importing the driver / h5py / the simulator at module level
    (e.g. budget.py's ``from drivers.pechip import MAX_WAIT_S``, chip_program's
    ``from bench.runstore import ...``, sim.py adding ``sim serve``'s arguments at
    registration, cli.main importing the SMU guard unconditionally)."""
    r = _probe(*argv)
    assert r["code"] == code, r
    assert r["heavy"] == [], f"{argv}: imported {r['heavy']}"


def test_sim_serve_arguments_are_there_when_serve_is_used():
    """The deferred arguments of ``sim serve`` appear in its help and are parsed (kills: the
    deferred fill never run, so ``--port`` would be an unrecognised argument)."""
    p = subprocess.run([sys.executable, "-m", "bench", "sim", "serve", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "--port" in p.stdout and "--fidelity" in p.stdout, p.stderr
    from bench.cli import build_parser

    args = build_parser().parse_args(["sim", "serve", "--port", "0", "--fidelity", "ideal"])
    assert args.port == 0 and args.fidelity == "ideal"


def test_constants_copied_for_the_parsers_equal_their_sources():
    """bench.commands._args keeps copies so that registering commands stays cheap; a change
    at the source must be followed here."""
    from bench import programming
    from bench.commands import _args
    from drivers import pechip

    assert _args.MAX_WAIT_S == pechip.MAX_WAIT_S
    assert _args.PROGRAM_MODES == programming.MODES
