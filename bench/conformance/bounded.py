"""Sections [op.get_limits], [op.stage], [op.commit], [op.fetch]: bounded transfers
(docs/protocol.md "Bounded frames and limits").  Boards without capability BOUNDED skip them."""
from __future__ import annotations

import secrets


from bench.conformance.core import Skip, check, expect, expect_status
from firmware_iface import bulk
from firmware_iface import messages as msg
from firmware_iface.spec import Capability, Opcode, ReadMode, Status


def _bounded(ctx):
    link = ctx.link()
    info = msg.decode_info(link.ok(Opcode.GET_INFO))
    if not info.has(Capability.BOUNDED):
        raise Skip("the board does not announce capability BOUNDED")
    return link, bulk.decode_limits(link.ok(Opcode.GET_LIMITS)), info


def _transfer(link, lim, opcode: int, payload: bytes, tid: int | None = None) -> tuple[int, int, bytes, int]:
    """STAGE all pieces, COMMIT, FETCH the rest: (status, length, reply payload, id)."""
    tid = tid or (secrets.randbits(32) or 1)
    for off in range(0, max(len(payload), 1), lim.max_chunk):
        link.ok(Opcode.STAGE, bulk.encode_stage(tid, opcode, len(payload), off, payload[off:off + lim.max_chunk]))
    rid, status, length, out = bulk.decode_result(link.ok(Opcode.COMMIT, bulk.encode_commit(tid, opcode, len(payload))))
    expect(rid == tid, "RESULT names another transfer", tid, rid)
    while len(out) < length:
        out += link.ok(Opcode.FETCH, bulk.encode_fetch(tid, len(out), min(lim.max_chunk, length - len(out))))
    return status, length, out, tid


@check("op.get_limits", "GET_LIMITS answers the LIMITS record (max_chunk >= 64, max_payload >= max_chunk); "
                        "with a payload it is answered BAD_PAYLOAD.")
def limits_record(ctx):
    link, lim, info = _bounded(ctx)
    expect(lim.max_chunk >= 64 and lim.max_payload >= lim.max_chunk and lim.max_steps >= 1,
           "LIMITS implausible", "max_chunk >= 64, max_payload >= max_chunk", (lim.max_chunk, lim.max_payload))
    expect_status(link.request(Opcode.GET_LIMITS, b"x"), Status.BAD_PAYLOAD, "GET_LIMITS with a payload")


@check("op.stage", "A request staged in pieces and committed runs as if it had arrived in one frame; a reply "
                   "longer than max_chunk is FETCHed in pieces and equals the direct reply.")
def transfer_round_trip(ctx):
    link, lim, info = _bounded(ctx)
    uv = int(round(ctx.sandbox.v_read_v * 1e6))
    req = msg.encode_read(msg.ReadRequest(ReadMode.ARRAY, uv, 1))
    status, length, out, _ = _transfer(link, lim, Opcode.READ_CELLS, req)
    expect(status == Status.OK and length == 4 * info.rows * info.columns == len(out),
           "READ_CELLS ARRAY through a transfer", (0, 4 * info.rows * info.columns), (status, len(out)))
    if ctx.deterministic(link):
        direct = link.ok(Opcode.READ_CELLS, req)
        expect(out == direct, "transferred reply differs from the direct one", len(direct), len(out))
    big = bytes(range(256)) * ((lim.max_chunk * 2) // 256 + 1)  # a PING staged in 3 pieces is refused by PING
    status, _, _, _ = _transfer(link, lim, Opcode.PING, big[:lim.max_chunk * 2 + 7])
    expect(status == Status.BAD_PAYLOAD, "the target opcode's own checks apply to a staged request",
           "BAD_PAYLOAD (PING over 256 bytes)", status)


@check("op.stage", "STAGE with id 0, a non-stageable target (HELLO, STATUS, STAGE), a piece over max_chunk or "
                   "beyond `total` is answered OUT_OF_RANGE.")
def stage_refusals(ctx):
    link, lim, _ = _bounded(ctx)
    cases = ((0, Opcode.PING, 4, 0, b"abcd", "id 0"), (7, Opcode.HELLO, 0, 0, b"", "target HELLO"),
             (7, Opcode.STATUS, 0, 0, b"", "target STATUS"), (7, Opcode.STAGE, 4, 0, b"abcd", "target STAGE"),
             (7, Opcode.PING, lim.max_chunk + 1, 0, bytes(lim.max_chunk + 1), "piece over max_chunk"),
             (7, Opcode.PING, 4, 2, b"abcd", "piece beyond total"))
    for tid, op, total, off, piece, what in cases:
        expect_status(link.request(Opcode.STAGE, bulk.encode_stage(tid, op, total, off, piece)), Status.OUT_OF_RANGE,
                      f"STAGE with {what}")


@check("op.commit", "COMMIT runs a transfer at most once: a COMMIT of the same id under a new seq answers the "
                    "kept RESULT and does not run the command again (chip clock).")
def commit_once(ctx):
    link, lim, _ = _bounded(ctx)
    rows, cols = ctx.sandbox.cells(4, 140)
    payload = ctx.pulses(rows, cols)
    status, _, out, tid = _transfer(link, lim, Opcode.PULSE, payload)
    expect(status == Status.OK, "PULSE through a transfer", 0, status)
    st0 = ctx.status(link)
    again = link.ok(Opcode.COMMIT, bulk.encode_commit(tid, Opcode.PULSE, len(payload)))  # a new seq
    st1 = ctx.status(link)
    _, status2, _, out2 = bulk.decode_result(again)
    expect((status2, out2) == (status, out[:lim.max_chunk]), "the second COMMIT's RESULT differs",
           (status, out.hex()[:32]), (status2, out2.hex()[:32]))
    expect(st1["chip_ns"] == st0["chip_ns"], "a second COMMIT ran the PULSE again", st0["chip_ns"], st1["chip_ns"])


@check("op.commit", "COMMIT of a transfer that was not (completely) staged is answered NOT_READY.")
def commit_unstaged(ctx):
    link, lim, _ = _bounded(ctx)
    expect_status(link.request(Opcode.COMMIT, bulk.encode_commit(0x5EED, Opcode.PING, 8)), Status.NOT_READY,
                  "COMMIT of an unknown transfer")
    link.ok(Opcode.STAGE, bulk.encode_stage(0x5EEE, Opcode.PING, 8, 0, b"half"))
    expect_status(link.request(Opcode.COMMIT, bulk.encode_commit(0x5EEE, Opcode.PING, 8)), Status.NOT_READY,
                  "COMMIT with 4 of 8 bytes staged")


@check("op.fetch", "FETCH of an unknown transfer is answered NOT_READY; over max_chunk or beyond the kept reply "
                   "OUT_OF_RANGE.")
def fetch_refusals(ctx):
    link, lim, _ = _bounded(ctx)
    expect_status(link.request(Opcode.FETCH, bulk.encode_fetch(0x7777, 0, 4)), Status.NOT_READY,
                  "FETCH of an unknown transfer")
    _, length, _, tid = _transfer(link, lim, Opcode.PING, b"kept")
    expect_status(link.request(Opcode.FETCH, bulk.encode_fetch(tid, 0, lim.max_chunk + 1)), Status.OUT_OF_RANGE,
                  "FETCH over max_chunk")
    expect_status(link.request(Opcode.FETCH, bulk.encode_fetch(tid, length, 1)), Status.OUT_OF_RANGE,
                  "FETCH beyond the kept reply")
    expect(link.ok(Opcode.FETCH, bulk.encode_fetch(tid, 1, 3)) == b"ept", "FETCH of bytes 1..3", "ept", "")



