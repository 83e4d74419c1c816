"""Sections [op.stage], [op.commit], [op.fetch], [op.get_limits]: bounded frames and the
board's limits (docs/protocol.md, "Bounded frames and limits"; issue 16)."""
from __future__ import annotations

from bench.conformance.core import Skip, check, expect, expect_status
from firmware_iface import messages as msg
from firmware_iface.bulk import (Limits, decode_limits, decode_result, encode_commit, encode_fetch,
                                 encode_stage)
from firmware_iface.spec import Capability, Opcode, Status


def _limits(link) -> Limits:
    info = msg.decode_info(link.ok(Opcode.GET_INFO))
    if not info.has(Capability.BOUNDED):
        raise Skip("the board does not announce capability BOUNDED")
    return decode_limits(link.ok(Opcode.GET_LIMITS))


@check("op.get_limits", "GET_LIMITS answers a LIMITS record that agrees with INFO (steps, slots, payload).")
def limits_record(ctx):
    link = ctx.link()
    info = msg.decode_info(link.ok(Opcode.GET_INFO))
    lim = _limits(link)
    got = (lim.max_steps, lim.sample_slots, lim.max_payload)
    expect(got == (info.max_steps, info.sample_slots, info.max_payload), "LIMITS differ from INFO",
           (info.max_steps, info.sample_slots, info.max_payload), got)
    expect(0 < lim.max_chunk <= lim.max_payload and lim.max_pulses >= 1 and lim.memory_bytes > 0,
           "LIMITS implausible", "positive, max_chunk <= max_payload", lim.as_dict())


@check("op.get_limits", "GET_LIMITS with a non-empty payload is answered BAD_PAYLOAD.")
def limits_payload(ctx):
    link = ctx.link()
    _limits(link)
    expect_status(link.request(Opcode.GET_LIMITS, b"x"), Status.BAD_PAYLOAD, "GET_LIMITS with a payload")


@check("op.stage", "A request staged in pieces and committed runs as if sent whole; FETCH returns its reply.")
def stage_commit_fetch(ctx):
    link = ctx.link()
    _limits(link)
    data = bytes(range(256))
    for off in range(0, 256, 100):
        link.ok(Opcode.STAGE, encode_stage(77, Opcode.PING, 256, off, data[off:off + 100]))
    tid, status, length, first = decode_result(link.ok(Opcode.COMMIT, encode_commit(77, Opcode.PING, 256)))
    expect((tid, status, length) == (77, Status.OK, 256), "RESULT", (77, 0, 256), (tid, status, length))
    rest = link.ok(Opcode.FETCH, encode_fetch(77, len(first), 256 - len(first))) if len(first) < 256 else b""
    expect(first + rest == data, "PING through a transfer changed the bytes", data.hex()[:16], (first + rest).hex()[:16])


@check("op.stage", "STAGE beyond the limits (piece > max_chunk, total > max_payload, id 0) is OUT_OF_RANGE.")
def stage_limits(ctx):
    link = ctx.link()
    lim = _limits(link)
    for what, payload in (("piece > max_chunk", encode_stage(5, Opcode.PING, lim.max_chunk + 1, 0,
                                                             bytes(lim.max_chunk + 1))),
                          ("total > max_payload", encode_stage(5, Opcode.PING, lim.max_payload + 1, 0, b"x")),
                          ("id 0", encode_stage(0, Opcode.PING, 1, 0, b"x"))):
        expect_status(link.request(Opcode.STAGE, payload), Status.OUT_OF_RANGE, f"STAGE with {what}")


@check("op.commit", "COMMIT runs a transfer at most once: the same id again answers the kept result.")
def commit_once(ctx):
    link = ctx.link()
    _limits(link)
    wait = msg.encode_wait(1000)
    link.ok(Opcode.STAGE, encode_stage(91, Opcode.WAIT, len(wait), 0, wait))
    t0 = ctx.status(link)["chip_ns"]
    first = link.ok(Opcode.COMMIT, encode_commit(91, Opcode.WAIT, len(wait)))
    again = link.ok(Opcode.COMMIT, encode_commit(91, Opcode.WAIT, len(wait)))
    t1 = ctx.status(link)["chip_ns"]
    expect(first == again, "the second COMMIT differs", first.hex(), again.hex())
    expect(t1 - t0 == 1000, "chip clock moved by", 1000, t1 - t0)


@check("op.commit", "COMMIT of a transfer that was not (completely) staged is answered NOT_READY.")
def commit_not_staged(ctx):
    link = ctx.link()
    _limits(link)
    expect_status(link.request(Opcode.COMMIT, encode_commit(0xDEAD, Opcode.PING, 10)), Status.NOT_READY,
                  "COMMIT of an unknown transfer")
    link.ok(Opcode.STAGE, encode_stage(12, Opcode.PING, 10, 0, b"12345"))
    expect_status(link.request(Opcode.COMMIT, encode_commit(12, Opcode.PING, 10)), Status.NOT_READY,
                  "COMMIT of a half-staged transfer")


@check("op.fetch", "FETCH beyond the kept reply or above max_chunk is OUT_OF_RANGE; of an unknown id NOT_READY.")
def fetch_limits(ctx):
    link = ctx.link()
    lim = _limits(link)
    link.ok(Opcode.STAGE, encode_stage(33, Opcode.PING, 4, 0, b"abcd"))
    link.ok(Opcode.COMMIT, encode_commit(33, Opcode.PING, 4))
    expect_status(link.request(Opcode.FETCH, encode_fetch(33, 2, 3)), Status.OUT_OF_RANGE, "FETCH past the end")
    expect_status(link.request(Opcode.FETCH, encode_fetch(33, 0, lim.max_chunk + 1)), Status.OUT_OF_RANGE,
                  "FETCH above max_chunk")
    expect_status(link.request(Opcode.FETCH, encode_fetch(34, 0, 1)), Status.NOT_READY, "FETCH of another id")
