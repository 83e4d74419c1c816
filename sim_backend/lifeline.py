"""Die with the parent: how a simulator started by the bench never outlives it.

Two independent mechanisms, armed by ``sim serve --lifeline`` (decision record 0014):

1. **Lifeline pipe** (every OS, Windows included): the parent starts the child with
   ``stdin`` connected to a pipe it never writes to.  When the parent exits — normally, by
   an exception, or killed with SIGKILL — the operating system closes its end of the pipe,
   and the child's blocking read of stdin returns end-of-file.  A daemon thread waiting on
   that read then calls ``on_lost``.
2. **Parent-death signal** (Linux): ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` through ctypes
   asks the kernel to send SIGTERM when the parent dies.  The kernel ties it to the
   *thread* that forked, so the parent only asks for it (``--parent-pid``) when it starts
   the child from its main thread.  A parent that died before the call is caught by
   comparing ``os.getppid()`` with the pid the parent passed.

Armed from ``python -m sim_backend`` before the simulator's imports; until the server has
started, a lost parent ends the process at once; afterwards the server's stop event is set
(an orderly exit), and if that has not ended the process within ``grace_s`` (a server thread
stuck in a long request) it exits hard with ``os._exit``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
"""``prctl`` option number (linux/prctl.h)."""


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the Linux kernel to send ``sig`` when the parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


_handler: Callable[[], None] = lambda: os._exit(0)
"""What to do when the parent is gone: exit at once until the server installs its orderly stop."""
_armed = False


def on_lost(handler: Callable[[], None]) -> None:
    """Call ``handler`` (e.g. set the server's stop event) when the parent is gone."""
    global _handler
    _handler = handler


def _watch_stdin(grace_s: float) -> None:
    # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered
    # reader would hold its lock at interpreter shutdown.
    try:
        while os.read(0, 4096):
            pass  # the parent never writes; anything it does write is ignored
    except OSError:
        pass
    _lost(grace_s)


def _lost(grace_s: float) -> None:
    _arm_kernel_deadline(grace_s)
    try:
        _handler()
    finally:
        time.sleep(grace_s)
        os._exit(1)  # the handler did not end the process in time


def _arm_kernel_deadline(grace_s: float) -> None:
    """Where the OS has interval timers (POSIX), let the kernel end the process ``grace_s`` s
    from now with SIGALRM's default action (terminate).  The sleeping fallback in
    :func:`_lost` is a Python daemon thread: once the main thread is in interpreter shutdown
    (an orderly stop that hangs in an exit handler, or a long compile holding the GIL), that
    thread never runs again, and the process would outlive its parent.  The timer cannot be
    stopped by anything the process does, short of exiting first."""
    if not hasattr(signal, "setitimer"):
        return
    try:
        if signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None):
            signal.setitimer(signal.ITIMER_REAL, max(grace_s, 0.01))
    except (OSError, ValueError):
        pass


def arm(parent_pid: int | None = None, grace_s: float = 1.0) -> None:
    """Arm both mechanisms (once; later calls do nothing): once the parent is gone, call the
    :func:`on_lost` handler, then exit after ``grace_s`` s if the process is still there.

    ``parent_pid``: the pid the parent passed; given, the Linux parent-death signal is set too
    (its SIGTERM handler is the process's own) and a parent already gone is detected at once.
    """
    global _armed
    if _armed:
        return
    _armed = True
    if parent_pid is not None:
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            threading.Thread(target=_lost, args=(grace_s,), daemon=True).start()
            return
    threading.Thread(target=_watch_stdin, args=(grace_s,), name="lifeline", daemon=True).start()


def arm_from_argv(argv: list[str]) -> None:
    """Arm early, from ``sim serve`` options (``--lifeline``, ``--parent-pid N``), before the
    simulator's heavy imports: a parent that dies during start-up is noticed at once."""
    if "--lifeline" not in argv:
        return
    pid = None
    if "--parent-pid" in argv:
        i = argv.index("--parent-pid")
        if i + 1 < len(argv) and argv[i + 1].isdigit():
            pid = int(argv[i + 1])
    arm(pid)
