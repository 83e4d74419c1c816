"""Incremental-step write-verify: the pulse schedule and the per-cell state machine.

One definition serves both modes: the host-driven mode runs :class:`WriteVerifyJob` on the
host with READ_CELLS / PULSE round trips; the board runs the same state machine in its
firmware for WRITE_VERIFY (the virtual firmware literally runs this class).  No I/O here.

Per cell, each iteration: read (averaged) -> if within the verify window, optionally confirm
with one more read, then done; otherwise apply a SET pulse (too low) or a RESET pulse (too
high).  Consecutive pulses in one direction ramp the voltage by ``*_step_v`` up to
``*_max_v``; a change of direction restarts at ``*_start_v`` (NeuRRAM's scheme).  A cell
stops as *failed* after ``max_pulses``, and is flagged *stuck* when it never moved by more
than ``stuck_window_s`` while pulsed (or sat ``stuck_pulses`` pulses at the maximum voltage
without moving).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from firmware_iface.records import pack, unpack
from firmware_iface.spec import CellFlag, PulseKind, ScheduleFlag


@dataclass(frozen=True)
class PulseSchedule:
    """Write-verify pulse schedule (SI units). Defaults follow NeuRRAM (DESIGN.md section 2)."""

    set_start_v: float = 1.2
    set_step_v: float = 0.1
    set_max_v: float = 4.0
    set_wl_v: float = 1.8
    """Word-line (gate) voltage during SET: sets the compliance current."""
    reset_start_v: float = 1.2
    reset_step_v: float = 0.1
    reset_max_v: float = 4.0
    reset_wl_v: float = 3.3
    width_s: float = 1e-6
    v_read_v: float = 0.2
    tolerance_s: float = 2.5e-6
    """Verify window half-width (S); crosses the wire as integer nS, the window is inclusive."""
    max_pulses: int = 200
    read_averages: int = 4
    confirm_read: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"PulseSchedule.{f.name} must be finite and > 0, got {v!r}")
        for start, top in (("set_start_v", "set_max_v"), ("reset_start_v", "reset_max_v")):
            if getattr(self, start) > getattr(self, top):
                raise ValueError(f"PulseSchedule start voltage above its maximum: {start} = "
                                 f"{getattr(self, start):g} V > {top} = {getattr(self, top):g} V")
        if self.max_pulses > 0xFFFF or self.read_averages > 0xFFFF:
            raise ValueError("PulseSchedule max_pulses / read_averages must fit 16 bits")

    # --- wire form -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        mv = lambda v: int(round(v * 1e3))  # noqa: E731
        return pack(
            "SCHEDULE",
            set_start_mv=mv(self.set_start_v), set_step_mv=mv(self.set_step_v),
            set_max_mv=mv(self.set_max_v), set_wl_mv=mv(self.set_wl_v),
            reset_start_mv=mv(self.reset_start_v), reset_step_mv=mv(self.reset_step_v),
            reset_max_mv=mv(self.reset_max_v), reset_wl_mv=mv(self.reset_wl_v),
            width_ns=int(round(self.width_s * 1e9)), v_read_uv=int(round(self.v_read_v * 1e6)),
            tolerance_ns=int(to_nano_siemens(self.tolerance_s)), max_pulses=self.max_pulses,
            read_averages=self.read_averages,
            flags=int(ScheduleFlag.CONFIRM_READ) if self.confirm_read else 0,
        )

    @classmethod
    def from_bytes(cls, payload: bytes, offset: int = 0) -> tuple["PulseSchedule", int]:
        r, off = unpack("SCHEDULE", payload, offset)
        v = lambda k: int(r[k]) / 1000.0  # noqa: E731  (exact for whole mV)
        return cls(
            set_start_v=v("set_start_mv"), set_step_v=v("set_step_mv"), set_max_v=v("set_max_mv"),
            set_wl_v=v("set_wl_mv"), reset_start_v=v("reset_start_mv"),
            reset_step_v=v("reset_step_mv"), reset_max_v=v("reset_max_mv"),
            reset_wl_v=v("reset_wl_mv"), width_s=int(r["width_ns"]) / 1e9,
            v_read_v=int(r["v_read_uv"]) / 1e6, tolerance_s=int(r["tolerance_ns"]) / 1e9,
            max_pulses=int(r["max_pulses"]), read_averages=int(r["read_averages"]),
            confirm_read=bool(int(r["flags"]) & ScheduleFlag.CONFIRM_READ),
        ), off

    def quantised(self) -> "PulseSchedule":
        """The schedule as the board sees it after the wire's mV / ns / uV rounding."""
        return PulseSchedule.from_bytes(self.to_bytes())[0]


@dataclass
class PulseBatch:
    """Pulses to apply, in order (arrays of equal length; SI units)."""

    index: np.ndarray
    """Index of the cell in the job's target list."""
    kind: np.ndarray
    """PulseKind.SET or PulseKind.RESET."""
    v_bl_v: np.ndarray
    v_wl_v: np.ndarray
    v_sl_v: np.ndarray
    width_s: np.ndarray

    def __len__(self) -> int:
        return int(self.index.size)


def to_nano_siemens(g_s) -> np.ndarray:
    """Conductance (S) -> integer nano-siemens, the exact representation write-verify compares.

    Normative rule (both modes, every target, tolerance and read): ``floor(x * 1e9 + 0.5)``
    evaluated in IEEE-754 double precision.
    """
    return np.floor(np.asarray(g_s, dtype=np.float64) * 1e9 + 0.5).astype(np.int64)


def as_reported(g_s) -> np.ndarray:
    """A measured conductance as READ_CELLS reports it: rounded to float32 (returned as float64)."""
    return np.asarray(g_s, dtype=np.float64).astype(np.float32).astype(np.float64)


class WriteVerifyJob:
    """Vectorised write-verify state machine over many cells (see module docstring).

    All decisions use integers: conductances in nS (reads rounded to float32 first, as the
    wire reports them, then :func:`to_nano_siemens`), voltages in mV, widths in ns, taken
    from the schedule's wire record.  Host mode and board mode therefore decide identically.
    """

    stuck_window_ns = 1000
    """A cell that never moved by more than this (nS) while pulsed is STUCK."""
    stuck_pulses = 12
    """Pulses at the maximum voltage without moving by more than ``stuck_window_ns``: STUCK."""

    def __init__(self, targets_s: np.ndarray, schedule: PulseSchedule) -> None:
        self._init(to_nano_siemens(np.ravel(targets_s)), schedule)

    @classmethod
    def from_nano_siemens(cls, targets_ns: np.ndarray, schedule: PulseSchedule) -> "WriteVerifyJob":
        """A job whose targets arrive as integer nS (the TARGET record)."""
        job = cls.__new__(cls)
        job._init(np.asarray(targets_ns, dtype=np.int64).ravel(), schedule)
        return job

    def _init(self, targets_ns: np.ndarray, schedule: PulseSchedule) -> None:
        self.targets_ns = targets_ns
        self.targets = targets_ns / 1e9
        self.s = schedule
        r, _ = unpack("SCHEDULE", schedule.to_bytes())
        self._w = {k: int(r[k]) for k in r.dtype.names if not k.startswith("_")}
        n = targets_ns.size
        self.pulses = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        self.success = np.zeros(n, dtype=bool)
        self.stuck = np.zeros(n, dtype=bool)
        self.confirm_failed = np.zeros(n, dtype=bool)
        self.g = np.full(n, np.nan)
        self._pending_confirm = np.zeros(n, dtype=bool)
        self._dir = np.zeros(n, dtype=np.int8)
        self._v_mv = np.zeros(n, dtype=np.int64)
        self._gmin = np.zeros(n, dtype=np.int64)
        self._gmax = np.zeros(n, dtype=np.int64)
        self._at_max = np.zeros(n, dtype=np.int64)
        self._g_at_max = np.zeros(n, dtype=np.int64)
        self.iterations = 0

    @property
    def finished(self) -> bool:
        return bool(self.done.all())

    def to_read(self) -> np.ndarray:
        """Indices of the cells whose conductance the next iteration needs."""
        return np.flatnonzero(~self.done)

    def step(self, idx: np.ndarray, g_read_s: np.ndarray) -> PulseBatch:
        """Feed reads of cells ``idx``; returns the pulses to apply before the next read."""
        w = self._w
        idx = np.asarray(idx, dtype=np.int64)
        g = as_reported(g_read_s)
        g_ns = to_nano_siemens(g)
        self.iterations += 1
        self.g[idx] = g
        err = g_ns - self.targets_ns[idx]
        inside = np.abs(err) <= w["tolerance_ns"]
        pulsed = self.pulses[idx] > 0
        self._gmin[idx] = np.where(pulsed, np.minimum(self._gmin[idx], g_ns), g_ns)
        self._gmax[idx] = np.where(pulsed, np.maximum(self._gmax[idx], g_ns), g_ns)

        confirm = bool(w["flags"] & ScheduleFlag.CONFIRM_READ)
        confirmed = inside & (self._pending_confirm[idx] | (not confirm))
        self.confirm_failed[idx[self._pending_confirm[idx] & ~inside]] = True
        self._pending_confirm[idx] = inside & ~confirmed
        ok = idx[confirmed]
        self.done[ok] = True
        self.success[ok] = True

        out = ~inside
        exhausted = out & (self.pulses[idx] >= w["max_pulses"])
        # stuck: pulsed at the maximum voltage for stuck_pulses without moving
        moved_at_max = np.abs(g_ns - self._g_at_max[idx]) > self.stuck_window_ns
        at_max_stuck = out & (self._at_max[idx] >= self.stuck_pulses) & ~moved_at_max
        stop = exhausted | at_max_stuck
        never_moved = (self._gmax[idx] - self._gmin[idx]) <= self.stuck_window_ns
        si = idx[stop]
        self.done[si] = True
        self.stuck[si] = at_max_stuck[stop] | never_moved[stop]

        go = out & ~stop
        gi = idx[go]
        is_set = err[go] < 0
        direction = np.where(is_set, 1, -1).astype(np.int8)
        same = direction == self._dir[gi]
        start = np.where(is_set, w["set_start_mv"], w["reset_start_mv"])
        stepv = np.where(is_set, w["set_step_mv"], w["reset_step_mv"])
        vmax = np.where(is_set, w["set_max_mv"], w["reset_max_mv"])
        v = np.where(same, np.minimum(self._v_mv[gi] + stepv, vmax), start)
        hit_max = v >= vmax
        newly = hit_max & ~(same & (self._at_max[gi] > 0))
        self._g_at_max[gi[newly]] = g_ns[go][newly]
        self._at_max[gi] = np.where(hit_max, self._at_max[gi] + 1, 0)
        self._dir[gi] = direction
        self._v_mv[gi] = v
        self.pulses[gi] += 1
        zeros = np.zeros(gi.size, dtype=np.int64)
        wl = np.where(is_set, w["set_wl_mv"], w["reset_wl_mv"])
        return PulseBatch(
            index=gi,
            kind=np.where(is_set, PulseKind.SET, PulseKind.RESET).astype(np.uint8),
            v_bl_v=np.where(is_set, v, zeros) / 1000.0,
            v_wl_v=wl / 1000.0,
            v_sl_v=np.where(is_set, zeros, v) / 1000.0,
            width_s=np.full(gi.size, w["width_ns"]) / 1e9,
        )

    def flags(self) -> np.ndarray:
        f = np.zeros(self.targets_ns.size, dtype=np.uint8)
        f[self.success] |= int(CellFlag.SUCCESS)
        f[self.stuck] |= int(CellFlag.STUCK)
        f[self.confirm_failed] |= int(CellFlag.CONFIRM_FAILED)
        return f
