"""HDF5 run files: one file per run, append-only, flushed after every completed unit.

Layout conventions (DESIGN.md section 5):
- root attributes: provenance (``snnbench_version``, ``git_revision``, ``kind``,
  ``utc_start``, ``utc_end``, ``station`` as JSON, ``chip_info`` as JSON, ``seeds`` as JSON,
  ``complete`` = False until the run closes normally); a resumed run (``mode="a"``) keeps
  them as they were and records each resuming session's provenance in ``resumes/NNN``;
- datasets carry a ``units`` attribute;
- extendable datasets grow along axis 0 in batches (``append``), and ``flush`` after each
  completed unit of work means a killed process loses at most the unit in flight;
- commit log, for readers that follow a live run (``snnbench view``, decision 0008): every
  ``flush`` appends one JSON line to ``/_commits`` (``{"t": seconds since open, "rows":
  {dataset: rows}}`` for the datasets whose row count changed since the previous commit), then
  sets the root attribute ``committed`` (number of commit lines) LAST.  A reader takes
  ``committed``, replays the first ``committed`` lines, and reads each dataset only up to the
  rows recorded there; rows written after the last commit are ignored.  ``writer_pid`` and
  ``writer_host`` name the writing process, so a reader can tell a live run from one whose
  writer died (``complete`` still False).

Files are written with HDF5's default (earliest) format on purpose: the newer format sets
"file open for write" flags that make a file from a killed process unreadable without
``h5clear``.  Readers open files read-only and without locking (:func:`open_run`), so a
live dashboard can follow a run that is still being written.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from bench import __version__
from bench.errors import RunPathError, RunStoreError


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def git_revision() -> str:
    """The source tree's git revision, or "" when not in a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def check_writable(path: str | Path) -> Path:
    """Fail early (before any work, creating nothing) if a file cannot be created at ``path``.

    The nearest existing ancestor of ``path`` must be a writable directory; missing
    directories in between are created only when the file is really written.
    """
    p = Path(path)
    if p.exists() and p.is_dir():
        raise RunPathError(f"{p}: is a directory, not a file path")
    if p.exists() and not os.access(p, os.W_OK):
        raise RunPathError(f"{p}: exists and is not writable")
    anc = p.parent if str(p.parent) else Path(".")
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise RunPathError(f"{p}: {anc} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK) or str(anc.resolve()).startswith(("/proc", "/sys")):
        raise RunPathError(f"{p}: directory {anc} is not writable")
    return p


def _make_parent(p: Path) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunPathError(f"{p}: cannot create directory {p.parent} ({exc.strerror})") from None


def _attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    if value is None:
        return ""
    return value


COMMITS = "_commits"
"""Name of the commit-log dataset (one JSON line per flush; see the module docstring)."""


class RunFile:
    """A run file being written.  Use as a context manager; see module docstring."""

    def __init__(self, path: str | Path, kind: str, *, mode: str = "w",
                 station: Mapping[str, Any] | None = None, seeds: Mapping[str, Any] | None = None,
                 **attrs: Any) -> None:
        self.path = check_writable(path)
        _make_parent(self.path)
        try:
            self.h5 = h5py.File(self.path, mode)
        except OSError as exc:
            raise RunStoreError(f"{self.path}: cannot open run file ({exc})") from None
        session: dict[str, Any] = dict(attrs)
        if station is not None:
            session["station"] = dict(station)
        if seeds is not None:
            session["seeds"] = dict(seeds)
        try:
            self._start(mode, kind, session)
        except BaseException:
            self.h5.close()
            raise

    def _start(self, mode: str, kind: str, session: dict[str, Any]) -> None:
        if mode == "w" or "kind" not in self.h5.attrs:
            self.h5.attrs.update({
                "kind": kind,
                "snnbench_version": __version__,
                "git_revision": git_revision(),
                "utc_start": utc_now(),
                "utc_end": "",
                "complete": False,
            })
            self.set_attrs("/", **session)
        else:
            self._resume(kind, session)
        # Live state for readers (not provenance): who writes, and the commit log.
        self.h5.attrs["writer_pid"] = os.getpid()
        self.h5.attrs["writer_host"] = socket.gethostname()
        self._t0 = time.monotonic()
        self._rows: dict[str, int] = {}
        """Rows of every dataset as of the last commit (what readers may read)."""
        self._touched: set[str] = set()
        """Datasets written since the last commit (their row counts are checked at the next)."""
        self._committed = 0
        if COMMITS in self.h5:   # resumed: later commits continue the log of earlier sessions
            log = self.h5[COMMITS]
            n = int(self.h5.attrs.get("committed", log.shape[0]))
            self._committed = n
            for line in log[:n]:
                rec = json.loads(line)
                self._rows.update(rec.get("rows", {}))
                self._t0 = min(self._t0, time.monotonic() - float(rec.get("t", 0.0)))
            self._touched.update(self._rows)
            if log.shape[0] != n:            # lines written after the last commit: drop them
                log.resize(n, axis=0)
        else:
            self.h5.create_dataset(COMMITS, shape=(0,), maxshape=(None,), chunks=(64,),
                                   dtype=h5py.string_dtype())
        self._log = self.h5[COMMITS]
        self.flush()

    def _resume(self, kind: str, session: dict[str, Any]) -> None:
        """Reopen a run: the original provenance stays as it was; this session's provenance
        goes to ``resumes/NNN`` (attributes the file does not have yet are added at the root)."""
        root = self.h5.attrs
        if root.get("kind") != kind:
            raise RunStoreError(f"{self.path}: is a {root.get('kind')!r} run, not {kind!r}")
        now = utc_now()
        resumes = self.h5.require_group("resumes")
        self.set_attrs(f"resumes/{len(resumes):03d}", **{**session, "utc_start": now,
                       "snnbench_version": __version__, "git_revision": git_revision()})
        self.set_attrs("/", **{k: v for k, v in session.items() if k not in root})
        root["complete"] = False
        root["resumed_utc"] = now

    # --- writing -----------------------------------------------------------------------
    def set_attrs(self, group: str = "/", **attrs: Any) -> None:
        g = self.h5.require_group(group)
        for k, v in attrs.items():
            g.attrs[k] = _attr(v)

    def write(self, name: str, data: Any, units: str = "", **attrs: Any) -> h5py.Dataset:
        """Write (or replace) a fixed-size dataset."""
        if name in self.h5:
            del self.h5[name]
        ds = self.h5.create_dataset(name, data=np.asarray(data))
        self._touched.add(ds.name.lstrip("/"))
        ds.attrs["units"] = units
        for k, v in attrs.items():
            ds.attrs[k] = _attr(v)
        return ds

    def append(self, name: str, batch: Any, units: str = "", **attrs: Any) -> h5py.Dataset:
        """Append a batch of rows (axis 0) to an extendable, chunked dataset."""
        batch = np.asarray(batch)
        if name not in self.h5:
            chunk_rows = max(1, min(4096, (1 << 16) // max(1, batch[0:1].nbytes)))
            ds = self.h5.create_dataset(name, shape=(0,) + batch.shape[1:], dtype=batch.dtype,
                                        maxshape=(None,) + batch.shape[1:],
                                        chunks=(chunk_rows,) + batch.shape[1:])
            ds.attrs["units"] = units
            for k, v in attrs.items():
                ds.attrs[k] = _attr(v)
        ds = self.h5[name]
        self._touched.add(ds.name.lstrip("/"))
        if ds.shape[1:] != batch.shape[1:]:
            raise RunStoreError(f"{self.path}: cannot append rows of shape {batch.shape[1:]} "
                                f"to {name} with rows of shape {ds.shape[1:]}")
        n = ds.shape[0]
        ds.resize(n + batch.shape[0], axis=0)
        ds[n:] = batch
        return ds

    def flush(self) -> None:
        """Make everything written so far durable and committed (call after each completed unit).

        Appends one commit line (row counts that changed since the last commit) and writes the
        ``committed`` counter last; see the module docstring."""
        changed: dict[str, int] = {}
        for name in self._touched:
            obj = self.h5.get(name)
            rows = (obj.shape[0] if obj.shape else 1) if isinstance(obj, h5py.Dataset) else 0
            if self._rows.get(name) != rows:
                changed[name] = rows
        self._touched = set()
        self._rows.update(changed)
        n = self._committed
        self._log.resize(n + 1, axis=0)
        self._log[n] = json.dumps({"t": round(time.monotonic() - self._t0, 6), "rows": changed})
        self.h5.attrs["committed"] = self._committed = n + 1
        self.h5.flush()

    def touch(self, name: str) -> None:
        """Note a dataset changed through ``self.h5`` directly (e.g. resized), so the next
        commit records its row count."""
        self._touched.add(name.strip("/"))

    def close(self, complete: bool = True) -> None:
        if not self.h5.id.valid:
            return
        self.h5.attrs["utc_end"] = utc_now()
        self.h5.attrs["complete"] = bool(complete)
        self.flush()
        self.h5.close()

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if et is not None and self.h5.id.valid:
            self.h5.attrs["error"] = f"{et.__name__}: {ev}"
        self.close(complete=et is None)


def open_run(path: str | Path) -> h5py.File:
    """Open a run file read-only (SWMR when another process may still be writing)."""
    p = Path(path)
    if not p.exists():
        raise RunPathError(f"{p}: no such run file")
    try:
        return h5py.File(p, "r", locking=False)
    except OSError as exc:
        raise RunPathError(f"{p}: not a readable HDF5 run file ({exc})") from None
