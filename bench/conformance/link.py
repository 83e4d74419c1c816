"""Section [link]: delimiters, garbage, split and joined frames, oversized runs, response time."""
from __future__ import annotations

import time

from bench.conformance.core import check, expect
from firmware_iface.spec import Opcode, Status
from firmware_iface.spec_text import ACK_S


def _replies_to(frames, crc):
    return [f for f in frames if f.echo == crc]


@check("link", "Garbage between frames is dropped at the next 0x00; the frame after it is answered.")
def garbage_between_frames(ctx):
    link = ctx.link()
    data, crc = link.frame(Opcode.PING, b"after garbage")
    link.send(b"\x13\x37 line noise \xff\xfe" + b"\x00" + b"\x00\x00\x41\x00" + data)
    frames = link.collect(3)
    good = _replies_to(frames, crc)
    expect(len(good) == 1 and good[0].payload == b"after garbage", "the frame after garbage was not answered",
           "one PING reply", [f.status for f in frames])


@check("link", "Two frames in one write are both answered, in order.")
def joined_frames(ctx):
    link = ctx.link()
    a, ca = link.frame(Opcode.PING, b"one")
    b, cb = link.frame(Opcode.PING, b"two")
    link.send(a + b)
    frames = link.collect(2)
    got = [f.echo for f in frames]
    expect(got[:2] == [ca, cb], "replies missing or out of order", [ca, cb], got)


@check("link", "A frame arriving byte by byte is answered once complete.")
def split_frame(ctx):
    link = ctx.link()
    data, crc = link.frame(Opcode.PING, b"split")
    for i in range(len(data)):
        link.send(data[i:i + 1])
        if i % 8 == 0:
            time.sleep(0.001)
    frames = link.collect(1)
    expect(len(_replies_to(frames, crc)) == 1, "no reply to a frame sent byte by byte", "a reply", "none")


@check("link", "Empty runs (0x00 0x00) are ignored: no reply.")
def empty_runs(ctx):
    link = ctx.link()
    link.send(b"\x00\x00\x00")
    extra = link.quiet(0.2)
    expect(not extra, "the board answered empty runs", "no reply", [f.status for f in extra])
    link.ok(Opcode.PING, b"still here")


@check("link", "A run longer than the maximum wire frame without a 0x00 is discarded and answered "
               "BAD_FRAME; the link keeps working.")
def oversized_run(ctx):
    link = ctx.link()
    from firmware_iface import messages as msg

    limit = msg.decode_hello(link.hello.payload).max_frame
    chunk = b"\x01" * 65536
    sent = 0
    while sent <= limit + 16:
        link.send(chunk)
        sent += len(chunk)
        link.collect(1, 0.0)  # drain what the board may already have answered
    link.send(b"\x00")
    frames = link.frames + link.collect(1, ctx.timeout_s)
    bad = [f for f in frames if f.status == Status.BAD_FRAME]
    expect(bool(bad), f"no BAD_FRAME after a {sent}-byte run without delimiter", "BAD_FRAME",
           [f.status for f in frames])
    link.ok(Opcode.PING, b"after the flood")


@check("link", f"A board starts its reply within {ACK_S:g} s of the request's last byte (median of 7 PINGs, "
               "so a busy host does not fail the board).")
def response_time(ctx):
    link = ctx.link()
    times = []
    for i in range(7):
        data, crc = link.frame(Opcode.PING, bytes([i]) * 16)
        t0 = time.monotonic()
        r = link.exchange(data, crc, timeout_s=ACK_S + 1.0)
        times.append(time.monotonic() - t0)
        expect(r.status == Status.OK, "PING failed", "OK", r.status_name)
    median = sorted(times)[len(times) // 2]
    expect(median <= ACK_S, "replies later than the acknowledge time", f"<= {ACK_S} s", f"{median:.3f} s")
