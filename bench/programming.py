"""Write-verify programming and readout of the PE-macro array (issue 4).

Programming (:func:`program_cells`, :func:`program_array`) runs the shared incremental-step
state machine :class:`firmware_iface.write_verify.WriteVerifyJob` with one
:class:`~firmware_iface.write_verify.PulseSchedule`, in one of two modes:

- ``board``: the protocol's WRITE_VERIFY job, one round trip per batch of cells, results per
  cell (the FPGA runs the same state machine);
- ``host``: the job runs here over READ_CELLS / PULSE round trips, row-parallel: every
  iteration reads all unfinished cells of the batch in one command and applies all their
  pulses in one command (works with any board, and can record per-pulse traces).

Stuck-cell probe: a cell that already reads inside the verify window would be "done" without
a single pulse, so a stuck cell sitting at its target (a stuck-off cell asked for level 0)
would count as a success.  With ``probe=True`` (default) those cells are first written to a
probe target ``probe_offset_s`` away (same schedule and job; a stuck cell fails to move and
is flagged stuck), then to their target.  Stuck cells are never counted as a success.

Results come back per batch through ``on_batch`` (the CLI appends them to the run file and
flushes), so an interruption loses at most the batch in flight; ``skip`` / resume programs
only the cells not yet done.

Readout: :func:`read_cell`, :func:`read_row`, :func:`read_map` (averaged reads),
:func:`read_noise` (repeated reads -> per-cell mean and standard deviation) and
:func:`retention` (read again after waits in chip time).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.errors import ConfigError
from drivers.errors import LimitError
from drivers.pechip import MAX_WAIT_S, LinkStats, PEChip
from firmware_iface.spec import Capability, CellFlag
from firmware_iface.write_verify import PulseSchedule, WriteVerifyJob

MODES = ("host", "board")
CELL_DTYPE = np.dtype([("index", "<i4"), ("row", "<i2"), ("col", "<i2"), ("target_s", "<f8"),
                       ("g_s", "<f8"), ("pulses", "<i4"), ("flags", "u1")])
"""One programmed cell as stored in the run file (``index`` = position in the target list)."""
TRACE_DTYPE = np.dtype([("iteration", "<i4"), ("index", "<i4"), ("g_read_s", "<f8"),
                        ("kind", "u1"), ("v_bl_v", "<f4"), ("v_wl_v", "<f4"), ("v_sl_v", "<f4")])
"""One host-mode verify step of one cell: the read, then the pulse applied (kind 0: none)."""
READ_TIME_S = 1e-6
"""Chip time of one single-cell read (settle + integrate), used for modelled time of host reads."""


class _ReadCounter:
    """Counts cell reads x averages issued through READ_CELLS."""

    def __init__(self, chip: PEChip) -> None:
        self.chip, self.n = chip, 0

    def __call__(self, rows, cols, v_read_v, averages):
        self.n += int(np.size(rows)) * int(averages)
        return self.chip.read_cells(rows, cols, v_read_v, averages)


_STATION_CAPS = (("set_max_v", "v_set_max_v"), ("reset_max_v", "v_reset_max_v"),
                 ("set_wl_v", "v_wl_max_v"), ("reset_wl_v", "v_wl_max_v"))
"""Default schedule voltages lowered to a station limit (field, limit name)."""
_STARTS = (("set_start_v", "set_max_v"), ("reset_start_v", "reset_max_v"))


def station_adjustments(limits, **overrides: Any) -> dict[str, dict[str, Any]]:
    """How the default schedule adapts to station ``limits`` (a ``ChipLimits``).

    Each *default* voltage above its station limit is lowered to it (SET/RESET maximum and
    word-line voltages); a default start voltage above the (effective) maximum of its ramp
    is lowered to that maximum; a default ``max_pulses`` above ``max_pulses_per_cell`` is
    lowered to it.  Fields in ``overrides`` (explicit user values) are never changed: they
    are checked against the limits as given.  Returns ``{field: {"default", "value",
    "limit"}}`` for the changed fields only (recorded in run files)."""
    base = PulseSchedule()
    out: dict[str, dict[str, Any]] = {}
    eff: dict[str, float] = {}
    for name, lim in _STATION_CAPS:
        default, cap = getattr(base, name), float(getattr(limits, lim))
        eff[name] = overrides.get(name, default)
        if name not in overrides and default > cap:
            out[name] = {"default": default, "value": cap, "limit": lim}
            eff[name] = cap
    for start, top in _STARTS:
        default = getattr(base, start)
        if start not in overrides and default > eff[top]:
            why = out[top]["limit"] if top in out else (f"{top} (override)" if top in overrides else top)
            out[start] = {"default": default, "value": float(eff[top]), "limit": why}
    mp = int(getattr(limits, "max_pulses_per_cell", base.max_pulses))
    if "max_pulses" not in overrides and base.max_pulses > mp:
        out["max_pulses"] = {"default": base.max_pulses, "value": mp, "limit": "max_pulses_per_cell"}
    return out


def default_schedule(tolerance_s: float = 5e-6, *, limits=None, **overrides: Any) -> PulseSchedule:
    """The default schedule for an acceptance tolerance: the verify window is half of it,
    leaving the other half for read noise and relaxation after the verify read.

    With station ``limits`` the *default* voltages adapt to the station (see
    :func:`station_adjustments`); ``overrides`` are taken as given (a value beyond a limit
    stays an error, raised by :func:`validate_schedule` / ``PEChip.check_schedule``)."""
    if not np.isfinite(tolerance_s) or tolerance_s <= 0:
        raise ValueError(f"tolerance must be a finite conductance > 0 S, got {tolerance_s!r}")
    base = PulseSchedule()
    window = min(base.tolerance_s, tolerance_s / 2)
    adapted = {} if limits is None else {k: d["value"] for k, d in station_adjustments(limits, **overrides).items()}
    return replace(base, tolerance_s=window, **{**adapted, **overrides})


def validate_schedule(schedule: PulseSchedule, chip_limits) -> None:
    """Raise :class:`drivers.errors.LimitError` if the schedule exceeds the station limits
    (no chip needed: used before the link is opened)."""
    PEChip.check_schedule(_LimitsOnly(chip_limits), schedule)  # type: ignore[arg-type]


def schedule_for_station(station, tolerance_s: float = 5e-6) -> PulseSchedule:
    """The default write-verify schedule adapted to ``station`` (a ``bench.station.Station``
    or bare ``ChipLimits``) and checked against its limits: call it up front, before any work.

    Raises :class:`bench.errors.ConfigError` naming the limit when no usable schedule exists
    (e.g. the read voltage or pulse width of the schedule is outside the station limits)."""
    limits = getattr(station, "limits", station)
    src = getattr(station, "source", None) or "station"
    try:
        schedule = default_schedule(tolerance_s, limits=limits)
        validate_schedule(schedule, limits)
    except (ValueError, LimitError) as exc:
        raise ConfigError(f"{src}: no usable write-verify schedule within the station limits: {exc}") from None
    return schedule


@dataclass
class _LimitsOnly:
    limits: Any

    @staticmethod
    def board_limits() -> None:
        """No board yet: only the station's limits are checked."""
        return None


@dataclass
class ProgramResult:
    """Per-cell outcome of programming, in target order."""

    rows: np.ndarray
    cols: np.ndarray
    targets_s: np.ndarray
    g_s: np.ndarray
    pulses: np.ndarray
    success: np.ndarray
    stuck: np.ndarray
    confirm_failed: np.ndarray
    done: np.ndarray
    """Cells whose programming finished (False for cells never reached)."""
    mode: str = "board"
    schedule: PulseSchedule = field(default_factory=PulseSchedule)
    link: LinkStats = field(default_factory=LinkStats)
    host_seconds: float = 0.0
    """Host CPU time spent (process time)."""
    host_reads: int = 0
    """Single-cell reads (x averages) issued by the host with READ_CELLS; the board reports no
    chip time for those, so :meth:`modelled_seconds` adds ``READ_TIME_S`` per read."""
    wall_seconds: float = 0.0

    def modelled_seconds(self, baud: float, latency_s: float) -> float:
        """Wall time of this programming on a link of ``baud`` / ``latency_s``: link traffic,
        chip busy time reported by the board, and the host-issued reads."""
        return self.link.modelled_seconds(baud, latency_s) + self.host_reads * READ_TIME_S

    @property
    def flags(self) -> np.ndarray:
        f = np.zeros(self.rows.size, dtype=np.uint8)
        f[self.success] |= int(CellFlag.SUCCESS)
        f[self.stuck] |= int(CellFlag.STUCK)
        f[self.confirm_failed] |= int(CellFlag.CONFIRM_FAILED)
        return f

    def records(self, sel: np.ndarray | None = None) -> np.ndarray:
        idx = np.arange(self.rows.size) if sel is None else np.asarray(sel)
        out = np.zeros(idx.size, dtype=CELL_DTYPE)
        out["index"], out["row"], out["col"] = idx, self.rows[idx], self.cols[idx]
        out["target_s"], out["g_s"], out["pulses"] = self.targets_s[idx], self.g_s[idx], self.pulses[idx]
        out["flags"] = self.flags[idx]
        return out

    def fill(self, rec: np.ndarray) -> None:
        """Merge stored cell records (resume)."""
        i = rec["index"].astype(np.int64)
        self.g_s[i], self.pulses[i] = rec["g_s"], rec["pulses"]
        f = rec["flags"]
        self.success[i] = (f & CellFlag.SUCCESS) > 0
        self.stuck[i] = (f & CellFlag.STUCK) > 0
        self.confirm_failed[i] = (f & CellFlag.CONFIRM_FAILED) > 0
        self.done[i] = True

    def as_map(self, values: np.ndarray, shape: tuple[int, int], fill: float = np.nan) -> np.ndarray:
        out = np.full(shape, fill, dtype=np.asarray(values).dtype if fill is None else np.float64)
        out[self.rows, self.cols] = values
        return out


def summarise(res: ProgramResult, tolerance_s: float, readback_s: np.ndarray | None = None) -> dict[str, Any]:
    """Figures of merit.  ``within_tolerance``: fraction of non-stuck cells whose final
    conductance (the read-back map when given, else the last verify read) is within
    ``tolerance_s`` of target *and* that the job reported as a success."""
    d = res.done
    g = res.g_s if readback_s is None else readback_s[res.rows, res.cols]
    err = g - res.targets_s
    ok_cells = d & ~res.stuck
    within = ok_cells & res.success & (np.abs(err) <= tolerance_s)
    p = res.pulses[d]
    n_ok = int(ok_cells.sum())
    return {
        "cells": int(d.sum()),
        "cells_total": int(res.rows.size),
        "within_tolerance": float(within.sum() / n_ok) if n_ok else 0.0,
        "success": int((res.success & d).sum()),
        "stuck_cells": int((res.stuck & d).sum()),
        "failed_cells": int((d & ~res.success & ~res.stuck).sum()),
        "confirm_failed_cells": int((res.confirm_failed & d).sum()),
        "pulses_median": float(np.median(p)) if p.size else 0.0,
        "pulses_p95": float(np.percentile(p, 95)) if p.size else 0.0,
        "pulses_total": int(p.sum()),
        "rms_error_us": float(np.sqrt(np.mean(err[ok_cells] ** 2)) * 1e6) if n_ok else 0.0,
        "tolerance_us": tolerance_s * 1e6,
    }


# --- programming ---------------------------------------------------------------------------
def _validate_targets(chip: PEChip, rows, cols, targets_s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    t = np.asarray(targets_s, dtype=np.float64).ravel()
    if not rows.size == cols.size == t.size:
        raise ValueError("rows, cols and targets must have the same length")
    if not np.all(np.isfinite(t)) or (t.size and t.min() < 0):
        raise ValueError("targets must be finite conductances >= 0 S")
    info = chip.info()
    if rows.size and (rows.min() < 0 or rows.max() >= info.rows or cols.min() < 0 or cols.max() >= info.columns):
        raise ValueError(f"cell address outside the {info.rows}x{info.columns} array")
    return rows, cols, t


def _host_job(chip: PEChip, rows, cols, targets, schedule: PulseSchedule,
              traces: list | None, it0: int = 0, reader=None) -> WriteVerifyJob:
    """Run one WriteVerifyJob on the host: one READ_CELLS + one PULSE command per iteration."""
    # Not schedule.quantised(): its mV -> V conversion can land a hair above a station limit
    # (3300 * 1e-3 > 3.3); the PULSE encoder rounds to the same mV anyway.
    job = WriteVerifyJob(targets, schedule)
    s = job.s
    while not job.finished:
        idx = job.to_read()
        g = (reader or chip.read_cells)(rows[idx], cols[idx], s.v_read_v, s.read_averages)
        batch = job.step(idx, g)
        if traces is not None:
            tr = np.zeros(idx.size, dtype=TRACE_DTYPE)
            tr["iteration"], tr["index"], tr["g_read_s"] = it0 + job.iterations, idx, g
            pos = np.searchsorted(idx, batch.index)
            tr["kind"][pos] = batch.kind
            tr["v_bl_v"][pos], tr["v_wl_v"][pos], tr["v_sl_v"][pos] = batch.v_bl_v, batch.v_wl_v, batch.v_sl_v
            traces.append(tr)
        if len(batch):
            chip.pulse(batch.kind, rows[batch.index], cols[batch.index], batch.v_bl_v,
                       batch.v_wl_v, batch.v_sl_v, batch.width_s)
    return job


def _run(chip: PEChip, mode: str, rows, cols, targets, schedule, traces, batch_cells: int, reader=None):
    """(g, pulses, success, stuck, confirm_failed) for the listed cells."""
    if mode == "board":
        r = chip.write_verify(rows, cols, targets, schedule, batch=batch_cells)
        return r.g_s, r.pulses, r.success, r.stuck, r.confirm_failed
    job = _host_job(chip, rows, cols, targets, schedule, traces, reader=reader)
    return job.g, job.pulses, job.success, job.stuck, job.confirm_failed


def probe_targets(targets_s: np.ndarray, levels_s: Sequence[float], offset_s: float) -> np.ndarray:
    """Probe target of each cell: ``offset_s`` above its target, or below when that would
    leave the level range."""
    top = float(levels_s[-1])
    up = targets_s + offset_s
    return np.where(up <= top, up, np.maximum(targets_s - offset_s, 0.0))


def program_cells(chip: PEChip, rows, cols, targets_s, schedule: PulseSchedule | None = None, *,
                  mode: str = "board", batch_cells: int = 1024, probe: bool = True,
                  probe_offset_s: float = 20e-6, traces: bool = False,
                  skip: np.ndarray | None = None,
                  on_batch: Callable[[np.ndarray, ProgramResult, np.ndarray | None], None] | None = None,
                  on_send: Callable[[np.ndarray], None] | None = None,
                  ) -> ProgramResult:
    """Program cells ``(rows[i], cols[i])`` to ``targets_s[i]`` (S) by write-verify.

    ``mode``: ``"board"`` (on-board WRITE_VERIFY) or ``"host"`` (host-driven).
    ``batch_cells``: cells per unit of work (one ``on_batch`` call, i.e. one flush).
    ``skip``: bool mask of cells already done (resume); they are not touched.
    ``on_batch(indices, result, traces)`` is called after each batch completes.
    ``on_send(indices)`` is called before the first command of each batch is sent (the CLI
    journals the batch as in flight, so a resume can tell which cells the board may have
    pulsed without the host recording it).
    Everything (addresses, targets, schedule against the station limits, mode against the
    board's capabilities) is checked before the first pulse.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if batch_cells < 1:
        raise ValueError("batch_cells must be >= 1")
    schedule = schedule or default_schedule(limits=chip.limits)
    chip.check_schedule(schedule)
    rows, cols, targets = _validate_targets(chip, rows, cols, targets_s)
    info = chip.info()
    if mode == "board" and not info.has(Capability.WRITE_VERIFY):
        raise ValueError("this board has no on-board write-verify; use mode='host'")
    n = rows.size
    res = ProgramResult(rows=rows, cols=cols, targets_s=targets, g_s=np.full(n, np.nan),
                        pulses=np.zeros(n, np.int64), success=np.zeros(n, bool), stuck=np.zeros(n, bool),
                        confirm_failed=np.zeros(n, bool), done=np.zeros(n, bool), mode=mode,
                        schedule=schedule)
    if skip is not None:
        res.done[:] = np.asarray(skip, dtype=bool)
    before = chip.stats.snapshot()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    todo = np.flatnonzero(~res.done)
    reader = _ReadCounter(chip)
    try:
        for start in range(0, todo.size, batch_cells):
            sel = todo[start:start + batch_cells]
            if on_send is not None:
                on_send(sel)
            r, c, t = rows[sel], cols[sel], targets[sel]
            trace_list: list | None = [] if traces and mode == "host" else None
            pulses = np.zeros(sel.size, np.int64)
            stuck = np.zeros(sel.size, bool)
            active = np.ones(sel.size, bool)
            if probe:
                g0 = reader(r, c, schedule.v_read_v, schedule.read_averages)
                pr = np.flatnonzero(np.abs(g0 - t) <= schedule.tolerance_s)
                if pr.size:
                    pt = probe_targets(t[pr], info.levels_s, probe_offset_s)
                    _, pp, _, ps, _ = _run(chip, mode, r[pr], c[pr], pt, schedule, trace_list, batch_cells,
                                            reader)
                    pulses[pr] += pp
                    stuck[pr] = ps
                    active[pr[ps]] = False
            a = np.flatnonzero(active)
            g = np.full(sel.size, np.nan)
            success = np.zeros(sel.size, bool)
            cfail = np.zeros(sel.size, bool)
            if probe and (~active).any():
                g[~active] = reader(r[~active], c[~active], schedule.v_read_v, schedule.read_averages)
            if a.size:
                ga, pa, sa, sta, ca = _run(chip, mode, r[a], c[a], t[a], schedule, trace_list, batch_cells,
                                                 reader)
                g[a], success[a], cfail[a] = ga, sa, ca
                pulses[a] += pa
                stuck[a] |= sta
            success &= ~stuck
            res.g_s[sel], res.pulses[sel], res.success[sel] = g, pulses, success
            res.stuck[sel], res.confirm_failed[sel] = stuck, cfail
            res.done[sel] = True
            if on_batch is not None:
                on_batch(sel, res, np.concatenate(trace_list) if trace_list else None)
    finally:
        res.link = chip.stats.since(before)
        res.host_reads = reader.n
        res.host_seconds = time.process_time() - cpu0
        res.wall_seconds = time.perf_counter() - wall0
    return res


def reverify(chip: PEChip, records: np.ndarray, tolerance_s: float, *, averages: int = 8,
             v_read_v: float = 0.2, readback: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-check cells recorded as done by an earlier session (resume) with one averaged
    array read: conductances relax and drift between sessions (and a different session may
    not even hold the programmed state), so stored records are not trusted as they are.

    ``records``: :data:`CELL_DTYPE` rows.  Returns ``(keep, readback_s)``: ``keep[i]`` is
    True when record ``i`` still stands -- the cell was flagged stuck (a stuck cell does not
    move; it is never counted as a success) or it reads within ``tolerance_s`` of its target
    now; every other record must be programmed again.  ``readback``: an array read already
    taken (S), used instead of reading again."""
    rec = np.asarray(records)
    if readback is None:
        readback = read_map(chip, averages=averages, v_read_v=v_read_v)
    if rec.size == 0:
        return np.zeros(0, bool), readback
    g = readback[rec["row"].astype(np.int64), rec["col"].astype(np.int64)]
    stuck = (rec["flags"] & CellFlag.STUCK) > 0
    within = np.abs(g - rec["target_s"]) <= tolerance_s
    return stuck | within, readback


def recover_inflight(readback_s: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     targets_s: np.ndarray, tolerance_s: float) -> np.ndarray:
    """Records (:data:`CELL_DTYPE`) of the in-flight cells an interrupted session left within
    tolerance: the board finished their write-verify but the host died before recording it.

    ``indices``: positions (in the target list) journalled as in flight; ``readback_s``: the
    array read on resume.  A cell reading within ``tolerance_s`` of its target is recorded as
    a success (its pulses unknown: 0) and is not programmed again -- no extra wear; the others
    are left to be programmed."""
    idx = np.asarray(indices, dtype=np.int64)
    g = readback_s[rows[idx], cols[idx]]
    ok = np.abs(g - targets_s[idx]) <= tolerance_s
    out = np.zeros(int(ok.sum()), dtype=CELL_DTYPE)
    i = idx[ok]
    out["index"], out["row"], out["col"] = i, rows[i], cols[i]
    out["target_s"], out["g_s"], out["pulses"] = targets_s[i], g[ok], 0
    out["flags"] = int(CellFlag.SUCCESS)
    return out


def program_array(chip: PEChip, targets_s: np.ndarray, schedule: PulseSchedule | None = None,
                  **kwargs: Any) -> ProgramResult:
    """Program a whole-array target map (rows x columns, S), row-major cell order."""
    info = chip.info()
    t = np.asarray(targets_s, dtype=np.float64)
    if t.shape != (info.rows, info.columns):
        raise ValueError(f"target map must have shape ({info.rows}, {info.columns}), got {t.shape}")
    rr, cc = np.indices(t.shape)
    return program_cells(chip, rr.ravel(), cc.ravel(), t.ravel(), schedule, **kwargs)


def program_baseline_per_cell(chip: PEChip, rows, cols, targets_s, schedule: PulseSchedule) -> ProgramResult:
    """Reference host-driven loop that handles one cell at a time (NeuRRAM's style): a read
    and a pulse round trip per step of each cell.  For benchmarks only."""
    rows, cols, targets = _validate_targets(chip, rows, cols, targets_s)
    chip.check_schedule(schedule)
    n = rows.size
    res = ProgramResult(rows=rows, cols=cols, targets_s=targets, g_s=np.full(n, np.nan),
                        pulses=np.zeros(n, np.int64), success=np.zeros(n, bool), stuck=np.zeros(n, bool),
                        confirm_failed=np.zeros(n, bool), done=np.ones(n, bool), mode="host-per-cell",
                        schedule=schedule)
    before = chip.stats.snapshot()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    reader = _ReadCounter(chip)
    for i in range(n):
        job = _host_job(chip, rows[i:i + 1], cols[i:i + 1], targets[i:i + 1], schedule, None, reader=reader)
        res.g_s[i], res.pulses[i] = job.g[0], job.pulses[0]
        res.success[i], res.stuck[i] = job.success[0], job.stuck[0]
    res.link = chip.stats.since(before)
    res.host_reads = reader.n
    res.host_seconds = time.process_time() - cpu0
    res.wall_seconds = time.perf_counter() - wall0
    return res


# --- readout ---------------------------------------------------------------------------------
def read_cell(chip: PEChip, row: int, col: int, *, averages: int = 8, v_read_v: float = 0.2) -> float:
    """One cell's conductance (S), averaged on the board."""
    return float(chip.read_cells([row], [col], v_read_v, averages)[0])


def read_row(chip: PEChip, row: int, *, averages: int = 8, v_read_v: float = 0.2) -> np.ndarray:
    return chip.read_row(row, v_read_v, averages)


def read_map(chip: PEChip, *, averages: int = 8, v_read_v: float = 0.2) -> np.ndarray:
    """Conductance map (rows x columns, S) in one round trip."""
    return chip.read_array(v_read_v, averages)


@dataclass
class ReadStats:
    maps_s: np.ndarray
    """All repeated maps (repeats x rows x columns, S)."""

    @property
    def mean_s(self) -> np.ndarray:
        return self.maps_s.mean(axis=0)

    @property
    def std_s(self) -> np.ndarray:
        """Per-cell read-to-read standard deviation (S); NaN (not measurable) for a single read."""
        if self.maps_s.shape[0] < 2:
            return np.full(self.maps_s.shape[1:], np.nan)
        return self.maps_s.std(axis=0, ddof=1)

    def summary(self) -> dict[str, Any]:
        """Figures; ``std_us`` and ``read_noise_rel_median`` are None (JSON null) when they
        cannot be measured (a single read; no cell above 5 uS for the relative noise)."""
        m, s = self.mean_s, self.std_s
        noisy = self.maps_s.shape[0] >= 2
        rel = s[m > 5e-6] / m[m > 5e-6] if noisy else np.zeros(0)
        return {"cells": int(m.size), "repeats": int(self.maps_s.shape[0]),
                "mean_us": float(m.mean() * 1e6),
                "std_us": float(np.sqrt(np.mean(s ** 2)) * 1e6) if noisy else None,
                "map_std_us": float(m.std() * 1e6), "min_us": float(m.min() * 1e6),
                "max_us": float(m.max() * 1e6),
                "read_noise_rel_median": float(np.median(rel)) if rel.size else None}


def read_noise(chip: PEChip, repeats: int = 10, *, averages: int = 1, v_read_v: float = 0.2,
               on_map: Callable[[int, np.ndarray], None] | None = None) -> ReadStats:
    """Read the whole array ``repeats`` times (``on_map(i, map)`` after each read)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    maps = []
    for i in range(repeats):
        m = read_map(chip, averages=averages, v_read_v=v_read_v)
        maps.append(m)
        if on_map is not None:
            on_map(i, m)
    return ReadStats(np.stack(maps))


def retention(chip: PEChip, waits_s: Sequence[float], *, averages: int = 8, v_read_v: float = 0.2,
              on_map: Callable[[float, np.ndarray], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the array now and after each cumulative wait (chip time, ``chip.wait``).

    Returns (elapsed chip seconds since the first read, maps (len(waits)+1, rows, columns))."""
    waits = [float(w) for w in waits_s]
    if any(not np.isfinite(w) or not 0 <= w <= MAX_WAIT_S for w in waits):
        raise ValueError(f"waits must be durations in [0, {MAX_WAIT_S:g}] s")
    t, elapsed, maps = 0.0, [0.0], [read_map(chip, averages=averages, v_read_v=v_read_v)]
    if on_map is not None:
        on_map(0.0, maps[0])
    for w in waits:
        t += chip.wait(w)
        elapsed.append(t)
        maps.append(read_map(chip, averages=averages, v_read_v=v_read_v))
        if on_map is not None:
            on_map(t, maps[-1])
    return np.asarray(elapsed), np.stack(maps)
