"""``--live`` on the measurement commands: the live view in a SEPARATE process.

The measurement process only starts ``snnbench view RUN.h5 --wait`` (its own session, no
pipes) and carries on; it never waits for, talks to or depends on the viewer.  Closing or
killing the viewer changes nothing in the run (decision 0008).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.errors import UsageError

STARTED: list[subprocess.Popen] = []
"""Viewers started by this process (tests end them)."""


def add_live_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--live", action="store_true",
                   help="follow this run in the live view (a separate process; closing it changes nothing)")


def follow(args: argparse.Namespace | bool, path: str | Path) -> subprocess.Popen | None:
    """Start the viewer on ``path`` when ``--live`` was given (``args.live`` or a bool).

    Call after the command's input checks and before the run file is written: the viewer
    waits for the file.  No display is a usage error (exit 2) raised here, before any work."""
    if not (args if isinstance(args, bool) else getattr(args, "live", False)):
        return None
    from bench.view.app import display_available

    if not display_available():
        raise UsageError("--live: no display available (DISPLAY and WAYLAND_DISPLAY unset); "
                         "run 'snnbench view RUN.h5 --screenshot PNG' instead")
    cmd = [sys.executable, "-m", "bench", "view", str(path), "--wait"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError as exc:  # the measurement goes on without a viewer
        print(f"snnbench: warning: --live: cannot start the viewer ({exc})", file=sys.stderr)
        return None
    STARTED.append(proc)
    return proc
