"""What a run or campaign file holds, as panel data (pure data: numpy, no Qt).

:func:`read_snapshot` opens the file read-only without locking, reads only what the writer
has committed (run files: the commit log of :mod:`bench.runstore`; campaign files: the
``committed`` row count of the agreed campaign layout), and closes it again at once, so the
writer is never blocked (decision 0008).  A read that lands in the middle of a writer's flush
raises :class:`Transient`; the caller keeps its previous snapshot and tries again.

Units: conductances in siemens, currents in amperes, times in seconds, energies in joules.
Conversion to µS / mA / ms happens in the panels.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bench.errors import DataFormatError, RunPathError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
STUCK_FLAG = 0x02          # firmware_iface.spec.CellFlag.STUCK (cell records of chip program)
COMMITS = "_commits"       # bench.runstore.COMMITS

RUNNING, FINISHED, ENDED = "running", "finished", "run ended without finishing"


class Transient(Exception):
    """The file is between consistent states (being created or flushed): retry shortly."""


# --- panel data ------------------------------------------------------------------------------
@dataclass
class ProgramData:
    """Programming: 2-D maps (rows x columns) in S; NaN where a cell is not measured yet."""

    target_s: np.ndarray | None
    measured_s: np.ndarray
    pulses: np.ndarray | None
    stuck: np.ndarray
    done: int
    total: int | None
    what: str = "cells"
    source: str = ""

    @property
    def error_s(self) -> np.ndarray:
        """measured − target over the measured cells (S), 1-D."""
        if self.target_s is None:
            return np.zeros(0)
        e = (self.measured_s - self.target_s).ravel()
        return e[np.isfinite(e)]

    @property
    def done_pulses(self) -> np.ndarray:
        if self.pulses is None:
            return np.zeros(0, np.int64)
        p = self.pulses.ravel()[np.isfinite(self.measured_s.ravel())]
        return np.nan_to_num(p).astype(np.int64)


@dataclass
class InferData:
    """Inference: rasters of the latest sample and running scores."""

    samples: int
    total: int | None
    n_classes: int
    input_raster: np.ndarray | None
    """(steps, inputs) bool of the latest sample."""
    output_raster: np.ndarray | None
    """(steps, classes) spike counts of the latest sample."""
    latest_label: int | None
    chip_accuracy: np.ndarray
    """running chip accuracy after each sample (fraction)."""
    software_accuracy: np.ndarray | None
    confusion: np.ndarray
    """(true, predicted) counts."""
    samples_per_s: float | None


@dataclass
class RailTrace:
    rail: str
    voltage_v: float
    time_s: np.ndarray
    current_a: np.ndarray
    idle_current_a: float | None
    period_s: float


@dataclass
class PowerData:
    rails: list[RailTrace]
    samples_done: int | None
    estimate_j: float | None
    """Running energy per sample over the chunks stored so far, net of the idle baseline:
    the power procedure's estimator applied chunk by chunk (``bench.power.net_energy_j``), or
    sum of (I - I_idle) x V x period for files without per-chunk run times."""
    measured_j: float | None = None
    """The power procedure's own energy per sample, once it is in the file (end of the run)."""

    @property
    def energy_per_sample_j(self) -> float | None:
        return self.measured_j if self.measured_j is not None else self.estimate_j


@dataclass
class CampaignData:
    n_points: int
    grid_shape: tuple[int, ...]
    status: np.ndarray
    """per flat point index: -1 pending, 0 ok, 1 failed, 2 skipped."""
    axes: list[dict[str, Any]]
    result_columns: list[str]
    table: dict[str, np.ndarray]
    """committed rows of /table, by column."""

    @property
    def counts(self) -> dict[str, int]:
        s = self.status
        return {"done": int(np.sum(s == 0)), "failed": int(np.sum(s == 1)), "skipped": int(np.sum(s == 2)),
                "pending": int(np.sum(s < 0))}

    def grid2d(self) -> np.ndarray:
        """The status laid out on the sweep grid: first axis down, the others across."""
        shape = self.grid_shape if int(np.prod(self.grid_shape)) == self.status.size else (self.status.size,)
        if len(shape) == 1:
            return self.status.reshape(1, -1)
        return self.status.reshape(shape[0], -1)

    def series(self, axis: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(axis values, column values) of the committed ok points (numeric only)."""
        ok = self.table.get("status", np.zeros(0)) == 0
        try:
            x = np.asarray(self.table[axis], dtype=float)[ok]
            y = np.asarray(self.table[column], dtype=float)[ok]
        except (KeyError, ValueError):
            return np.zeros(0), np.zeros(0)
        keep = np.isfinite(x) & np.isfinite(y)
        return x[keep], y[keep]


@dataclass
class Snapshot:
    path: str
    kind: str
    state: str
    detail: str
    committed: int
    commit_times_s: list[float] = field(default_factory=list)
    program: ProgramData | None = None
    infer: InferData | None = None
    power: PowerData | None = None
    campaign: CampaignData | None = None

    @property
    def panels(self) -> list[str]:
        return [k for k in ("program", "infer", "power", "campaign") if getattr(self, k) is not None]

    def counts(self) -> dict[str, Any]:
        """What the window shows as progress, per panel (for tests and --json)."""
        out: dict[str, Any] = {}
        if self.program is not None:
            out["program"] = {"done": self.program.done, "total": self.program.total, "what": self.program.what}
        if self.infer is not None:
            out["infer"] = {"done": self.infer.samples, "total": self.infer.total,
                            "chip_accuracy": float(self.infer.chip_accuracy[-1]) if self.infer.samples else None}
        if self.power is not None:
            out["power"] = {"rails": [r.rail for r in self.power.rails],
                            "points": int(sum(r.current_a.size for r in self.power.rails)),
                            "samples": self.power.samples_done,
                            "energy_per_sample_j": self.power.energy_per_sample_j,
                            "estimate_j": self.power.estimate_j, "measured_j": self.power.measured_j}
        if self.campaign is not None:
            out["campaign"] = {**self.campaign.counts, "total": self.campaign.n_points}
        return out


# --- file checks -----------------------------------------------------------------------------
def check_file(path: str | Path) -> None:
    """Fail with a one-line :class:`DataFormatError` if ``path`` is not a run/campaign file.

    A file that is being created right now (HDF5 but no ``kind`` yet) raises :class:`Transient`.
    """
    p = Path(path)
    if p.is_dir():
        raise DataFormatError(f"{p}: is a directory, not a run or campaign file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except FileNotFoundError:
        raise RunPathError(f"{p}: no such run or campaign file") from None
    except OSError as exc:
        raise DataFormatError(f"{p}: cannot read ({exc.strerror})") from None
    if len(head) < len(HDF5_SIGNATURE) and HDF5_SIGNATURE.startswith(head):
        raise Transient(f"{p}: empty or too short (being created?)")
    if head != HDF5_SIGNATURE:
        raise DataFormatError(f"{p}: not an HDF5 file, so not a snnbench run or campaign file")
    try:
        with h5py.File(p, "r", locking=False) as f:
            if "kind" not in f.attrs:
                raise Transient(f"{p}: HDF5 file without a 'kind' attribute: not a snnbench run or campaign file")
    except OSError as exc:
        raise Transient(f"{p}: unreadable HDF5 ({exc})") from None


# --- reading -----------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead for us
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def writer_state(attrs: Any) -> tuple[str, str]:
    """(state, detail) of a run file from its root attributes."""
    if bool(attrs.get("complete", False)):
        return FINISHED, ""
    if str(attrs.get("utc_end", "")):
        return ENDED, str(attrs.get("error", "")) or "closed incomplete"
    pid = int(attrs.get("writer_pid", 0) or 0)
    host = str(attrs.get("writer_host", ""))
    if pid and host == socket.gethostname() and not _pid_alive(pid):
        return ENDED, f"writer process {pid} is gone"
    return RUNNING, ""


class _Committed:
    """Dataset access limited to the rows committed up to a given commit."""

    def __init__(self, f: h5py.File, upto: int | None) -> None:
        self.f = f
        self.rows: dict[str, int] | None = None
        self.partial = False
        """True when showing the file as at an earlier commit (replay)."""
        self.times: list[float] = []
        self.history: list[dict[str, int]] = []
        if COMMITS in f:
            n = int(f.attrs.get("committed", 0))
            log = f[COMMITS]
            if log.shape[0] < n:
                raise Transient("commit log shorter than the commit counter")
            n = n if upto is None else min(n, upto)
            self.partial = n < int(f.attrs.get("committed", 0))
            self.rows = {}
            for line in log[:n]:
                rec = json.loads(line)
                self.rows.update(rec.get("rows", {}))
                self.times.append(float(rec.get("t", 0.0)))
                self.history.append(dict(self.rows))
        self.committed = len(self.times)

    def has(self, name: str) -> bool:
        name = name.strip("/")
        if name not in self.f or not isinstance(self.f[name], h5py.Dataset):
            return False
        return self.rows is None or self.rows.get(name, 0) > 0

    def first(self, *names: str) -> str | None:
        return next((n for n in names if self.has(n)), None)

    def n(self, name: str) -> int:
        ds = self.f[name]
        if not ds.shape:
            return 1
        if self.rows is None:
            return ds.shape[0]
        r = self.rows.get(name.strip("/"), 0)
        if ds.shape[0] < r:
            raise Transient(f"{name}: {ds.shape[0]} rows on disk, {r} committed")
        return r

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        ds = self.f[name]
        if not ds.shape:
            return ds[()]
        n = self.n(name)
        stop = n if stop is None else min(stop, n)
        return ds[start:stop]

    def rows_at(self, name: str) -> list[int]:
        """Row count of ``name`` after each commit (for rates)."""
        return [h.get(name.strip("/"), 0) for h in self.history]


def read_snapshot(path: str | Path, upto: int | None = None) -> Snapshot:
    """The panel data of ``path`` as committed (up to commit ``upto`` when given: replay)."""
    p = str(path)
    try:
        f = h5py.File(p, "r", locking=False)
    except FileNotFoundError:
        raise Transient(f"{p}: no such file yet") from None
    except OSError as exc:
        raise Transient(f"{p}: {exc}") from None
    try:
        with f:
            if "kind" not in f.attrs:
                raise Transient(f"{p}: no 'kind' attribute yet")
            kind = str(f.attrs["kind"])
            if kind == "campaign":
                return _campaign_snapshot(p, f, upto)
            c = _Committed(f, upto)
            state, detail = writer_state(f.attrs)
            if upto is not None and c.committed < int(f.attrs.get("committed", 0)):
                state, detail = RUNNING, "replay"
            snap = Snapshot(p, kind, state, detail, c.committed, c.times)
            snap.program = _program(f, c)
            snap.infer = _infer(f, c)
            snap.power = _power(f, c)
            return snap
    except (KeyError, ValueError, OSError, RuntimeError) as exc:
        raise Transient(f"{p}: inconsistent read ({exc})") from None


def _shape(f: h5py.File) -> tuple[int, int]:
    try:
        info = json.loads(f.attrs.get("chip_info", "{}"))
        return int(info.get("rows", 128)), int(info.get("columns", 24))
    except (ValueError, TypeError, AttributeError):
        return 128, 24


def _program(f: h5py.File, c: _Committed) -> ProgramData | None:
    rows, cols = _shape(f)
    if c.has("cells") or (c.has("maps/target_s") and f.attrs.get("kind") == "chip_program"):
        target = c.read("maps/target_s") if c.has("maps/target_s") else None
        shape = target.shape if target is not None else (rows, cols)
        meas = np.full(shape, np.nan)
        pulses = np.full(shape, np.nan)
        stuck = np.zeros(shape, bool)
        rec = c.read("cells") if c.has("cells") else np.zeros(0)
        if rec.size:
            r, k = rec["row"].astype(int), rec["col"].astype(int)
            meas[r, k] = rec["g_s"]
            pulses[r, k] = rec["pulses"]
            stuck[r, k] = (rec["flags"] & STUCK_FLAG) > 0
        if c.has("maps/readback_s"):          # the final read-back replaces the verify reads
            meas = c.read("maps/readback_s").astype(float)
        total = int(target.size) if target is not None else None
        return ProgramData(target, meas, pulses, stuck, int(rec.size), total, "cells", "chip program")
    t_name = c.first("program/targets_s", "power/program/targets_s")
    if t_name is not None:
        base = t_name.rsplit("/", 1)[0]
        target = c.read(t_name).astype(float)
        m_name = c.first(f"{base}/readback_s", f"{base}/g_s")
        meas = c.read(m_name).astype(float) if m_name else np.full(target.shape, np.nan)
        pulses = c.read(f"{base}/pulses").astype(float) if c.has(f"{base}/pulses") else None
        stuck = c.read(f"{base}/stuck").astype(bool) if c.has(f"{base}/stuck") else np.zeros(target.shape, bool)
        return ProgramData(target, meas, pulses, stuck, int(np.isfinite(meas).sum()), int(target.size),
                           "cells", base)
    if c.has("maps/g_s"):                      # chip read: repeated whole-array reads
        n = c.n("maps/g_s")
        meas = c.read("maps/g_s", n - 1, n)[0].astype(float)
        return ProgramData(None, meas, None, np.zeros(meas.shape, bool), n, None, "reads", "chip read")
    return None


def _infer(f: h5py.File, c: _Committed) -> InferData | None:
    out_name = c.first("output_spikes", "infer/out_spikes")
    if out_name is None:
        return None
    pre = "infer/" if out_name.startswith("infer/") else ""
    lab_name = c.first(f"{pre}labels")
    pred_name = c.first("predictions", "infer/pred_chip")
    sw_name = c.first("software_predictions", "infer/pred_software")
    in_name = c.first("inputs_packed", "infer/in_spikes_packed")
    n = min(c.n(x) for x in (out_name, lab_name, pred_name) if x is not None)
    labels = c.read(lab_name, 0, n).astype(np.int64) if lab_name else np.zeros(0, np.int64)
    pred = c.read(pred_name, 0, n).astype(np.int64) if pred_name else np.zeros(0, np.int64)
    k = int(f.attrs.get("n_classes", 0) or f[out_name].shape[-1])
    idx = np.arange(1, n + 1)
    chip_acc = np.cumsum(pred[:n] == labels[:n]) / idx if pred_name and lab_name else np.zeros(0)
    sw_acc = None
    if sw_name and lab_name:
        sw = c.read(sw_name, 0, n).astype(np.int64)
        sw_acc = np.cumsum(sw == labels[:n]) / idx
    conf = np.zeros((k, k), np.int64)
    if pred_name and lab_name and n:
        ok = (labels < k) & (pred < k) & (labels >= 0) & (pred >= 0)
        np.add.at(conf, (labels[ok], pred[ok]), 1)
    out_r = in_r = None
    if n:
        out_r = c.read(out_name, n - 1, n)[0]
        if in_name is not None and c.n(in_name) >= n:
            ds = f[in_name]
            n_in = int(ds.attrs.get("n_inputs", 0) or 0)
            if not n_in:
                n_in = int(json.loads(str(ds.attrs.get("shape_per_sample", "[0, 0]")))[1]) or ds.shape[-1] * 8
            in_r = np.unpackbits(c.read(in_name, n - 1, n)[0], axis=-1, count=n_in, bitorder="little").astype(bool)
    total = f.attrs.get("samples_total")
    total = int(total) if total is not None else (n if c.rows is not None and bool(f.attrs.get("complete")) else None)
    return InferData(n, total, k, in_r, out_r, int(labels[-1]) if n and lab_name else None,
                     chip_acc, sw_acc, conf, _rate(c, pred_name or out_name))


def _rate(c: _Committed, name: str) -> float | None:
    """Samples per second of the writer over its last commits that added samples (file clock)."""
    rows = c.rows_at(name)
    pts = [(t, r) for t, r in zip(c.times, rows) if r > 0]
    if not pts:
        return None
    grew = [i for i in range(1, len(pts)) if pts[i][1] > pts[i - 1][1]]
    if not grew:
        return None
    lo = pts[max(0, grew[0] - 1)] if len(grew) < 4 else pts[grew[-4] - 1]
    hi = pts[grew[-1]]
    dt = hi[0] - lo[0]
    return (hi[1] - lo[1]) / dt if dt > 0 else None


def _power(f: h5py.File, c: _Committed) -> PowerData | None:
    groups: list[tuple[str, str]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and c.has(f"{name}/current_a") and c.has(f"{name}/time_s"):
            groups.append((name, obj.attrs.get("voltage_v", np.nan)))

    f.visititems(visit)
    if not groups:
        return None
    idle = {}
    for name, _ in groups:
        if name.rsplit("/", 1)[0].endswith("idle"):
            cur = c.read(f"{name}/current_a")
            if cur.size:
                idle[name.rsplit("/", 1)[-1]] = float(np.mean(cur))
    rails = []
    for name, v in groups:
        if name.rsplit("/", 1)[0].endswith("idle"):
            continue
        g = f[name]
        m = min(c.n(f"{name}/current_a"), c.n(f"{name}/time_s"))
        rail = name.rsplit("/", 1)[-1]
        rails.append(RailTrace(rail, float(v), c.read(f"{name}/time_s", 0, m), c.read(f"{name}/current_a", 0, m),
                               idle.get(rail), float(g.attrs.get("period_s", np.nan))))
    if not rails:  # only the idle baseline so far
        for name, v in groups:
            rail = name.rsplit("/", 1)[-1]
            rails.append(RailTrace(rail, float(v), np.zeros(0), np.zeros(0), idle.get(rail), np.nan))
    base = next((n.rsplit("/", 2)[0] + "/" for n, _ in groups if n.count("/") >= 2), "")
    done = None
    result: dict[str, Any] = {}
    if not c.partial:   # the procedure's figures, written at its end (not in a replay's past)
        raw = f.attrs.get("result_json") or (f[base.rstrip("/")].attrs.get("result_json") if base else None)
        try:
            result = json.loads(raw) if raw else {}
        except ValueError:
            result = {}
    cs = f"{base}run/chunk_samples"
    if c.has(cs):
        done = int(np.sum(c.read(cs)))
    elif c.rows is None and result.get("samples"):   # a file from before the commit log
        done = int(result["samples"])
    measured = result.get("energy_per_sample_j")
    measured = float(measured) if isinstance(measured, (int, float)) else None
    energy = None
    runs = f"{base}run/chunk_run_s"
    if done and c.has(runs):
        energy = _net_energy(f, c, [n for n, _ in groups if not n.rsplit("/", 1)[0].endswith("idle")],
                             idle, c.read(runs)) / done
    elif done:      # files without per-chunk run times: points tiling the trace, each one period
        net = 0.0
        for r in rails:
            if r.current_a.size and r.idle_current_a is not None and np.isfinite(r.period_s):
                net += float(np.sum(r.current_a - r.idle_current_a) * r.voltage_v * r.period_s)
        energy = net / done
    return PowerData(rails, done, energy, measured)


def _net_energy(f: h5py.File, c: _Committed, names: list[str], idle_a: dict[str, float],
                run_s: np.ndarray) -> float:
    """Net energy of the completed chunks, chunk by chunk, with the power procedure's own
    estimator (``bench.power.net_energy_j``: instrument timestamps, run window on a trigger)."""
    from bench.power import net_energy_j
    from drivers.instruments import Trace

    net = 0.0
    for name in names:
        g, rail = f[name], name.rsplit("/", 1)[-1]
        m = min(c.n(f"{name}/current_a"), c.n(f"{name}/time_s"))
        if rail not in idle_a or m == 0 or not c.has(f"{name}/chunk"):
            continue
        cur, t = c.read(f"{name}/current_a", 0, m), c.read(f"{name}/time_s", 0, m)
        chunk = c.read(f"{name}/chunk", 0, m)
        v, ap = float(g.attrs.get("voltage_v", np.nan)), float(g.attrs.get("aperture_s", np.nan))
        triggered = int(g.attrs.get("trigger_line", -1)) >= 1
        for k, t_run in enumerate(run_s):
            sel = chunk == k
            if not sel.any():
                continue
            tr = Trace(current_a=cur[sel], time_s=t[sel], voltage_v=v, period_s=float(g.attrs.get("period_s", ap)),
                       aperture_s=ap)
            net += net_energy_j(tr, idle_a[rail] * v, float(t_run) if triggered else None)
    return net


def _campaign_snapshot(p: str, f: h5py.File, upto: int | None) -> Snapshot:
    n_points = int(f.attrs.get("n_points", 0))
    committed = int(f.attrs.get("committed", 0))
    if upto is not None:
        committed = min(committed, upto)
    try:
        axes = json.loads(f.attrs.get("axes", "[]"))
        cols = json.loads(f.attrs.get("result_columns", "[]"))
    except ValueError as exc:
        raise DataFormatError(f"{p}: campaign attributes 'axes'/'result_columns' are not JSON ({exc})") from None
    shape = tuple(int(x) for x in np.atleast_1d(f.attrs.get("grid_shape", [n_points])))
    table: dict[str, np.ndarray] = {}
    if "table" in f:
        for name, ds in f["table"].items():
            if ds.shape[0] < committed:
                raise Transient(f"/table/{name}: {ds.shape[0]} rows, {committed} committed")
            a = ds[:committed]
            if a.dtype.kind in "SO":
                a = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in a], dtype=object)
            table[name] = a
    status = np.full(n_points, -1, np.int8)
    if "index" in table and "status" in table:
        idx = table["index"].astype(np.int64)
        ok = (idx >= 0) & (idx < n_points)
        status[idx[ok]] = table["status"][ok]
    state = str(f.attrs.get("state", RUNNING))
    detail = ""
    if state == RUNNING:
        st, detail = writer_state(f.attrs) if "writer_pid" in f.attrs else (RUNNING, "")
        state = st
    elif state != FINISHED:
        detail = state
        state = ENDED if state == "failed" else state
    if upto is not None and committed < int(f.attrs.get("committed", 0)):
        state, detail = RUNNING, "replay"
    times = list(np.cumsum(table["wall_s"]).astype(float)) if "wall_s" in table else list(range(committed))
    snap = Snapshot(p, "campaign", state, detail, committed, [float(t) for t in times])
    snap.campaign = CampaignData(n_points, shape, status, axes, list(cols), table)
    return snap


def commit_count(path: str | Path) -> tuple[int, list[float]]:
    """(commits, commit times in s) of a finished file, for replay pacing."""
    snap = read_snapshot(path)
    return snap.committed, snap.commit_times_s
