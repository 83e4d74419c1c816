"""``snnbench campaign``: run, validate, inspect, export and report measurement campaigns.

    snnbench campaign run PLAN.toml --out CAMPAIGN.h5 [--resume | --force] [--workers N]
                          [--scheduler tcp://HOST:PORT] [--window N] [--json]
    snnbench campaign validate PLAN.toml [--json]
    snnbench campaign status CAMPAIGN.h5 [--json]
    snnbench campaign export CAMPAIGN.h5 --csv FILE [--json]
    snnbench campaign report CAMPAIGN.h5 [--out DIR] [--json]

``campaign run --json`` is the one documented exception to "exactly one JSON object": it
prints one JSON object per finished point (a line each, ``"event": "point"``) while the
campaign runs, then one summary object (``"event": "summary"``) as its last line.

Everything is checked before the first point runs, and nothing is written when a check
fails (exit 2): the plan (every problem listed, one line each under a summary line), the
``--out`` path, an existing ``--out`` (refused without ``--resume`` or ``--force``), a
resume with a changed plan (the differences named), a physical station that does not
answer.  Exit codes of ``run``: 0 finished (failed points are counted, not fatal), 1 the
campaign stopped on a failed point (``on_error = "stop"``), 130 / 143 stopped by SIGINT /
SIGTERM (the file is consistent; ``--resume`` continues).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.commands._args import nonneg_int, pos_int
from bench.commands._groups import group
from bench.errors import ConfigError, RunPathError, UsageError
from bench.view.live import add_live_argument, follow


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    g = group(subparsers, "campaign", "measurement campaigns: declarative sweeps, resumable, on dask")
    r = g.add_parser("run", parents=[common], help="run (or resume) a campaign plan",
                     description="Run a campaign plan into one HDF5 file; --json prints one line per "
                                 "finished point and a summary object last.")
    r.add_argument("plan", metavar="PLAN.toml")
    r.add_argument("--out", required=True, metavar="CAMPAIGN.h5", help="campaign file")
    how = r.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_true",
                     help="continue the campaign in --out (committed points are skipped; the plan must be unchanged)")
    how.add_argument("--force", action="store_true", help="overwrite an existing --out")
    r.add_argument("--workers", type=nonneg_int, default=None, metavar="N",
                   help="local dask worker processes (default: number of cores; 0 = in this process)")
    r.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="attach to a running dask scheduler")
    r.add_argument("--window", type=pos_int, default=None, metavar="N",
                   help="points in flight at once (default 2 per worker)")
    add_live_argument(r)
    r.set_defaults(func=run_command)

    v = g.add_parser("validate", parents=[common], help="check a plan (all problems listed), run nothing")
    v.add_argument("plan", metavar="PLAN.toml")
    v.set_defaults(func=validate_command)

    s = g.add_parser("status", parents=[common], help="points done / failed / pending of a campaign file")
    s.add_argument("campaign", metavar="CAMPAIGN.h5")
    s.set_defaults(func=status_command)

    e = g.add_parser("export", parents=[common], help="export the result table (committed rows) as CSV")
    e.add_argument("campaign", metavar="CAMPAIGN.h5")
    e.add_argument("--csv", required=True, metavar="FILE", help="CSV file to write")
    e.add_argument("--force", action="store_true", help="overwrite an existing CSV file")
    e.set_defaults(func=export_command)

    p = g.add_parser("report", parents=[common], help="figures (PNG) and an HTML page of a campaign file")
    p.add_argument("campaign", metavar="CAMPAIGN.h5")
    p.add_argument("--out", metavar="DIR", help="report directory (default: CAMPAIGN_report/ beside the file)")
    p.set_defaults(func=report_command)


# --- helpers ----------------------------------------------------------------------------------
def _plan(path: str, station_flag: str | None):
    from bench.campaign.plan import load_plan

    if station_flag:
        raise UsageError("campaign plans name their station in [station] file = ...; drop --station")
    return load_plan(path)


def _check_out(path: str, *, exists_ok: bool) -> Path:
    """The campaign file path is creatable (a probe file really is created and removed)."""
    from bench.runstore import check_writable

    try:
        out = check_writable(path)
    except RunPathError as exc:
        raise UsageError(f"--out {exc}") from None
    if out.exists() and not exists_ok:
        raise UsageError(f"--out {out}: exists; pass --resume to continue that campaign or --force to overwrite it")
    anc = out.parent if str(out.parent) else Path(".")
    while not anc.exists():
        anc = anc.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".snnbench-probe-", dir=anc)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create files in {anc} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return out


def _check_resume(out: Path, plan) -> None:
    from bench.campaign.plan import plan_difference
    from bench.campaign.store import open_campaign

    try:
        f = open_campaign(out)
    except RunPathError as exc:
        raise UsageError(f"--resume: {exc}") from None
    with f:
        if f.attrs.get("plan_sha256") == plan.sha256:
            return
        try:
            old = json.loads(f.attrs.get("plan_normalised", "{}"))
        except ValueError:
            old = {}
    diff = plan_difference(old, plan.normalised())
    shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
    raise UsageError(f"--resume: {plan.source} differs from the plan in {out}: {shown or 'plan hash differs'}; "
                     f"refusing to mix two plans in one campaign file")


def _check_station(plan) -> str:
    """The station's text for provenance; a physical station must answer a PING (exit 2 if not)."""
    if plan.simulated:
        return "builtin-sim"
    from bench.station import load_station
    from drivers.errors import DriverError
    from drivers.pechip import PEChip
    from serial import SerialException

    st = load_station(plan.station_file)
    try:
        with PEChip(st.chip.url, timeout_s=min(st.chip.timeout_s, 2.0), retries=1, limits=st.limits) as chip:
            chip.ping(b"campaign")
    except (DriverError, SerialException, OSError, ValueError) as exc:
        raise ConfigError(f"station {plan.station_file}: chip at {st.chip.url} is unreachable "
                          f"({' '.join(str(exc).split())})") from None
    return Path(plan.station_file).read_text()


def _needs_data(plan) -> bool:
    return any(s.procedure == "infer" for s in plan.steps)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


# --- run ----------------------------------------------------------------------------------------
def run_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench.campaign import engine
    from bench.campaign.store import CampaignStore

    plan = _plan(args.plan, args.station)
    out = _check_out(args.out, exists_ok=args.resume or args.force)
    resuming = args.resume and out.exists()
    if resuming:
        _check_resume(out, plan)
    if args.scheduler and args.workers is not None:
        raise UsageError("--workers applies to the local cluster; with --scheduler the cluster's workers run the points")
    if args.scheduler and not args.scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
        raise UsageError(f"--scheduler {args.scheduler!r}: expected an address like tcp://HOST:PORT")
    station_text = _check_station(plan)
    if args.scheduler:
        engine.check_scheduler(plan, args.scheduler)
    data_dir = None
    if _needs_data(plan):
        from bench.demo import synthetic_set

        data_dir = str(synthetic_set(0))

    follow(args, out)
    store = CampaignStore.reopen(out, plan) if resuming else CampaignStore.create(out, plan, station_text)
    bar = None
    json_lines = bool(args.json)
    counts = {"ok": 0, "failed": 0}

    def on_start(n: int, done: int) -> None:
        nonlocal bar
        if not json_lines:
            from tqdm import tqdm

            bar = tqdm(total=n, initial=done, desc=plan.name, unit="pt", disable=None, file=sys.stderr)

    def on_point(res, committed: bool) -> None:
        if committed:
            counts["failed" if res.status else "ok"] += 1
        if json_lines:
            line = {"event": "point", "index": res.index, "status": ["ok", "failed", "skipped"][res.status],
                    "committed": committed, "error": res.error, "wall_s": res.wall_s,
                    "axes": plan.axis_values(res.index), "results": _clean(res.scalars)}
            print(json.dumps(_clean(line), allow_nan=False, default=str), flush=True)
        elif bar is not None:
            bar.set_postfix(failed=counts["failed"], refresh=False)
            bar.update(1 if committed else 0)

    summary = None
    try:
        summary = engine.run(plan, store, engine.EngineOptions(
            workers=args.workers, scheduler=args.scheduler, window=args.window,
            on_point=on_point, on_start=on_start), data_dir)
    except BaseException as exc:
        store.finish("failed" if not isinstance(exc, KeyboardInterrupt) else "stopped", "fail",
                     " ".join(f"{type(exc).__name__}: {exc}".split()))
        raise
    finally:
        if bar is not None:
            bar.close()
        if summary is not None:
            store.finish(summary.state, {"finished": "success", "stopped": "abort"}.get(summary.state, "fail"),
                         summary.reason)
        store.close()
    from bench.campaign.store import status_counts

    st = status_counts(out)
    code = {"finished": 0, "failed": 1}.get(summary.state, 130)
    if summary.state == "stopped" and "SIGTERM" in summary.reason:
        code = 143
    result = {"event": "summary", "out": str(out), "state": summary.state, "reason": summary.reason,
              "n_points": st["n_points"], "done": st["done"], "failed": st["failed"], "pending": st["pending"],
              "committed_this_run": summary.committed_now, "duplicates_dropped": summary.duplicates,
              "resubmitted": summary.resubmitted, "workers": summary.workers, "wall_s": summary.wall_s,
              "sum_point_wall_s": summary.point_wall_s, "bytes_per_point": summary.bytes_per_point,
              "plan_sha256": plan.sha256, "exit_code": code}
    result["summary"] = (f"campaign {plan.name}: {summary.state}{' (' + summary.reason + ')' if summary.reason else ''}"
                         f" - {st['done']} done, {st['failed']} failed, {st['pending']} pending of "
                         f"{st['n_points']}; {summary.wall_s:.1f} s on {summary.workers} worker(s); file {out}")
    return result


# --- validate / status / export ------------------------------------------------------------------
def validate_command(args: argparse.Namespace) -> dict[str, Any]:
    plan = _plan(args.plan, args.station)
    _check_station(plan)
    out = {"plan": plan.source, "name": plan.name, "valid": True, "n_points": plan.n_points,
           "grid_shape": list(plan.grid_shape), "steps": [f"{s.name} ({s.procedure})" for s in plan.steps],
           "axes": [{"name": a.name, "param": a.param, "n": len(a.values), "unit": a.unit, "zip": a.zip}
                    for a in plan.axes],
           "result_columns": plan.result_columns(), "station": plan.station_file or "builtin-sim",
           "plan_sha256": plan.sha256}
    out["summary"] = (f"{plan.source}: valid; {plan.n_points} points (grid {' x '.join(map(str, plan.grid_shape))}), "
                      f"steps {', '.join(out['steps'])}")
    return out


def status_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench.campaign.store import status_counts

    st = status_counts(args.campaign)
    st["summary"] = (f"{args.campaign}: {st['name']} {st['state']} - {st['done']} done, {st['failed']} failed, "
                     f"{st['pending']} pending of {st['n_points']}"
                     + "".join(f"\n  point {e['index']}: {e['error']}" for e in st["errors"]))
    return st


def export_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench.campaign.store import read_table, table_order

    cols, attrs = read_table(args.campaign)
    dest = _check_out(args.csv, exists_ok=args.force)
    order = table_order(json.loads(attrs["result_columns"]), json.loads(attrs["axes"]))
    n = len(cols["index"])
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(order)
            for i in range(n):
                row = []
                for c in order:
                    v = cols[c][i]
                    if c == "status":
                        v = ["ok", "failed", "skipped"][int(v)]
                    elif isinstance(v, (float,)) or getattr(v, "dtype", None) is not None and v.dtype.kind == "f":
                        v = "" if not math.isfinite(float(v)) else repr(float(v))
                    row.append(v)
                w.writerow(row)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return {"csv": str(dest), "rows": n, "columns": order,
            "summary": f"{n} rows x {len(order)} columns -> {dest}"}


def report_command(args: argparse.Namespace) -> dict[str, Any]:
    from bench.campaign.report import make_report

    out = args.out or str(Path(args.campaign).with_suffix("")) + "_report"
    return make_report(args.campaign, out)
