"""Which processes a test run started: every process the tests start inherits a marker in
its environment, and ``/proc/<pid>/environ`` (the environment a process was started with)
finds them again, however deep in the tree and even after they were orphaned."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

MARK_VAR = "SNNBENCH_TEST_MARK"


def marked(value: str, var: str = MARK_VAR) -> dict[int, str]:
    """pid -> command line of the live processes (other than this one) started with ``var=value``."""
    needle = f"{var}={value}".encode()
    found: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            if needle not in env:
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:           # gone meanwhile, or not ours to read
            continue
        if cmd:                   # a zombie has no command line: it is gone, only not reaped
            found[int(d.name)] = cmd
    return found


def wait_gone(value: str, timeout_s: float, var: str = MARK_VAR) -> dict[int, str]:
    """Wait up to ``timeout_s`` for the marked processes to end; returns those still alive."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = marked(value, var)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
