"""The live-view window: polls a run or campaign file and shows its panels.

A QTimer (0.5 s by default) calls :meth:`ViewerWindow.tick`, which reads one snapshot
(:func:`bench.view.model.read_snapshot`: open read-only without locking, read the committed
part, close) and refreshes the panels.  A read that lands in a writer's flush is retried on
the next tick; nothing the viewer does can block or change the writer (decision 0008).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pyqtgraph.Qt import QtCore, QtWidgets

from bench.view.model import ENDED, FINISHED, RUNNING, Snapshot, Transient, read_snapshot
from bench.view.panels import PANELS, Panel

STATE_STYLE = {RUNNING: "color: #1a6e1a", FINISHED: "color: #1a3e9e", ENDED: "color: #c01010; font-weight: bold"}


class Source:
    """Where snapshots come from: the file as it is now (follow) or as it was (replay).

    Following, a tick whose file is unchanged (same size and modification time) returns None
    without opening it, except every ``recheck_s`` (a writer that died changes nothing in the
    file).  Replay shows the file's commits at ``speed`` times the pace the writer committed
    them (the commit log's times, seconds since the run file was opened).
    """

    recheck_s = 2.0

    def __init__(self, path: str | Path, replay: bool = False, speed: float = 1.0,
                 at_commit: int | None = None) -> None:
        self.path = str(path)
        self.replay = replay
        self.speed = speed
        self.at_commit = at_commit
        self._stat: tuple[int, int] | None = None
        self._last_read = 0.0
        self._t0: float | None = None
        self._times: list[float] = []

    def next(self) -> Snapshot | None:
        """The snapshot to show, or None when nothing can have changed since the last one."""
        if self.at_commit is not None:
            snap = read_snapshot(self.path, upto=self.at_commit)
            if snap.detail == "replay":
                snap.detail = f"as at commit {snap.committed}"
            return snap
        if not self.replay:
            try:
                st = os.stat(self.path)
                key = (st.st_mtime_ns, st.st_size)
            except OSError:
                key = None
            now = time.monotonic()
            if key is not None and key == self._stat and now - self._last_read < self.recheck_s:
                return None
            snap = read_snapshot(self.path)
            self._stat, self._last_read = key, now
            return snap
        if self._t0 is None:
            self._times = read_snapshot(self.path).commit_times_s
            self._t0 = time.monotonic()
            first = self._times[0] if self._times else 0.0
            self._times = [t - first for t in self._times]
        elapsed = (time.monotonic() - self._t0) * self.speed
        upto = max(1, sum(1 for t in self._times if t <= elapsed))
        return read_snapshot(self.path, upto=None if upto >= len(self._times) else upto)


class ViewerWindow(QtWidgets.QMainWindow):
    def __init__(self, source: Source, *, interval_s: float = 0.5, until_done: bool = False,
                 trace: str | Path | None = None, choose: tuple[str | None, str | None] = (None, None),
                 debug: bool = False) -> None:
        super().__init__()
        self.source = source
        self.until_done = until_done
        self.debug = debug
        self.choose = choose
        self.frames = 0
        self.snapshot: Snapshot | None = None
        self.last_error = ""
        self.finished_reason = ""
        self._trace = open(trace, "a", buffering=1) if trace else None
        self._t0 = time.monotonic()
        self.setWindowTitle(f"snnbench view — {Path(source.path).name}")
        central = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(central)
        self.header = QtWidgets.QLabel(f"waiting for {source.path}")
        self.header.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.state = QtWidgets.QLabel("")
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.state)
        lay.addLayout(top)
        self.grid = QtWidgets.QGridLayout()
        lay.addLayout(self.grid, 1)
        self.setCentralWidget(central)
        self.panels: dict[str, Panel] = {}
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(0, int(interval_s * 1000)))
        self.timer.timeout.connect(self.tick)

    # --- refresh ------------------------------------------------------------------------------
    def start(self) -> None:
        self.tick()
        if not self.finished_reason:
            self.timer.start()

    def tick(self) -> None:
        t0 = time.perf_counter()
        try:
            snap = self.source.next()
        except Transient as exc:
            self.last_error = str(exc)
            if self.snapshot is None:
                self.header.setText(f"waiting for {self.source.path} ({exc})")
            return
        except Exception as exc:  # noqa: BLE001 - the viewer must not die on a bad read
            if self.debug:
                raise
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.header.setText(f"{self.source.path}: cannot read ({self.last_error})")
            return
        if snap is None:
            return
        self.show_snapshot(snap)
        self.frames += 1
        if self._trace is not None:
            # traced refreshes paint at once, so the time recorded includes the painting
            t1 = time.perf_counter()
            QtWidgets.QApplication.processEvents()
            paint_s = time.perf_counter() - t1
            self._trace.write(json.dumps({"t": round(time.monotonic() - self._t0, 4), "frame": self.frames,
                                          "state": snap.state, "committed": snap.committed,
                                          "counts": snap.counts(),
                                          "refresh_s": round(t1 - t0, 5), "paint_s": round(paint_s, 5),
                                          "cpu_s": round(time.process_time(), 4)}) + "\n")
        if self.until_done and snap.state != RUNNING:
            self.finished_reason = snap.state
            self.timer.stop()
            QtCore.QTimer.singleShot(0, self.close)

    def show_snapshot(self, snap: Snapshot) -> None:
        self.snapshot = snap
        kinds = snap.panels
        if list(self.panels) != kinds[:len(self.panels)] or len(kinds) != len(self.panels):
            self._arrange(kinds)
        for k in kinds:
            self.panels[k].update(getattr(snap, k))
        self.header.setText(f"{snap.path} — {snap.kind} run, {snap.committed} commits")
        text = snap.state + (f" ({snap.detail})" if snap.detail else "")
        self.state.setText(text)
        self.state.setStyleSheet(STATE_STYLE.get(snap.state, ""))

    def _arrange(self, kinds: list[str]) -> None:
        for k in kinds:
            if k not in self.panels:
                self.panels[k] = PANELS[k]()
                if k == "campaign":
                    self.panels[k].choose(*self.choose)
        for p in self.panels.values():
            self.grid.removeWidget(p)
        n = len(kinds)
        for i, k in enumerate(kinds):
            row, col = divmod(i, 2)
            span = 2 if (i == n - 1 and n % 2 == 1 and n > 1) else 1
            self.grid.addWidget(self.panels[k], row, col, 1, span)

    # --- output ---------------------------------------------------------------------------
    def regions(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for p in self.panels.values():
            out.update(p.regions(self))
        return out

    def summary(self) -> dict[str, Any]:
        s = self.snapshot
        return {"file": self.source.path, "kind": s.kind if s else None, "state": s.state if s else "waiting",
                "detail": s.detail if s else self.last_error, "committed": s.committed if s else 0,
                "panels": s.panels if s else [], "counts": s.counts() if s else {}, "frames": self.frames}

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        super().closeEvent(event)
