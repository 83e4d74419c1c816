"""Running the viewer: checks before Qt starts, the window's event loop, offscreen screenshots.

Everything that can be wrong with the command line is checked before a QApplication
exists (file kind, display, screenshot path), so bad input is one line and exit 2.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import DataFormatError, RunPathError, UsageError
from bench.runstore import check_writable
from bench.view.model import Transient, check_file

RUN_KINDS = ("chip_program", "chip_read", "infer", "power", "demo", "campaign")


@dataclass
class ViewOptions:
    path: Path
    wait: bool = False
    wait_timeout_s: float = 0.0
    """0 = wait for ever (the window shows that it is waiting)."""
    replay: bool = False
    speed: float = 1.0
    at_commit: int | None = None
    """Show the file as it was after this commit (1-based) instead of as it is now."""
    screenshot: Path | None = None
    size: tuple[int, int] = (1500, 950)
    interval_s: float = 0.5
    until_done: bool = False
    trace: Path | None = None
    axis: str | None = None
    column: str | None = None
    debug: bool = False
    nice: int = 10
    """Added to the viewer's scheduling niceness (an observer yields to the measurement)."""


def display_available() -> bool:
    """A screen to open a window on: X11/Wayland, or a Qt platform chosen explicitly."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _check_kind(path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            kind = str(f.attrs.get("kind", ""))
    except OSError:   # caught mid-flush by a live writer: the window retries on its next tick
        return
    if kind not in RUN_KINDS:
        raise DataFormatError(f"{path}: HDF5 file of kind {kind!r}, not a run or campaign file "
                              f"(one of {', '.join(RUN_KINDS)})")


def check_input(opts: ViewOptions, grace_s: float = 2.0) -> bool:
    """Validate the options before any window exists.  Returns True when the file is readable
    now, False when it is to be waited for (``--wait``)."""
    if opts.speed <= 0:
        raise UsageError(f"--speed must be > 0, got {opts.speed:g}")
    if opts.replay and opts.wait:
        raise UsageError("--replay plays a finished file; it cannot --wait for one")
    if opts.at_commit is not None and (opts.replay or opts.at_commit < 1):
        raise UsageError(f"--at-commit must be >= 1 and cannot be combined with --replay, got {opts.at_commit}")
    if opts.screenshot is not None:
        if opts.screenshot.suffix.lower() != ".png":
            raise UsageError(f"--screenshot {opts.screenshot}: must name a .png file")
        try:
            check_writable(opts.screenshot)
        except RunPathError as exc:
            raise UsageError(f"--screenshot {exc}") from None
    elif not display_available():
        raise UsageError("no display available (DISPLAY and WAYLAND_DISPLAY unset); use --screenshot PNG "
                         "to render offscreen, or set QT_QPA_PLATFORM")
    if not opts.path.exists():
        if opts.wait:
            return False
        raise RunPathError(f"{opts.path}: no such run or campaign file (use --wait to wait for it)")
    # a file written in the last moments may be a run file being created: give it a moment
    young = time.time() - opts.path.stat().st_mtime < grace_s
    deadline = time.monotonic() + (grace_s if young else 0.0)
    while True:
        try:
            check_file(opts.path)
            break
        except Transient as exc:     # being created right now, or not a run file at all
            if opts.wait:
                return False
            if time.monotonic() > deadline:
                raise DataFormatError(str(exc).split(" (")[0] if "kind" in str(exc) else
                                      f"{opts.path}: not a readable run or campaign file ({exc})") from None
            time.sleep(0.1)
    _check_kind(opts.path)
    return True


def run_viewer(opts: ViewOptions) -> dict[str, Any]:
    """Open the window (or render one screenshot) and return a summary for ``--json``."""
    ready = check_input(opts)
    if opts.screenshot is not None and not display_available():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    # The viewer holds nothing that needs cleaning up (the file is closed between reads):
    # Ctrl-C and SIGTERM end it at once, whatever Qt is doing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if opts.screenshot is None and opts.nice:
        # An observer: when the machine is busy the measurement goes first (decision 0008).
        try:
            os.nice(opts.nice)
        except OSError:
            pass
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":   # the offscreen plugin's chatter
        os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false;default.warning=false")
    import pyqtgraph as pg
    from pyqtgraph.Qt import QtWidgets

    from bench.view.window import Source, ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["snnbench view"])
    pg.setConfigOptions(antialias=False, background="w", foreground="k")
    win = ViewerWindow(Source(opts.path, replay=opts.replay, speed=opts.speed, at_commit=opts.at_commit), interval_s=opts.interval_s,
                       until_done=opts.until_done and opts.screenshot is None, trace=opts.trace,
                       choose=(opts.axis, opts.column), debug=opts.debug)
    win.resize(*opts.size)
    result: dict[str, Any]
    try:
        if opts.screenshot is not None:
            result = _screenshot(app, win, opts, ready)
        else:
            win.show()
            win.start()
            if not win.finished_reason:
                app.exec()
            result = win.summary()
            if opts.until_done and not win.finished_reason and win.snapshot is not None:
                win.finished_reason = win.snapshot.state
    finally:
        win.close()
        win.deleteLater()
        app.sendPostedEvents(None, 0)
        app.processEvents()
    return result


def _screenshot(app, win, opts: ViewOptions, ready: bool) -> dict[str, Any]:
    """Render once offscreen (after waiting for the file, and for the end with --until-done)."""
    deadline = None if not opts.wait_timeout_s else time.monotonic() + opts.wait_timeout_s
    win.show()
    while True:
        win.tick()
        done = win.snapshot is not None and (not opts.until_done or win.snapshot.state != "running")
        if done:
            break
        if win.snapshot is None and not opts.wait:
            raise DataFormatError(f"{opts.path}: cannot read ({win.last_error})")
        if deadline is not None and time.monotonic() > deadline:
            raise RunPathError(f"{opts.path}: nothing to show after {opts.wait_timeout_s:g} s of waiting")
        app.processEvents()
        time.sleep(max(0.05, opts.interval_s))
    for _ in range(5):
        app.processEvents()
    img = win.grab()
    if not img.save(str(opts.screenshot)):
        raise RunPathError(f"--screenshot {opts.screenshot}: cannot write the image")
    out = win.summary()
    out.update(screenshot=str(opts.screenshot), size=[img.width(), img.height()], regions=win.regions())
    return out
