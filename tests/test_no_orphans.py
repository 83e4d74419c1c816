"""Issue 16, item 3: a simulator started by the bench dies with its parent, SIGKILL included."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _simulators_of(parent: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or _ppid(int(d.name)) != parent:
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sim_backend" in cmd and b"serve" in cmd:
            out.append(int(d.name))
    return out


def _wait_gone(pid: int, limit_s: float) -> float | None:
    """Seconds until ``pid`` is gone, or None if it is still alive after ``limit_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if not _alive(pid):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def _kill_hard(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# Moments after the simulator appears: during its start-up (before it has printed what it
# serves), while the chip is programmed, during inference, during the power measurement.
MOMENTS_S = [0.0, 0.15, 0.6, 1.2, 2.0]


@pytest.mark.parametrize("delay_s", MOMENTS_S)
def test_demo_sigkill_leaves_no_simulator(tmp_path, delay_s):
    env = dict(os.environ, SNNBENCH_CACHE=os.environ.get("SNNBENCH_CACHE", str(Path.home() / ".cache/snnbench")))
    demo = subprocess.Popen([sys.executable, "-m", "bench", "demo", "--json", "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    sims: list[int] = []
    try:
        t0 = time.monotonic()
        while not sims and time.monotonic() - t0 < 60 and demo.poll() is None:
            sims = _simulators_of(demo.pid)
            time.sleep(0.005)
        assert sims, "the demo never started a simulator"
        time.sleep(delay_s)
        assert all(_alive(p) for p in sims), "simulator ended before the kill: the moment tests nothing"
        assert demo.poll() is None, "demo finished before the kill"
        demo.send_signal(signal.SIGKILL)
        demo.wait()
        for pid in sims:
            took = _wait_gone(pid, 2.0)
            assert took is not None, f"simulator {pid} outlived the killed demo by > 2 s"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in sims:
            _kill_hard(pid)


def test_simbench_closed_normally_stops_child():
    from bench.simbench import SimBench

    sb = SimBench(seed=1, instruments=False)
    pid = sb.proc.pid
    sb.close()
    assert _wait_gone(pid, 2.0) is not None


def test_lifeline_eof_alone_ends_server():
    """The portable mechanism on its own (no parent-death signal): stdin EOF ends ``sim serve``."""
    p = subprocess.Popen([sys.executable, "-m", "sim_backend", "serve", "--no-instruments", "--lifeline"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().startswith("{")
        time.sleep(0.3)
        assert p.poll() is None, "server exited while its lifeline was intact"
        p.stdin.close()
        p.wait(timeout=2.0)
        assert p.returncode == 0  # the orderly exit path, not the hard one
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()


def test_parent_death_signal_alone_ends_server(tmp_path):
    """Linux parent-death signal on its own: a stdin the child never sees closed (an inherited
    descriptor kept open by a grandchild) still does not keep the simulator alive."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "r = int(sys.argv[1])\n"
        "p = subprocess.Popen([sys.executable, '-m', 'sim_backend', 'serve', '--no-instruments', '--lifeline',\n"
        "                      '--parent-pid', str(os.getpid())], stdin=r, stdout=subprocess.PIPE, text=True)\n"
        "print(p.pid, flush=True)\n"
        "p.stdout.readline()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")
    # The child's stdin is a pipe whose write end this (test) process holds: the lifeline
    # stays intact when the parent dies, so only the death signal can act.
    r, w = os.pipe()
    parent = subprocess.Popen([sys.executable, str(script), str(r)], stdout=subprocess.PIPE, text=True,
                              pass_fds=(r,))
    child = None
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "ready"
        parent.kill()
        parent.wait()
        assert _wait_gone(child, 2.0) is not None, "the parent-death signal did not end the simulator"
    finally:
        os.close(r)
        os.close(w)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
        if child:
            _kill_hard(child)


_HANGS_IN_SHUTDOWN = r"""
import threading, time
from sim_backend import lifeline
stop = threading.Event()
lifeline.on_lost(stop.set)          # the orderly stop: main returns ...
lifeline.arm(grace_s=0.3)

class _SlowFinaliser:               # ... and hangs in interpreter shutdown, after the point
    def __del__(self):              # where Python's daemon threads can no longer run
        time.sleep(30)

keep = _SlowFinaliser()
print("ready", flush=True)
stop.wait(20)
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="POSIX interval timers only")
def test_lost_parent_ends_a_process_that_hangs_in_interpreter_shutdown():
    """Decision 0014: once the parent is gone, the process ends within the grace period even
    when its orderly exit hangs where the os._exit fallback thread cannot run any more
    (module teardown); the kernel's interval timer (SIGALRM, default action) ends it."""
    child = subprocess.Popen([sys.executable, "-c", _HANGS_IN_SHUTDOWN], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             cwd=str(Path(__file__).resolve().parents[1]))
    try:
        assert child.stdout.readline().strip() == b"ready"
        t0 = time.monotonic()
        child.stdin.close()          # what the OS does when the parent dies
        child.wait(timeout=10)
        assert time.monotonic() - t0 < 5.0
        assert child.returncode == -signal.SIGALRM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
