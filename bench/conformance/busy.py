"""Section [busy]: BUSY acknowledgements of long jobs, STATUS polling, deadlines."""
from __future__ import annotations

import time

import numpy as np

from bench.conformance.core import Skip, check, expect
from firmware_iface import messages as msg
from firmware_iface.spec import REGISTER_BY_NAME, Opcode, Status
from firmware_iface.spec_text import ACK_S, READ_TIME_S, SLACK_S
from firmware_iface.write_verify import PulseSchedule

THRESHOLD = REGISTER_BY_NAME["THRESHOLD"]


def _long_job(ctx, link):
    """A WRITE_VERIFY over the whole sandbox: (frame bytes, crc, deadline_s, first reply)."""
    s = ctx.sandbox
    rows, cols = s.cells(len(s.rows) * s.columns)
    sched = PulseSchedule(set_start_v=min(1.2, s.v_set_v), set_max_v=s.v_set_v, set_wl_v=s.v_wl_v,
                          reset_start_v=min(1.2, s.v_reset_v), reset_max_v=s.v_reset_v, reset_wl_v=s.v_wl_v,
                          width_s=s.width_s, v_read_v=s.v_read_v, tolerance_s=2.5e-6, max_pulses=40)
    levels = np.linspace(10e-6, 60e-6, 6)
    targets = levels[np.arange(rows.size) % levels.size]
    data, crc = link.frame(Opcode.WRITE_VERIFY, msg.encode_write_verify(sched, rows, cols, targets))
    deadline = ctx.deadline_scale * (rows.size * (sched.max_pulses + 2)
                                     * (sched.width_s + sched.read_averages * READ_TIME_S) + SLACK_S)
    return data, crc, deadline, link.exchange(data, crc, timeout_s=deadline + ACK_S)


@check("busy", "While no job runs, STATUS reports state 0.")
def idle_state(ctx):
    link = ctx.link()
    st = ctx.status(link)
    expect(st["state"] == 0, "STATUS.state of an idle board", 0, st["state"])


@check("busy", "A job acknowledged with BUSY ends: STATUS reports state 1 and then 0 within the job's "
               "deadline, and the identical retry then returns the final reply.")
def busy_clears(ctx):
    link = ctx.link()
    data, crc, deadline, first = _long_job(ctx, link)
    if first.status != Status.BUSY:
        expect(first.status == Status.OK, "WRITE_VERIFY over the sandbox", "OK or BUSY", first.status_name)
        raise Skip("the board answered the job in one reply (it never acknowledges with BUSY)")
    t_end = time.monotonic() + deadline
    delay, states = 0.005, []
    while True:
        states.append(ctx.status(link)["state"])
        if states[-1] == 0:
            break
        expect(time.monotonic() < t_end, "board still BUSY at the job's deadline", f"state 0 within {deadline:.1f} s",
               f"state {states[-1]} after {len(states)} polls")
        time.sleep(delay)
        delay = min(2 * delay, 0.25)
    final = link.exchange(data, crc)
    expect(final.status == Status.OK, "the retry after BUSY", "OK (the cached final reply)", final.status_name)
    res, _ = msg.decode_cell_results(final.payload)
    expect(res.size == len(ctx.sandbox.rows) * ctx.sandbox.columns, "CELL_RESULT count",
           len(ctx.sandbox.rows) * ctx.sandbox.columns, res.size)


@check("busy", "While a job runs, another sequenced request is answered BUSY and not executed.")
def busy_refuses_others(ctx):
    link = ctx.link()
    data, crc, deadline, first = _long_job(ctx, link)
    if first.status != Status.BUSY:
        raise Skip("the board answered the job in one reply (it never acknowledges with BUSY)")
    r = link.exchange(*link.frame(Opcode.REG_WRITE, msg.encode_reg(THRESHOLD.id, 1500)))  # no BUSY follow-up
    running = ctx.status(link)["state"] == 1
    t_end = time.monotonic() + deadline
    while ctx.status(link)["state"] == 1 and time.monotonic() < t_end:
        time.sleep(0.02)
    if r.status == Status.OK and not running:
        raise Skip("the job ended before the second request arrived")
    expect(r.status == Status.BUSY, "a REG_WRITE while a job runs", "BUSY", r.status_name)
    _, code = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(THRESHOLD.id)))
    expect(code == THRESHOLD.default_code, "the refused REG_WRITE was executed", THRESHOLD.default_code, code)


@check("busy", f"A WAIT is answered (final or BUSY) within {ACK_S:g} s; its final reply reports the chip "
               "time waited.")
def wait_deadline(ctx):
    link = ctx.link()
    data, crc = link.frame(Opcode.WAIT, msg.encode_wait(1_000_000))
    t0 = time.monotonic()
    r = link.exchange(data, crc, timeout_s=ACK_S + 1.0)
    dt = time.monotonic() - t0
    expect(dt <= ACK_S, "first reply to WAIT too late", f"<= {ACK_S} s", f"{dt:.3f} s")
    t_end = time.monotonic() + ctx.deadline_scale * (1e-3 + SLACK_S)
    while r.status == Status.BUSY and time.monotonic() < t_end:
        time.sleep(0.02)
        if ctx.status(link)["state"] == 0:
            r = link.exchange(data, crc)
    expect(r.status == Status.OK, "WAIT final reply", "OK", r.status_name)
    _, ns, _ = msg.decode_done(r.payload)
    expect(ns == 1_000_000, "DONE.chip_ns of WAIT(1 ms)", 1_000_000, ns)
