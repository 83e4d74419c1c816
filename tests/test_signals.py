"""Signals: SIGTERM / SIGINT end a command cleanly (exit 143 / 130, one line), with its run
file readable and its simulator stopped, and never leave a process behind.

Deterministic: the signal is sent at a point the test observes (the run file holds a
completed unit, the simulator answered its first line), never after a fixed sleep, and every
wait has a deadline; the fixture kills whatever a failing test left running.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import h5py
import numpy as np
import pytest

from bench.simbench import SimBench
from tests import h5peek
from tests.procwatch import MARK_VAR, kill, marked, wait_gone


@pytest.fixture
def spawn():
    """Start CLI processes in their own session, each with its own marker; at teardown kill
    every process carrying a marker (the CLI and anything it started) and wait for them."""
    marks = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        mark = uuid.uuid4().hex
        marks.append(mark)
        p = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                             env=dict(os.environ, **{MARK_VAR: mark}), start_new_session=True)
        procs.append(p)
        return p, mark

    procs: list[subprocess.Popen] = []
    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)
    for mark in marks:
        kill(marked(mark))
        assert not wait_gone(mark, 10.0)


def _units(path) -> int:
    return h5peek.rows(path, "maps/g_s")


def _wait_for(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)


def test_sigterm_mid_command_exits_143_keeps_the_run_file_and_stops_the_simulator(tmp_path, spawn):
    out = tmp_path / "r.h5"
    p, mark = spawn("chip", "read", "--repeats", "100000", "--out", str(out))
    _wait_for(lambda: _units(out) >= 2 or p.poll() is not None, 120, "two completed read units")
    assert p.poll() is None, p.communicate()[1]
    sims = [pid for pid, cmd in marked(mark).items() if "sim_backend" in cmd]
    assert len(sims) == 1                                  # the simulated bench's server
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143
    assert err.strip().splitlines()[-1] == "snnbench: terminated"
    assert not wait_gone(mark, 15.0), "simulator left running"
    with h5py.File(out, "r") as f:                         # readable: every unit was flushed
        assert not f.attrs["complete"]
        assert f["maps/g_s"].shape[0] >= 2
        assert np.isfinite(f["maps/g_s"][0]).all()


def test_sigint_stops_sim_serve_cleanly(spawn):
    p, mark = spawn("sim", "serve", "--no-instruments")
    line = json.loads(p.stdout.readline())
    assert line["chip"].startswith("socket://127.0.0.1:")
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 0
    assert not wait_gone(mark, 10.0)


def test_interrupt_while_the_simulator_starts_stops_it(monkeypatch, tmp_path):
    """An interrupt during SimBench start-up (before its first line) must not orphan the
    simulator: a stand-in that never answers, interrupted by a timer."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK_VAR, mark)
    silent = tmp_path / "python"
    silent.write_text("#!/bin/sh\nexec sleep 300\n")
    silent.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(silent))

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            SimBench(startup_timeout_s=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    left = wait_gone(mark, 10.0)
    kill(left)
    assert not left, "simulator start-up left its process running"
