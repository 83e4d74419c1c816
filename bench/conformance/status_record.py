"""Section [status-record]: the STATUS counters."""
from __future__ import annotations

from bench.conformance.core import check, expect
from firmware_iface.spec import Opcode


@check("status-record", "frames_rx counts received requests, bad_frames counts dropped runs, duplicates counts "
                        "retries answered from the cache.")
def counters(ctx):
    link = ctx.link()
    st0 = ctx.status(link)
    data, crc = link.frame(Opcode.PING, b"count me")
    link.exchange(data, crc)
    link.exchange(data, crc)  # a retry
    link.send(b"\x05\x01\x00")  # a bad run
    link.collect(1)
    st1 = ctx.status(link)
    got = (st1["frames_rx"] - st0["frames_rx"], st1["bad_frames"] - st0["bad_frames"],
           st1["duplicates"] - st0["duplicates"])
    expect(got == (3, 1, 1), "counter increments (frames_rx incl. this STATUS, bad_frames, duplicates)",
           (3, 1, 1), got)
