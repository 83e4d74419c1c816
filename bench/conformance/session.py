"""Section [session]: HELLO, session membership, the reply cache, retries, duplicates,
reordered frames and reconnects."""
from __future__ import annotations

import numpy as np

from bench.conformance.core import check, expect, expect_status
from bench.conformance.rawlink import Reply
from firmware_iface import messages as msg
from firmware_iface.spec import REGISTER_BY_NAME, Opcode, Status
from firmware_iface.write_verify import PulseSchedule

V_READ, THRESHOLD = REGISTER_BY_NAME["V_READ"], REGISTER_BY_NAME["THRESHOLD"]


def _reg(link, reg) -> int:
    rid, code = msg.decode_reg(link.ok(Opcode.REG_READ, msg.encode_reg(reg.id)))
    expect(rid == reg.id, "REG_READ answered for another register", reg.id, rid)
    return code


@check("session", "HELLO makes the header's session current and answers the HELLO record with that "
                  "session and protocol 2.")
def hello_opens_session(ctx):
    link = ctx.raw()
    r = link.open_session(0x0C0FFEE5)
    h = msg.decode_hello(r.payload)
    expect((h.protocol_version, h.session) == (2, 0x0C0FFEE5), "HELLO record", (2, 0x0C0FFEE5),
           (h.protocol_version, h.session))
    expect(r.frame.session == 0x0C0FFEE5 and r.frame.seq == 0, "HELLO reply header", (0x0C0FFEE5, 0),
           (r.frame.session, r.frame.seq))
    expect(h.max_payload >= 4096 and h.max_frame > h.max_payload, "HELLO limits implausible",
           "max_payload >= 4096 < max_frame", (h.max_payload, h.max_frame))


@check("session", "HELLO with session 0 is answered OUT_OF_RANGE.")
def hello_session_zero(ctx):
    link = ctx.raw()
    expect_status(link.request(Opcode.HELLO, seq=0, session=0), Status.OUT_OF_RANGE, "HELLO with session 0")


@check("session", "A request whose session is not the current one is answered NO_SESSION and not executed.")
def foreign_session(ctx):
    link = ctx.link()
    r = link.request(Opcode.REG_WRITE, msg.encode_reg(THRESHOLD.id, 1500), session=link.session ^ 0x5A5A5A5A)
    expect_status(r, Status.NO_SESSION, "REG_WRITE in another session")
    expect(_reg(link, THRESHOLD) == THRESHOLD.default_code, "the refused REG_WRITE was executed",
           THRESHOLD.default_code, _reg(link, THRESHOLD))


@check("session", "A retry is the identical frame: it gets the cached reply and is never executed "
                  "twice (a duplicated PULSE acts once; checked by reading the cells back).")
def duplicated_pulse(ctx):
    link = ctx.link()
    det = ctx.deterministic(link)
    rows, cols = ctx.sandbox.cells(48)
    g0 = ctx.floor(link, rows, cols)
    x, y = slice(0, 24), slice(24, 48)
    st0 = ctx.status(link)
    data, crc = link.frame(Opcode.PULSE, ctx.pulses(rows[x], cols[x]))
    link.send(data + data)  # duplicated on the link
    frames = [f for f in link.collect(2) if f.echo == crc]
    expect(len(frames) == 2, "a duplicated PULSE must be answered twice (once from the cache)", 2, len(frames))
    expect(frames[0].payload == frames[1].payload and frames[0].status == Status.OK,
           "the retry's reply differs from the first", frames[0].payload.hex(), frames[1].payload.hex())
    st1 = ctx.status(link)
    _, chip_ns, _ = msg.decode_done(frames[0].payload)
    expect(st1["duplicates"] == st0["duplicates"] + 1, "STATUS.duplicates did not count the retry",
           st0["duplicates"] + 1, st1["duplicates"])
    expect(st1["chip_ns"] - st0["chip_ns"] == chip_ns, "chip clock advanced by more than one PULSE",
           chip_ns, st1["chip_ns"] - st0["chip_ns"])
    link.ok(Opcode.PULSE, ctx.pulses(rows[y], cols[y]))
    g = ctx.read(link, rows, cols)
    ctx.acted_once(link, det, rows[x], cols[x], g0[x], g[x], g0[y], g[y], "duplicated PULSE")


@check("session", "The same seq with other content is answered SEQ_REUSED, not from the cache, and not "
                  "executed.")
def seq_reused(ctx):
    link = ctx.link()
    seq = link.next_seq()
    link.ok(Opcode.REG_WRITE, msg.encode_reg(THRESHOLD.id, 1200), seq=seq)
    r = link.request(Opcode.REG_WRITE, msg.encode_reg(THRESHOLD.id, 1700), seq=seq)
    expect_status(r, Status.SEQ_REUSED, "REG_WRITE with a reused seq")
    r = link.request(Opcode.REG_READ, msg.encode_reg(V_READ.id), seq=seq)
    expect_status(r, Status.SEQ_REUSED, "REG_READ with a reused seq")
    expect(_reg(link, THRESHOLD) == 1200, "register changed by a refused frame", 1200, _reg(link, THRESHOLD))


@check("session", "A late duplicate (a seq not after the most recent one) is answered STALE_SEQ and "
                  "not executed.")
def stale_duplicate(ctx):
    link = ctx.link()
    det = ctx.deterministic(link)
    rows, cols = ctx.sandbox.cells(48, 48)
    g0 = ctx.floor(link, rows, cols)
    data, crc = link.frame(Opcode.PULSE, ctx.pulses(rows[:24], cols[:24]))
    link.exchange(data, crc)
    link.ok(Opcode.PING, b"newer")
    r = link.exchange(data, crc)  # the PULSE arrives again, after a newer request
    expect_status(r, Status.STALE_SEQ, "a late duplicate PULSE")
    link.ok(Opcode.PULSE, ctx.pulses(rows[24:], cols[24:]))
    g = ctx.read(link, rows, cols)
    ctx.acted_once(link, det, rows[:24], cols[:24], g0[:24], g[:24], g0[24:], g[24:], "late duplicate PULSE")


@check("session", "Reordered frames: a request overtaken by a newer one is answered STALE_SEQ, not executed.")
def reordered(ctx):
    link = ctx.link()
    s1, s2 = link.next_seq(), link.next_seq()
    a, ca = link.frame(Opcode.REG_WRITE, msg.encode_reg(THRESHOLD.id, 1300), seq=s1)
    b, cb = link.frame(Opcode.PING, b"overtook", seq=s2)
    link.send(b + a)
    frames = link.collect(2)
    by = {f.echo: f for f in frames}
    expect(cb in by and by[cb].status == Status.OK, "the newer frame was not executed", "OK",
           by.get(cb) and by[cb].status)
    expect(ca in by and by[ca].status == Status.STALE_SEQ, "the overtaken frame", "STALE_SEQ",
           by.get(ca) and by[ca].status)
    expect(_reg(link, THRESHOLD) == THRESHOLD.default_code, "the overtaken REG_WRITE was executed",
           THRESHOLD.default_code, _reg(link, THRESHOLD))


@check("session", "Sequence numbers wrap: after 65535 comes 0 (RFC 1982 order).")
def seq_wraps(ctx):
    link = ctx.raw()
    link.open_session()
    link.seq = 0xFFFD
    link.request(Opcode.HELLO, seq=0xFFFD)
    for seq in (0xFFFE, 0xFFFF, 0x0000, 0x0001):
        r = link.request(Opcode.PING, bytes([seq & 0xFF]), seq=seq)
        expect(r.status == Status.OK, f"PING with seq {seq} after wrap", "OK", r.status_name)


@check("session", "A new HELLO clears the reply cache: the next host's request with the previous host's "
                  "last seq is executed, never answered with the previous host's reply.")
def second_host_never_gets_cached_reply(ctx):
    # a serial line has no connections: a second host is a new HELLO on the same line
    a = ctx.link()
    seq = a.next_seq()
    a.ok(Opcode.REG_READ, msg.encode_reg(V_READ.id), seq=seq)
    first_session = a.session
    a.open_session()
    r = a.request(Opcode.REG_READ, msg.encode_reg(THRESHOLD.id), seq=seq)
    expect(r.status == Status.OK, "REG_READ of the second host", "OK", r.status_name)
    rid, code = msg.decode_reg(r.payload)
    expect((rid, code) == (THRESHOLD.id, THRESHOLD.default_code),
           "the second host got another request's reply", (THRESHOLD.id, THRESHOLD.default_code), (rid, code))
    # the first host's identical retry is now from a foreign session
    r = a.request(Opcode.REG_READ, msg.encode_reg(V_READ.id), seq=seq, session=first_session)
    expect_status(r, Status.NO_SESSION, "the first host's retry after the second host's HELLO")


@check("session", "After a reconnect (new link, new HELLO) the board answers normally; the old session "
                  "is refused.")
def reconnect(ctx):
    a = ctx.link()
    old = a.session
    a.close()
    b = ctx.raw()
    b.open_session()
    b.ok(Opcode.PING, b"back")
    expect_status(b.request(Opcode.PING, b"old", session=old), Status.NO_SESSION, "a frame of the old session")


@check("session", "STATUS is not sequenced: it is executed whatever its seq and leaves the reply cache "
                  "as it was.")
def status_not_sequenced(ctx):
    link = ctx.link()
    seq = link.next_seq()
    first = link.ok(Opcode.PING, b"cached", seq=seq)
    for s in (seq, seq - 1, seq + 5):
        r = link.request(Opcode.STATUS, seq=s & 0xFFFF)
        expect(r.status == Status.OK, f"STATUS with seq {s}", "OK", r.status_name)
    again = link.request(Opcode.PING, b"cached", seq=seq)
    expect(again.status == Status.OK and again.payload == first, "the cache changed after STATUS",
           "the cached PING reply", again.status_name)


@check("session", "A duplicated WRITE_VERIFY programs once: the retry gets the cached result and the "
                  "cells are not pulsed again.")
def duplicated_write_verify(ctx):
    link = ctx.link()
    rows, cols = ctx.sandbox.cells(4, 96)
    ctx.floor(link, rows, cols)
    s = ctx.sandbox
    sched = PulseSchedule(set_start_v=min(1.2, s.v_set_v), set_max_v=s.v_set_v, set_wl_v=s.v_wl_v,
                          reset_start_v=min(1.2, s.v_reset_v), reset_max_v=s.v_reset_v, reset_wl_v=s.v_wl_v,
                          width_s=s.width_s, v_read_v=s.v_read_v, tolerance_s=2.5e-6, max_pulses=60)
    payload = msg.encode_write_verify(sched, rows, cols, np.full(4, 30e-6))
    data, crc = link.frame(Opcode.WRITE_VERIFY, payload)
    _twice_acts_once(ctx, link, data, crc, link.job_deadline(Opcode.WRITE_VERIFY, payload), "WRITE_VERIFY")


def _twice_acts_once(ctx, link, data: bytes, crc: int, timeout_s: float, what: str) -> None:
    """Send a job frame twice back to back; both answers are the one result (or BUSY while it
    runs), and the chip clock advances by one job."""
    st0 = ctx.status(link)
    link.send(data + data)
    frames = [f for f in link.collect(2, timeout_s) if f.echo == crc]
    expect(len(frames) == 2, f"a duplicated {what} must be answered twice (once from the cache)", 2, len(frames))
    final = link.follow(data, crc, Reply(frames[-1], crc), timeout_s)
    expect(final.status == Status.OK, f"{what} result", "OK", final.status_name)
    for f in frames:
        expect(f.status == Status.BUSY or f.payload == final.payload,
               f"the two answers to a duplicated {what} differ", final.payload.hex()[:48], f.payload.hex()[:48])
    _, chip_ns, _ = msg.decode_done(final.payload)
    st1 = ctx.status(link)
    expect(st1["chip_ns"] - st0["chip_ns"] == chip_ns, f"chip time of two {what} runs", chip_ns,
           st1["chip_ns"] - st0["chip_ns"])


@check("session", "A duplicated RUN runs once (the chip clock advances by one run).")
def duplicated_run(ctx):
    from firmware_iface.spikes import encode_upload

    link = ctx.link()
    spikes = np.zeros((2, 50, 128), bool)
    spikes[:, ::5, ::7] = True
    link.ok(Opcode.UPLOAD_SPIKES, encode_upload(spikes, slot=0))
    data, crc = link.frame(Opcode.RUN, msg.encode_run(0, 2))
    _twice_acts_once(ctx, link, data, crc, link.job_deadline(Opcode.RUN, b"", run_chip_s=1.0), "RUN")
