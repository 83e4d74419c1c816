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

import ctypes
import ctypes.util
import datetime as _dt
import errno
import json
import os
import socket
import subprocess
import sys
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


NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
"""Out of space: disk full, file-size limit (RLIMIT_FSIZE), quota."""

HEADROOM_BYTES = 1 << 20
"""Space reserved beyond each write for HDF5's metadata (B-tree nodes, heaps, attributes)."""


def _space_problem(path: Path, end: int, need: int) -> str | None:
    """Why ``need`` bytes cannot be written from offset ``end`` of ``path`` (None: they can)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and end + need > soft:
            return f"file-size limit {soft} bytes (RLIMIT_FSIZE)"
    except (ImportError, OSError, ValueError):
        pass
    if _fallocate is None:
        return None
    fd = os.open(path, os.O_WRONLY)
    try:
        if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, end, need) != 0:
            err = ctypes.get_errno()
            if err in NO_SPACE_ERRNOS:
                return os.strerror(err)
    finally:
        os.close(fd)
    return None  # EOPNOTSUPP etc.: this file system cannot reserve; the write will tell


_FALLOC_FL_KEEP_SIZE = 1


def _load_fallocate():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate()


class NoSpaceError(RunStoreError):
    """The run file could not grow (disk full, file-size limit, quota).  Raised *before*
    the write that needed the space, so the file still holds every flushed unit."""


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
        self._no_space = False
        _make_parent(self.path)
        existed = self.path.exists()
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
            self.reserve()
            self._guard("the provenance", self._start, mode, kind, session)
        except BaseException:
            try:
                self.h5.close()
            except (OSError, RuntimeError):
                pass
            if not existed:  # nothing half-written: a file this call created goes again
                self.path.unlink(missing_ok=True)
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

    # --- space -------------------------------------------------------------------------
    def reserve(self, nbytes: int = 0) -> None:
        """Make sure ``nbytes`` (+ :data:`HEADROOM_BYTES`) can be written past the file's end.

        Checked before HDF5 writes anything, so a full disk, a quota or a file-size limit is
        found while the file is still consistent (as its last flush left it): NoSpaceError,
        the file resumable.  The space is allocated without changing the file's size (Linux
        ``fallocate(FALLOC_FL_KEEP_SIZE)``), so the file does not carry the reservation; the
        file-size limit (RLIMIT_FSIZE) is compared directly.  Elsewhere the write itself
        reports it (``_guard``).
        """
        if not self.h5.id.valid:
            return
        need = int(nbytes) + HEADROOM_BYTES
        end = int(self.h5.id.get_filesize())
        problem = _space_problem(self.path, end, need)
        if problem:
            self._no_space = True
            raise NoSpaceError(
                f"{self.path}: no space to write the run file ({problem}); it holds every unit "
                f"finished so far: free space, then continue it (--resume where the command has it)")

    def _guard(self, what: str, fn, *args):
        """Run one HDF5 write; a failure (e.g. space ran out inside HDF5) is a one-line error."""
        try:
            return fn(*args)
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS or "No space" in str(exc) \
                    or "too large" in str(exc):
                self._no_space = True
                raise NoSpaceError(f"{self.path}: no space to write {what} ({' '.join(str(exc).split())})") \
                    from None
            raise RunStoreError(f"{self.path}: cannot write {what} ({' '.join(str(exc).split())})") from None

    # --- writing -----------------------------------------------------------------------
    def set_attrs(self, group: str = "/", **attrs: Any) -> None:
        g = self.h5.require_group(group)
        for k, v in attrs.items():
            g.attrs[k] = _attr(v)

    def write(self, name: str, data: Any, units: str = "", **attrs: Any) -> h5py.Dataset:
        """Write (or replace) a fixed-size dataset."""
        data = np.asarray(data)
        self.reserve(data.nbytes)
        return self._guard(name, self._write, name, data, units, attrs)

    def _write(self, name: str, data: np.ndarray, units: str, attrs: dict[str, Any]) -> h5py.Dataset:
        if name in self.h5:
            del self.h5[name]
        ds = self.h5.create_dataset(name, data=data)
        self._touched.add(ds.name.lstrip("/"))
        ds.attrs["units"] = units
        for k, v in attrs.items():
            ds.attrs[k] = _attr(v)
        return ds

    def append(self, name: str, batch: Any, units: str = "", **attrs: Any) -> h5py.Dataset:
        """Append a batch of rows (axis 0) to an extendable, chunked dataset."""
        batch = np.asarray(batch)
        self.reserve(batch.nbytes)
        return self._guard(name, self._append, name, batch, units, attrs)

    def _append(self, name: str, batch: np.ndarray, units: str, attrs: dict[str, Any]) -> h5py.Dataset:
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
        self.reserve()
        self._guard("the flush", self._commit)

    def _commit(self) -> None:
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
        try:
            if not self._no_space:  # out of space: leave the file as its last flush left it
                self.h5.attrs["utc_end"] = utc_now()
                self.h5.attrs["complete"] = bool(complete)
                self.flush()
        finally:
            try:
                self.h5.close()
            except (OSError, RuntimeError):
                pass
            try:  # give back the blocks reserved past the end (truncating to the same size does)
                os.truncate(self.path, os.stat(self.path).st_size)
            except OSError:
                pass

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if et is not None and self.h5.id.valid and not self._no_space:
            try:
                self.h5.attrs["error"] = f"{et.__name__}: {ev}"
            except (OSError, RuntimeError):
                pass
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
