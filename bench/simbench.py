"""The built-in simulated bench: a ``snnbench sim serve`` subprocess on 127.0.0.1.

The bench talks to it exactly as to the lab: the chip through pyserial's ``socket://``
handler, the SMUs through pyvisa with pyvisa-py.  It is a separate process (its own core,
its own GIL), started on demand and stopped on close.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from types import TracebackType

from bench.errors import BenchError


class SimBenchError(BenchError):
    exit_code = 1


class SimBenchUsageError(SimBenchError):
    """The simulator refused its arguments (e.g. its die file is in use): exit code 2."""

    exit_code = 2


def lifeline_arguments() -> list[str]:
    """``sim serve`` options that make the child die with this process (decision 0014).

    The Linux parent-death signal follows the thread that started the child, so it is asked
    for only from the main thread; the stdin lifeline covers every other case and every OS.
    """
    args = ["--lifeline"]
    if threading.current_thread() is threading.main_thread():
        args += ["--parent-pid", str(os.getpid())]
    return args


class SimBench:
    """Start the simulator process; ``.chip_url`` and ``.smu`` name what it serves."""

    def __init__(self, seed: int = 1, run_seed: int = 0, fidelity: str = "typical",
                 instruments: bool = True, extra: list[str] | None = None,
                 startup_timeout_s: float = 30.0, die: str | os.PathLike | None = None,
                 freeze: bool = False) -> None:
        """``die``: the die file the simulated chip lives in (made from ``seed`` / ``fidelity`` if
        missing); None = a fresh die, not persisted.  ``freeze``: no wall time passes on the die."""
        cmd = [sys.executable, "-m", "sim_backend", "serve", "--port", "0", "--seed", str(seed),
               "--run-seed", str(run_seed), "--fidelity", fidelity]
        if not instruments:
            cmd.append("--no-instruments")
        if die is not None:
            cmd += ["--die", os.fspath(die)] + (["--freeze"] if freeze else [])
        cmd += lifeline_arguments()
        cmd += extra or []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # stdin is the lifeline: a pipe this process never writes to; when it dies the child
        # reads end-of-file and exits (sim_backend/lifeline.py, decision record 0014).
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.PIPE, env=env, text=True)
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], startup_timeout_s)
            line = self.proc.stdout.readline() if ready else ""
        except BaseException:  # interrupted (SIGINT, SIGTERM) while starting: stop it, then unwind
            self.close()
            raise
        if not line:
            err, code = "", None
            if ready:                      # stdout closed: the simulator is exiting
                try:
                    code = self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    code = None
            if code is not None:
                err = (self.proc.stderr.read().strip().splitlines()[-1:] or [""])[0]
            self.close()
            if code == 2:
                raise SimBenchUsageError(err.removeprefix("sim serve: error: ") or "simulated bench refused to start")
            if code is not None:
                raise SimBenchError(f"simulated bench exited with code {code} {err}".strip())
            raise SimBenchError(f"simulated bench did not start within {startup_timeout_s:g} s")
        self.served = json.loads(line)
        self.chip_url: str = self.served["chip"]
        self.smu: list[dict] = list(self.served.get("smu", []))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()  # cuts the lifeline: the child starts its orderly exit
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def __enter__(self) -> "SimBench":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
