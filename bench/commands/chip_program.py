"""``snnbench chip program`` and ``snnbench chip read`` (issue 4).

    snnbench chip program [--chip URL] (--weights W.npy | --levels L.npy) [--tolerance-us 5]
                          [--mode host|board] [--resume | --force] --out RUN.h5 [--json]
    snnbench chip read [--chip URL] [--repeats N] [--averages A] [--wait-s S ...] --out RUN.h5 [--json]

Everything that can be checked (input files, shapes, NaN/inf, level range, tolerance,
schedule against the station limits, the run file path, resume consistency) is checked
before the link is opened or the run file is created.  Programming appends each finished
batch of cells to the run file and flushes it, so an interruption leaves a readable file with
the cells done so far; ``--resume`` reads back the cells recorded as done (one averaged array
read), re-queues those no longer within tolerance, and programs them with the remaining cells.
The default pulse schedule is capped at the station limits (recorded in the run file);
explicit overrides beyond a limit are an error.  Without ``--resume``, an existing ``--out``
file is only overwritten with ``--force``.
"""
from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import mapping as M
from bench.commands._groups import group
from bench.errors import DataFormatError, RunStoreError, UsageError
from bench.npyfile import load_npy
from bench.commands._args import MAX_WAIT_S, PROGRAM_MODES, add_chip_argument, int_range, pos_float
from bench.view.live import add_live_argument, follow

# bench.programming (the driver) and bench.runstore (h5py) are imported where they are used,
# so that registering this command stays cheap (``snnbench --help``, usage errors).

MAX_REPEATS = 100_000
"""Most whole-array reads one ``chip read`` keeps (12 KB each in the run file)."""
PROGRAM_KIND = "chip_program"
READ_KIND = "chip_read"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    chip = group(subparsers, "chip", "the PE-macro chip: info, program, read")
    p = chip.add_parser("program", parents=[common], help="program weights or a level map by write-verify",
                        description="Program a weight matrix or a level map into the array by write-verify.")
    add_chip_argument(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="W.npy", help="signed weights (rows<=128, neurons<=12), .npy")
    src.add_argument("--levels", metavar="L.npy", help="level indices (128 x 24 ints in 0..15), .npy")
    p.add_argument("--tolerance-us", type=float, default=5.0,
                   help="acceptance tolerance in uS (default 5; the verify window is half of it)")
    p.add_argument("--mode", choices=PROGRAM_MODES, default="board",
                   help="board: on-board write-verify (default); host: host-driven pulses and reads")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (cells recorded as done are read back "
                        "and re-programmed when no longer within tolerance)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file (without --resume)")
    p.add_argument("--out", required=True, metavar="RUN.h5", help="run file")
    p.add_argument("--bad-cells", metavar="RUN.h5",
                   help="route weights around the stuck cells found by a previous program run (--weights only)")
    p.add_argument("--clamp", type=pos_float, default=3.0, help="weight clamp of the layer (default 3)")
    p.add_argument("--batch", type=int_range(1, 3072, "the array has 128 x 24 = 3,072 cells"), default=1024, help="cells per unit of work / flush (default 1024)")
    p.add_argument("--traces", action="store_true", help="record per-pulse traces (host mode)")
    add_live_argument(p)
    p.add_argument("--no-probe", action="store_true",
                   help="skip the stuck probe of cells already inside the verify window")
    for flag, field, unit in (("--set-start-v", "set_start_v", "V"), ("--reset-start-v", "reset_start_v", "V"),
                              ("--set-max-v", "set_max_v", "V"), ("--reset-max-v", "reset_max_v", "V"),
                              ("--set-wl-v", "set_wl_v", "V"), ("--reset-wl-v", "reset_wl_v", "V"),
                              ("--width-s", "width_s", "s"), ("--max-pulses", "max_pulses", ""),
                              ("--read-averages", "read_averages", "")):
        p.add_argument(flag, dest=f"sched_{field}", type=int if unit == "" else float, default=None,
                       help=f"override the pulse schedule's {field}" + (f" ({unit})" if unit else "")
                       + ("; the default is capped at the station limit" if unit == "V" else ""))
    p.set_defaults(func=program_command)

    r = chip.add_parser("read", parents=[common], help="read the conductance map (repeats, retention)",
                        description="Read the conductance map, optionally repeatedly and after chip-time waits.")
    add_chip_argument(r)
    r.add_argument("--repeats", type=int, default=1, help="whole-array reads (default 1)")
    r.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    r.add_argument("--averages", type=int, default=8, help="on-board averages per read (default 8)")
    r.add_argument("--v-read", type=float, default=0.2, help="read voltage in V (default 0.2)")
    r.add_argument("--wait-s", type=float, nargs="*", default=[], metavar="S",
                   help=f"retention: read again after each of these waits (chip seconds, cumulative; "
                        f"each <= {MAX_WAIT_S:g})")
    r.add_argument("--out", required=True, metavar="RUN.h5", help="run file")
    add_live_argument(r)
    r.set_defaults(func=read_command)


# --- helpers ---------------------------------------------------------------------------------
MAX_NPY_ELEMENTS = 1 << 16
"""Largest weights / levels array accepted (elements): far above the 128 x 24 = 3,072 cells."""


def _load_npy(path: str, what: str) -> np.ndarray:
    return load_npy(path, what, MAX_NPY_ELEMENTS)


def _bad_cells(args) -> np.ndarray | None:
    from bench.runstore import open_run

    if not getattr(args, "bad_cells", None):
        return None
    if not args.weights:
        raise UsageError("--bad-cells applies to --weights (a level map is programmed as given)")
    try:
        with open_run(args.bad_cells) as h5:
            if h5.attrs.get("kind") != PROGRAM_KIND or "maps/stuck" not in h5 or "maps/readback_s" not in h5:
                raise DataFormatError(f"{args.bad_cells}: not a finished chip program run (no maps/stuck)")
            return M.bad_cells_map(h5["maps/stuck"][()], h5["maps/readback_s"][()])
    except RunStoreError as exc:
        raise DataFormatError(str(exc)) from None


def _mapping(args, levels_s=None, rows: int = 128, columns: int = 24) -> M.LayerMapping:
    try:
        if args.weights:
            return M.map_weights(_load_npy(args.weights, "weights"), levels_s=levels_s, rows=rows,
                                 columns=columns, clamp=args.clamp, bad_cells_s=_bad_cells(args))
        return M.map_levels(_load_npy(args.levels, "levels"), levels_s=levels_s, rows=rows, columns=columns)
    except M.MappingError as exc:
        raise DataFormatError(f"{args.weights or args.levels}: {exc}") from None


def _schedule(args, limits) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The pulse schedule: defaults adapted to the station ``limits`` (recorded), explicit
    overrides as given; checked against the limits (LimitError, exit 2)."""
    from bench import programming as P

    tol = args.tolerance_us
    if not np.isfinite(tol) or tol <= 0:
        raise UsageError(f"--tolerance-us must be a finite value > 0, got {tol!r}")
    over = {k[6:]: v for k, v in vars(args).items() if k.startswith("sched_") and v is not None}
    try:
        schedule = P.default_schedule(tol * 1e-6, limits=limits, **over)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"pulse schedule: {exc}") from None
    P.validate_schedule(schedule, limits)
    return schedule, P.station_adjustments(limits, **over)


class _DeferSigint:
    """Hold SIGINT while a batch is written and flushed, then deliver it (QCoDeS-style)."""

    def __init__(self) -> None:
        self.pending = False
        self.active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> "_DeferSigint":
        if self.active:
            self._old = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        self.pending = True

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self._old)
            if self.pending:
                raise KeyboardInterrupt


def _out_path(path: str, *, overwrite: bool = True) -> Path:
    """The run file path, checked before any work (a bad path is an input error: exit 2).

    Besides the permission checks, a probe file is really created (and removed) in the
    nearest existing directory, so file systems that refuse new files (``/proc``, read-only
    mounts, full disks) fail here rather than after the link is open.  ``overwrite=False``
    refuses an existing file."""
    from bench.runstore import check_writable

    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{path}: {parent} is not a directory; cannot create the run file")
    try:
        out = check_writable(path)
    except RunStoreError as exc:
        raise UsageError(str(exc)) from None
    if not overwrite and out.exists():
        raise UsageError(f"{out}: exists; pass --force to overwrite it (or --resume to continue that run)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".snnbench-probe-", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"{path}: cannot create files in {parent} ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return out


INFLIGHT = "journal/inflight"
"""Indices of the batch being programmed: written (and flushed) before the batch is sent,
emptied with the flush that records it."""


def _inflight(path: Path, previous: np.ndarray) -> np.ndarray:
    """Cells journalled as in flight by an interrupted session and not recorded as done."""
    from bench.runstore import open_run

    with open_run(path) as h5:
        idx = h5[INFLIGHT][()].astype(np.int64) if INFLIGHT in h5 else np.zeros(0, np.int64)
    return idx[~np.isin(idx, previous["index"])] if previous.size else idx


def _previous(path: Path, targets: np.ndarray) -> np.ndarray | None:
    """Stored cell records of a run to resume (checked against the new targets)."""
    from bench import programming as P
    from bench.runstore import open_run

    if not path.exists():
        return None
    with open_run(path) as h5:
        if h5.attrs.get("kind") != PROGRAM_KIND:
            raise UsageError(f"{path}: is not a chip program run (kind {h5.attrs.get('kind')!r}); cannot resume")
        if "targets/target_s" not in h5:
            return np.zeros(0, P.CELL_DTYPE)
        old = h5["targets/target_s"][()]
        if old.shape != targets.shape or not np.allclose(old, targets, rtol=0, atol=1e-12):
            raise UsageError(f"{path}: holds a run with different targets; cannot resume with these")
        return h5["cells"][()] if "cells" in h5 else np.zeros(0, P.CELL_DTYPE)


# --- program -----------------------------------------------------------------------------------
def program_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench import programming as P
    from bench.runstore import RunFile
    from bench.session import open_bench
    from bench.station import load_station

    # 1. validate everything before touching the link or the file system
    station = load_station(args.station)
    schedule, adjusted = _schedule(args, station.limits)
    if args.bad_cells and not args.weights:
        raise UsageError("--bad-cells applies to --weights (a level map is programmed as given)")
    mapping = _mapping(args)
    if args.batch < 1:
        raise UsageError("--batch must be >= 1")
    out = _out_path(args.out, overwrite=args.resume or args.force)
    previous = _previous(out, mapping.targets_s.ravel()) if args.resume else None
    tol_s = args.tolerance_us * 1e-6
    follow(args, out)

    with open_bench(args.station, args.chip) as b:
        chip = b.chip
        info = chip.info()
        if (info.rows, info.columns) != mapping.target_levels.shape or not np.allclose(info.levels_s, mapping.levels_s):
            mapping = _mapping(args, levels_s=info.levels_s, rows=info.rows, columns=info.columns)
            if previous is not None:
                previous = _previous(out, mapping.targets_s.ravel())
        chip.check_schedule(schedule)
        targets = mapping.targets_s
        rr, cc = np.indices(targets.shape)
        rows, cols, tflat = rr.ravel(), cc.ravel(), targets.ravel()
        skip = np.zeros(tflat.size, bool)
        resumed, requeued = 0, np.zeros(0, np.int64)
        inflight = _inflight(out, previous) if previous is not None else np.zeros(0, np.int64)
        recovered = np.zeros(0, P.CELL_DTYPE)
        if previous is not None and (previous.size or inflight.size):
            # Re-verify what the file says is done (one averaged array read): relaxation and
            # drift between sessions, or a different session/board state, make stale records.
            # The same read tells which in-flight cells the board finished: those within
            # tolerance are recorded, not pulsed again (no extra wear).
            readback = P.read_map(chip, averages=max(8, schedule.read_averages), v_read_v=schedule.v_read_v)
            keep, _ = P.reverify(chip, previous, tol_s, readback=readback)
            resumed = int(previous.size)
            requeued = previous["index"][~keep].astype(np.int64)
            recovered = P.recover_inflight(readback, inflight, rows, cols, tflat, tol_s)
            previous = np.concatenate([previous[keep], recovered])
            skip[previous["index"]] = True
        mode = "a" if previous is not None else "w"
        with RunFile(out, PROGRAM_KIND, mode=mode, station=station.as_dict(),
                     seeds={"chip_seed": station.chip.seed, "run_seed": station.chip.run_seed},
                     chip_url=b.chip_url, chip_info=info.as_dict() if hasattr(info, "as_dict") else str(info),
                     mode_used=args.mode, tolerance_s=tol_s) as run:
            if mode == "w" or "targets/target_s" not in run.h5:
                run.write("targets/target_s", tflat, units="S")
                run.write("targets/row", rows.astype(np.int16))
                run.write("targets/col", cols.astype(np.int16))
                run.write("targets/level", mapping.target_levels, units="level index")
                run.write("maps/target_s", targets, units="S")
                if mapping.weights is not None:
                    run.write("mapping/weights", mapping.weights, units="weight")
                    run.write("mapping/quantised_weights", mapping.quantised_weights, units="weight")
                run.set_attrs("mapping", **mapping.as_attrs())
                run.set_attrs("schedule", **{k: getattr(schedule, k) for k in schedule.__dataclass_fields__},
                              station_capped=adjusted)
                run.flush()
            if "cells" not in run.h5:
                run.append("cells", np.zeros(0, P.CELL_DTYPE), units="S (target_s, g_s)")
                run.flush()
            elif requeued.size:
                with _DeferSigint():            # drop the stale records: those cells are redone
                    ds = run.h5["cells"]
                    stored = ds[()]
                    kept = stored[~np.isin(stored["index"], requeued)]
                    ds.resize(kept.shape[0], axis=0)
                    ds[:] = kept
                    run.touch("cells")
                    ds.attrs["requeued_total"] = int(ds.attrs.get("requeued_total", 0)) + int(requeued.size)
                    run.flush()

            if recovered.size or inflight.size:
                with _DeferSigint():            # the in-flight batch of the interrupted session
                    run.append("cells", recovered)
                    run.write(INFLIGHT, np.zeros(0, np.int32), units="index")
                    ds = run.h5["cells"]
                    ds.attrs["recovered_total"] = int(ds.attrs.get("recovered_total", 0)) + int(recovered.size)
                    run.flush()

            def on_send(sel: np.ndarray) -> None:
                with _DeferSigint():
                    run.write(INFLIGHT, sel.astype(np.int32), units="index")
                    run.flush()

            def on_batch(sel: np.ndarray, res: P.ProgramResult, traces: np.ndarray | None) -> None:
                with _DeferSigint():
                    run.append("cells", res.records(sel))
                    if traces is not None and traces.size:
                        run.append("traces", traces, units="S, V")
                    run.write(INFLIGHT, np.zeros(0, np.int32), units="index")
                    run.flush()

            res = P.program_cells(chip, rows, cols, tflat, schedule, mode=args.mode, batch_cells=args.batch,
                                  probe=not args.no_probe, traces=args.traces, skip=skip, on_batch=on_batch,
                                  on_send=on_send)
            if previous is not None and previous.size:
                res.fill(previous)
            readback = P.read_map(chip, averages=max(8, schedule.read_averages), v_read_v=schedule.v_read_v)
            shape = targets.shape
            run.write("maps/g_verify_s", res.as_map(res.g_s, shape), units="S")
            run.write("maps/readback_s", readback, units="S")
            run.write("maps/pulses", res.as_map(res.pulses.astype(float), shape), units="pulses")
            run.write("maps/success", res.as_map(res.success.astype(float), shape) > 0)
            run.write("maps/stuck", res.as_map(res.stuck.astype(float), shape) > 0)
            if mapping.weights is not None:
                r_used, n_used = mapping.shape
                run.write("mapping/effective_weights",
                          M.effective_weights(readback, mapping.scale_s)[:r_used, :n_used], units="weight")
            summary = P.summarise(res, tol_s, readback)
            link = res.link
            summary.update({
                "round_trips": int(link.round_trips), "bytes": int(link.bytes_tx + link.bytes_rx),
                "modelled_seconds": float(res.modelled_seconds(station.link.baud, station.link.latency_s)),
                "chip_seconds": float(link.chip_seconds), "host_seconds": float(res.host_seconds),
                "wall_seconds": float(res.wall_seconds), "mode": args.mode, "resumed_cells": resumed,
                "requeued_cells": int(requeued.size), "recovered_inflight_cells": int(recovered.size), "schedule_station_capped": adjusted,
                "scale_s": float(mapping.scale_s), "out": str(out),
            })
            run.set_attrs("summary", **summary)
    return summary


# --- read ----------------------------------------------------------------------------------------
def read_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench import programming as P
    from bench.runstore import RunFile
    from bench.session import open_bench
    from bench.station import load_station

    station = load_station(args.station)
    if not 1 <= args.repeats <= MAX_REPEATS:
        raise UsageError(f"--repeats must be in 1..{MAX_REPEATS} (each repeat is one whole-array read "
                         f"kept in the run file), got {args.repeats}")
    if not 1 <= args.averages <= 0xFFFF:
        raise UsageError(f"--averages must be in [1, 65535], got {args.averages}")
    station.limits.check("read voltage", args.v_read, "v_read_max_v", low=1e-3)
    waits = list(args.wait_s or [])
    bad = [w for w in waits if not np.isfinite(w) or not 0 <= w <= MAX_WAIT_S]
    if bad:
        raise UsageError(f"--wait-s values must be durations in [0, {MAX_WAIT_S:g}] s, got {bad[0]!r}")
    out = _out_path(args.out, overwrite=args.force)
    follow(args, out)
    t0 = time.process_time()
    with open_bench(args.station, args.chip) as b:
        chip = b.chip
        info = chip.info()
        before = chip.stats.snapshot()
        with RunFile(out, READ_KIND, station=station.as_dict(),
                     seeds={"chip_seed": station.chip.seed, "run_seed": station.chip.run_seed},
                     chip_url=b.chip_url, chip_info=info.as_dict() if hasattr(info, "as_dict") else str(info),
                     averages=args.averages, v_read_v=args.v_read) as run:
            def keep(i, m):
                with _DeferSigint():
                    run.append("maps/g_s", m[None], units="S")
                    run.flush()

            stats = P.read_noise(chip, args.repeats, averages=args.averages, v_read_v=args.v_read, on_map=keep)
            run.write("maps/mean_s", stats.mean_s, units="S")
            run.write("maps/std_s", stats.std_s, units="S")
            summary = stats.summary()
            if waits:
                def keep_ret(t, m):
                    with _DeferSigint():
                        run.append("retention/g_s", m[None], units="S")
                        run.append("retention/elapsed_s", np.array([t]), units="s")
                        run.flush()

                elapsed, maps = P.retention(chip, waits, averages=args.averages, v_read_v=args.v_read,
                                            on_map=keep_ret)
                d = maps[1:] - maps[:1]
                summary["retention"] = [{"elapsed_s": float(t), "mean_shift_us": float(x.mean() * 1e6),
                                         "std_shift_us": float(x.std() * 1e6)} for t, x in zip(elapsed[1:], d)]
            link = chip.stats.since(before)
            summary.update({"round_trips": int(link.round_trips), "bytes": int(link.bytes_tx + link.bytes_rx),
                            "modelled_seconds": float(link.modelled_seconds(station.link.baud, station.link.latency_s)),
                            "host_seconds": float(time.process_time() - t0), "out": str(out)})
            run.set_attrs("summary", **{k: (np.nan if v is None else v) for k, v in summary.items()
                                        if k != "retention"})
    return summary
