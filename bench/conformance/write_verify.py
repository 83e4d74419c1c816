"""Section [write-verify]: the normative algorithm, run by the board, against the host-mode
reference (docs/protocol.md, "Write-verify (normative)")."""
from __future__ import annotations

import math

import numpy as np

from bench.conformance.core import Skip, check, expect
from firmware_iface import messages as msg
from firmware_iface.spec import CellFlag, Opcode
from firmware_iface.write_verify import PulseSchedule, WriteVerifyJob

TOL_NS = 2500


def _ns(x: float) -> int:
    return int(math.floor(float(x) * 1e9 + 0.5))


def _schedule(ctx, max_pulses: int = 60) -> PulseSchedule:
    s = ctx.sandbox
    return PulseSchedule(set_start_v=min(1.2, s.v_set_v), set_max_v=s.v_set_v, set_wl_v=s.v_wl_v,
                         reset_start_v=min(1.2, s.v_reset_v), reset_max_v=s.v_reset_v, reset_wl_v=s.v_wl_v,
                         width_s=s.width_s, v_read_v=s.v_read_v, tolerance_s=TOL_NS * 1e-9,
                         max_pulses=max_pulses)


def _board(ctx, link, sched, rows, cols, targets):
    res, _ = msg.decode_cell_results(link.ok(Opcode.WRITE_VERIFY, msg.encode_write_verify(sched, rows, cols, targets)))
    return res


def _host(ctx, link, sched, rows, cols, targets):
    """The host-mode reference: the normative algorithm driven over READ_CELLS and PULSE."""
    job = WriteVerifyJob(targets, sched)
    while not job.finished:
        idx = job.to_read()
        g = ctx.read(link, rows[idx], cols[idx], averages=sched.read_averages)
        batch = job.step(idx, g)
        if len(batch):
            p = msg.pulse_records(batch.kind, rows[batch.index], cols[batch.index], batch.v_bl_v, batch.v_wl_v,
                                  batch.v_sl_v, batch.width_s)
            link.ok(Opcode.PULSE, msg.encode_pulses(p))
    return job


@check("write-verify", "Board-side WRITE_VERIFY runs the normative algorithm: per-cell pulses, flags and "
                       "reported conductance equal the host-mode reference bit for bit (deterministic chips; "
                       "twin cells from the off state).")
def board_equals_host(ctx):
    link = ctx.link()
    if not ctx.deterministic(link):
        raise Skip("needs a noise-free chip (repeated reads differ)")
    n = 24
    rows, cols = ctx.sandbox.cells(2 * n, 64)
    g0 = ctx.floor(link, rows, cols)
    if not np.all(g0 == g0[0]):
        raise Skip("the twin cells do not start from one conductance")
    info = msg.decode_info(link.ok(Opcode.GET_INFO))
    lv = np.asarray(info.levels_s)
    targets = lv[(np.arange(n) * 5) % lv.size]
    sched = _schedule(ctx)
    job = _host(ctx, link, sched, rows[:n], cols[:n], targets)
    res = _board(ctx, link, sched, rows[n:], cols[n:], targets)
    for what, host, board in (("pulses", job.pulses, res["pulses"]), ("flags", job.flags(), res["flags"]),
                              ("g_s (f32 bits)", job.g.astype("<f4").view("<u4"), res["g_s"].view("<u4"))):
        bad = np.flatnonzero(np.asarray(host) != np.asarray(board))
        expect(bad.size == 0, f"{what} differ from the host-mode reference in {bad.size} of {n} cells",
               np.asarray(host)[bad[:8]].tolist(), np.asarray(board)[bad[:8]].tolist())


@check("write-verify", "The tolerance window is inclusive and compared in integer nS: a cell reading exactly "
                       "target +- tolerance succeeds with 0 pulses; 1 nS beyond it is pulsed (deterministic chips).")
def inclusive_window(ctx):
    link = ctx.link()
    if not ctx.deterministic(link):
        raise Skip("needs a noise-free chip (repeated reads differ)")
    rows, cols = ctx.sandbox.cells(8, 112)
    ctx.floor(link, rows, cols)
    sched = _schedule(ctx)
    _board(ctx, link, sched, rows, cols, np.full(8, 40e-6))
    g = ctx.read(link, rows, cols, averages=sched.read_averages)
    off = np.array([TOL_NS, -TOL_NS, TOL_NS, -TOL_NS, TOL_NS + 1, -(TOL_NS + 1), TOL_NS + 1, -(TOL_NS + 1)])
    targets = np.array([(_ns(x) + o) / 1e9 for x, o in zip(g, off)])
    res = _board(ctx, link, sched, rows, cols, targets)
    edge = np.abs(off) == TOL_NS
    expect(bool(np.all(res["pulses"][edge] == 0) and np.all(res["flags"][edge] & CellFlag.SUCCESS)),
           "cells exactly on the window edge were pulsed or failed", [0] * 4, res["pulses"][edge].tolist())
    expect(bool(np.all(res["pulses"][~edge] >= 1)), "cells 1 nS outside the window were not pulsed",
           ">= 1", res["pulses"][~edge].tolist())


@check("write-verify", "Per-cell results are consistent with the algorithm on any chip: SUCCESS means the "
                       "reported conductance is inside the window (integer nS); a cell that is not SUCCESS "
                       "used max_pulses or is STUCK; pulses never exceed max_pulses; SUCCESS and STUCK exclude "
                       "each other.")
def result_invariants(ctx):
    link = ctx.link()
    rows, cols = ctx.sandbox.cells(24, 120)
    sched = _schedule(ctx, max_pulses=40)
    info = msg.decode_info(link.ok(Opcode.GET_INFO))
    lv = np.asarray(info.levels_s)
    targets = lv[(np.arange(24) * 7) % lv.size]
    res = _board(ctx, link, sched, rows, cols, targets)
    ok = (res["flags"] & CellFlag.SUCCESS) > 0
    stuck = (res["flags"] & CellFlag.STUCK) > 0
    err = np.array([_ns(g) - _ns(t) for g, t in zip(res["g_s"], targets)])
    bad = np.flatnonzero(ok & (np.abs(err) > TOL_NS))
    expect(bad.size == 0, "SUCCESS cells outside their window", f"|err| <= {TOL_NS} nS", err[bad].tolist())
    bad = np.flatnonzero(~ok & ~stuck & (res["pulses"] < sched.max_pulses))
    expect(bad.size == 0, "failed cells that neither used max_pulses nor are STUCK", sched.max_pulses,
           res["pulses"][bad].tolist())
    expect(bool(np.all(res["pulses"] <= sched.max_pulses)), "pulses above max_pulses", sched.max_pulses,
           int(res["pulses"].max()))
    expect(not bool(np.any(ok & stuck)), "cells both SUCCESS and STUCK", 0, int(np.sum(ok & stuck)))
