"""The campaign HDF5 file (docs/data_layout.md, "Campaign files"): one writer, ``committed`` last.

Only the campaign client writes it (:class:`CampaignStore`).  A commit writes the point's
group, appends its table row, flushes, and only then raises the root attribute
``committed`` (and flushes again): a reader — or a resume after SIGKILL — trusts rows
``[0, committed)`` and nothing else.  On resume, rows past ``committed`` and point groups
not in the committed rows (a commit cut short) are removed before anything new is written.

The file is created under a temporary name and renamed into place once its skeleton is
flushed, so a failure before the first point leaves no half-made campaign file.
Default HDF5 format, no SWMR (docs/decisions/0006); readers open read-only with
``locking=False`` (:func:`read_table`).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bench import __version__
from bench.campaign.plan import Plan
from bench.campaign.point import PointResult
from bench.errors import RunPathError, RunStoreError
from bench.runstore import git_revision, utc_now

FORMAT_VERSION = 1
RESERVED_COLUMNS = ("index", "commit_order", "status", "wall_s", "error")
STATUS_NAMES = {0: "ok", 1: "failed", 2: "skipped"}
_STR = h5py.string_dtype("utf-8")


def _axis_dtype(values) -> np.dtype:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.dtype(np.float64)
    width = max(len(str(v).encode()) for v in values)
    return np.dtype(f"S{max(1, width)}")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


_SCALAR = h5py.h5s.create(h5py.h5s.SCALAR)
_STR_TID = h5py.h5t.py_create(_STR, logical=True)


def _scalar_attrs(g: h5py.Group, attrs: dict[str, Any]) -> None:
    """New scalar attributes on a new group through the low-level API (``g.attrs[k] = v`` costs
    ~0.15 ms each, most of a commit).  Strings are variable-length UTF-8, as h5py writes them."""
    for name, value in attrs.items():
        if isinstance(value, str):
            data, tid = np.array(value, dtype=_STR), _STR_TID
        else:
            data = np.asarray(value)
            tid = h5py.h5t.py_create(data.dtype)
        h5py.h5a.create(g.id, name.encode(), tid, _SCALAR).write(data)


class CampaignStore:
    """The writer's handle on a campaign file (use as a context manager)."""

    def __init__(self, path: Path, h5: h5py.File, plan: Plan) -> None:
        self.path, self.h5, self.plan = path, h5, plan
        self.committed = int(h5.attrs["committed"])
        idx = h5["table/index"][:self.committed]
        self.done: set[int] = set(int(i) for i in idx)

    # --- creation / reopening -------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, plan: Plan, station_text: str) -> "CampaignStore":
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            h5 = h5py.File(tmp, "w")
        except OSError as exc:
            raise RunPathError(f"{path}: cannot create the campaign file ({exc.strerror or exc})") from None
        try:
            a = h5.attrs
            a["kind"] = "campaign"
            a["format_version"] = FORMAT_VERSION
            a["plan_toml"] = plan.text
            a["plan_sha256"] = plan.sha256
            a["plan_normalised"] = json.dumps(plan.normalised(), sort_keys=True)
            a["name"] = plan.name
            a["snnbench_version"] = __version__
            a["git_revision"] = git_revision()
            a["station"] = station_text
            a["created_utc"] = utc_now()
            a["ended_utc"] = ""
            a["state"] = "running"
            a["exit_status"] = ""
            a["reason"] = ""
            a["n_points"] = plan.n_points
            a["axes"] = json.dumps([{"name": x.name, "values": _jsonable(list(x.values)), "unit": x.unit,
                                     "param": x.param, "zip": x.zip} for x in plan.axes])
            a["grid_shape"] = np.asarray(plan.grid_shape, dtype=np.int64)
            a["result_columns"] = json.dumps(plan.result_columns())
            a["campaign_seed"] = plan.seed
            a["writer_pid"] = os.getpid()
            a["writer_host"] = socket.gethostname()
            t = h5.create_group("table")
            chunks = (1024,)

            def col(name: str, dtype) -> None:
                t.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=chunks)

            col("index", np.int64)
            col("commit_order", np.int64)
            col("status", np.int8)
            for ax in plan.axes:
                col(ax.name, _axis_dtype(ax.values))
                t[ax.name].attrs["units"] = ax.unit
            for c in plan.result_columns():
                col(c, np.float64)
            col("wall_s", np.float64)
            t["wall_s"].attrs["units"] = "s"
            col("error", _STR)
            h5.create_group("points")
            a["committed"] = 0
            h5.flush()
            h5.close()
            os.replace(tmp, path)
        except BaseException:
            if h5.id.valid:
                h5.close()
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, h5py.File(path, "r+"), plan)

    @classmethod
    def reopen(cls, path: str | Path, plan: Plan) -> "CampaignStore":
        """Open a campaign file to resume ``plan`` (same plan hash) and drop uncommitted rows."""
        path = Path(path)
        try:
            h5 = h5py.File(path, "r+")
        except OSError as exc:
            raise RunPathError(f"{path}: cannot open the campaign file to resume ({exc})") from None
        try:
            if h5.attrs.get("kind") != "campaign":
                raise RunPathError(f"{path}: is not a campaign file (kind {h5.attrs.get('kind')!r}); cannot resume")
            store = cls(path, h5, plan)
            store._repair()
            h5.attrs["state"] = "running"
            h5.attrs["resumed_utc"] = utc_now()
            h5.attrs["writer_pid"] = os.getpid()  # a reader can tell a live writer from a killed one
            h5.attrs["writer_host"] = socket.gethostname()
            h5.flush()
            return store
        except BaseException:
            h5.close()
            raise

    def _repair(self) -> None:
        n = self.committed
        t = self.h5["table"]
        self._cols = None
        for name in t:
            if t[name].shape[0] != n:
                t[name].resize((n,))
        keep = {f"{i:06d}" for i in self.done}
        for g in [g for g in self.h5["points"] if g not in keep]:
            del self.h5["points"][g]

    # --- commits ----------------------------------------------------------------------------
    def commit(self, res: PointResult) -> bool:
        """Store one finished point; False (nothing written) when it is already in the file."""
        return self.commit_many([res])[0]

    def commit_many(self, results: list[PointResult]) -> list[bool]:
        """Store finished points together (one table append, one flush pair); for each result,
        whether it was new (a point already in the file, or twice in ``results``, is dropped)."""
        fresh: list[PointResult] = []
        flags = []
        seen = set(self.done)
        for r in results:
            flags.append(r.index not in seen)
            if flags[-1]:
                seen.add(r.index)
                fresh.append(r)
        if not fresh:
            return flags
        plan, h5 = self.plan, self.h5
        for r in fresh:
            self._write_group(r)
        n, k = self.committed, len(fresh)
        t = self._table()
        cols: dict[str, Any] = {
            "index": np.array([r.index for r in fresh], np.int64),
            "commit_order": np.arange(n, n + k, dtype=np.int64),
            "status": np.array([r.status for r in fresh], np.int8),
            "wall_s": np.array([r.wall_s for r in fresh], np.float64),
            "error": np.array([r.error for r in fresh], dtype=object)}
        axis_rows = [plan.axis_values(r.index) for r in fresh]
        for ax in plan.axes:
            vals = [row[ax.name] for row in axis_rows]
            cols[ax.name] = (np.array(vals, np.float64) if t[ax.name].dtype.kind == "f"
                             else np.array([str(v).encode() for v in vals], dtype=t[ax.name].dtype))
        for c in plan.result_columns():
            cols[c] = np.array([r.scalars.get(c, np.nan) for r in fresh], np.float64)
        for name, values in cols.items():
            ds = t[name]
            ds.resize((n + k,))
            ds[n:n + k] = values
        h5.flush()
        h5.attrs["committed"] = n + k      # written last: the rows and groups above now count
        h5.flush()
        self.committed = n + k
        self.done.update(r.index for r in fresh)
        return flags

    def _table(self) -> dict[str, h5py.Dataset]:
        if getattr(self, "_cols", None) is None:
            self._cols = {name: self.h5["table"][name] for name in self.h5["table"]}
        return self._cols

    def _write_group(self, res: PointResult) -> None:
        plan, h5 = self.plan, self.h5
        setup, steps = plan.point_params(res.index)
        gname = f"points/{res.index:06d}"
        if gname in h5:
            del h5[gname]
        g = h5.create_group(gname)
        _scalar_attrs(g, {
            "params": json.dumps(_jsonable({"setup": setup, "steps": {s: p for s, _, p in steps},
                                            "axes": plan.axis_values(res.index), "repeat": plan.repeat(res.index)})),
            "status": np.int64(res.status), "error": res.error, "seed": np.int64(res.seed),
            "started_utc": res.started_utc, "ended_utc": res.ended_utc, "wall_s": np.float64(res.wall_s),
            "attempt": np.int64(res.attempt),
            "provenance": json.dumps({"chip_url": res.chip_url, "worker": res.worker})})
        for name, (arr, units) in res.arrays.items():
            ds = g.create_dataset(name, data=arr)
            ds.attrs["units"] = units

    def finish(self, state: str, exit_status: str = "", reason: str = "") -> None:
        if not self.h5.id.valid:
            return
        self.h5.attrs["state"] = state
        self.h5.attrs["exit_status"] = exit_status or state
        self.h5.attrs["reason"] = reason
        self.h5.attrs["ended_utc"] = utc_now()
        self.h5.flush()

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.close()

    def __enter__(self) -> "CampaignStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- readers --------------------------------------------------------------------------------
def open_campaign(path: str | Path) -> h5py.File:
    """Open a campaign file read-only without locking (a writer may be live)."""
    p = Path(path)
    if not p.exists():
        raise RunPathError(f"{p}: no such campaign file")
    try:
        f = h5py.File(p, "r", locking=False)
    except OSError as exc:
        raise RunPathError(f"{p}: not a readable HDF5 campaign file ({exc})") from None
    if f.attrs.get("kind") != "campaign":
        kind = f.attrs.get("kind")
        f.close()
        raise RunPathError(f"{p}: is not a campaign file (kind {kind!r})")
    return f


def read_table(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The committed rows (``[0, committed)``) as column arrays, and the root attributes."""
    with open_campaign(path) as f:
        n = int(f.attrs["committed"])
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        cols = {}
        for name in f["table"]:
            ds = f["table"][name]
            data = ds[:n]
            if ds.dtype.kind == "O":
                data = np.array([x.decode() if isinstance(x, bytes) else x for x in data], dtype=object)
            elif ds.dtype.kind == "S":
                data = np.char.decode(data, "utf-8")
            cols[name] = data
    return cols, attrs


def table_order(plan_columns: list[str], axes: list[dict[str, Any]]) -> list[str]:
    """Column order of exports: index, axes, status, results, wall time, error."""
    return ["index", *[a["name"] for a in axes], "status", *plan_columns, "wall_s", "error"]


def status_counts(path: str | Path) -> dict[str, Any]:
    cols, attrs = read_table(path)
    st = cols["status"]
    n_points = int(attrs["n_points"])
    ok, failed, skipped = int((st == 0).sum()), int((st == 1).sum()), int((st == 2).sum())
    errors = [{"index": int(i), "error": str(e)} for i, e, s in zip(cols["index"], cols["error"], st) if s == 1]
    return {"name": attrs.get("name", ""), "state": attrs.get("state", ""), "n_points": n_points,
            "committed": int(attrs["committed"]), "done": ok, "failed": failed, "skipped": skipped,
            "pending": n_points - int(attrs["committed"]), "errors": errors[:20],
            "plan_sha256": attrs.get("plan_sha256", ""), "created_utc": attrs.get("created_utc", ""),
            "ended_utc": attrs.get("ended_utc", ""), "reason": attrs.get("reason", "")}
