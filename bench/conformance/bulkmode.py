"""Section [bulk] and the opcodes [op.bulk_put], [op.bulk_get]: bulk mode (docs/protocol.md
"Bulk mode").  Boards without capability BULK skip them.

The raw blocks are built here from the spec's field layout with ``struct`` (not with
firmware_iface.bulk), so a board and this suite cannot share a mistake in the encoder."""
from __future__ import annotations

import secrets
import struct
import time
import zlib

from bench.conformance.core import Skip, check, expect, expect_status
from bench.conformance.rawlink import Reply, raw_body, wire
from firmware_iface import bulk
from firmware_iface import messages as msg
from firmware_iface.framing import RAW_IDLE_S
from firmware_iface.spec import Capability, Opcode, ReadMode, Status

BULK = struct.Struct("<IBBHIIII")  # id, opcode, _pad, _pad2, total, offset, nbytes, crc (24 bytes)


def _bulk(ctx):
    link = ctx.link()
    info = msg.decode_info(link.ok(Opcode.GET_INFO))
    if not info.has(Capability.BULK):
        raise Skip("the board does not announce capability BULK")
    return link, info


def put_unit(link, tid: int, target: int, total: int, offset: int, data: bytes, *,
             crc: int | None = None, seq: int | None = None) -> tuple[bytes, int, int]:
    """(wire bytes, request CRC-32, seq) of a BULK_PUT: frame, raw block, 0x00."""
    seq = link.next_seq() if seq is None else seq
    record = BULK.pack(tid, target, 0, 0, total, offset, len(data), zlib.crc32(data) if crc is None else crc)
    body = raw_body(Opcode.BULK_PUT, seq, record, session=link.session)
    return wire(body) + data + b"\x00", zlib.crc32(body), seq


def _commit(link, tid: int, target: int, total: int) -> tuple[int, int, bytes]:
    rid, status, length, first = bulk.decode_result(link.ok(Opcode.COMMIT, bulk.encode_commit(tid, target, total)))
    expect(rid == tid, "RESULT names another transfer", tid, rid)
    return status, length, first


@check("op.bulk_put", "BULK_PUT pieces (raw blocks, any split, mixed with STAGE) are staged like STAGE "
                      "pieces: each is answered COUNT (bytes received so far) and COMMIT runs the whole.")
def put_and_commit(ctx):
    link, _ = _bulk(ctx)
    tid = secrets.randbits(32) | 1
    payload = bytes([0, 1, 0, 0, 255, 0]) * 40  # 240 bytes with many 0x00: PING echoes it
    counts = []
    for off, end in ((0, 100), (100, 101), (101, 240)):
        data, crc, _ = put_unit(link, tid, Opcode.PING, len(payload), off, payload[off:end])
        r = link.exchange(data, crc)
        expect_status(r, Status.OK, f"BULK_PUT of bytes {off}..{end}")
        counts.append(int.from_bytes(r.payload[:4], "little"))
    expect(counts == [100, 101, 240], "COUNT after each piece", [100, 101, 240], counts)
    status, length, first = _commit(link, tid, Opcode.PING, len(payload))
    expect((status, length, first) == (Status.OK, 240, payload[:240]), "COMMIT of the bulk-staged PING",
           (0, 240), (status, length))
    tid2 = tid ^ 0x10
    link.ok(Opcode.STAGE, bulk.encode_stage(tid2, Opcode.PING, 8, 0, b"abcd"))  # STAGE and BULK_PUT mixed
    data, crc, _ = put_unit(link, tid2, Opcode.PING, 8, 4, b"efgh")
    expect_status(link.exchange(data, crc), Status.OK, "BULK_PUT completing a STAGEd transfer")
    status, _, first = _commit(link, tid2, Opcode.PING, 8)
    expect((status, first) == (Status.OK, b"abcdefgh"), "STAGE + BULK_PUT transfer", "abcdefgh", first)


def _settled(link, frames: list, commit: bytes, ccrc: int) -> list:
    """``frames`` with a last reply of BUSY to the burst's COMMIT (a long job acknowledged, docs
    [busy]: a board that acknowledges may do so at once) followed to the final reply."""
    if frames and frames[-1].opcode == Opcode.COMMIT and frames[-1].status == Status.BUSY:
        frames = frames[:-1] + [link.follow(commit, ccrc, Reply(frames[-1], ccrc)).frame]
    return frames


@check("op.bulk_put", "Pieces and COMMIT in one burst: the board answers in order, and a COMMIT with a byte "
                      "of the transfer missing is answered NOT_READY at once and runs nothing; the missing "
                      "piece and a new COMMIT (new seq) in the next burst run the request.")
def burst_commit(ctx):
    link, _ = _bulk(ctx)
    tid = secrets.randbits(32) | 1
    payload = bytes([9, 0, 0, 1]) * 30  # 120 bytes: PING echoes them
    a, _, sa = put_unit(link, tid, Opcode.PING, len(payload), 0, payload[:40])
    c, _, sc = put_unit(link, tid, Opcode.PING, len(payload), 80, payload[80:])
    commit, ccrc = link.frame(Opcode.COMMIT, bulk.encode_commit(tid, Opcode.PING, len(payload)))
    cseq = link.seq
    link.send(a + c + commit)  # the piece of bytes 40..79 is "lost"
    frames = _settled(link, link.collect(3, ctx.timeout_s), commit, ccrc)
    got = [(f.opcode, f.seq, f.status) for f in frames]
    want = [(Opcode.BULK_PUT, sa, Status.OK), (Opcode.BULK_PUT, sc, Status.OK), (Opcode.COMMIT, cseq,
                                                                             Status.NOT_READY)]
    expect(got == want and frames[2].echo == ccrc, "answers to a burst missing a piece (in order; COMMIT "
           "NOT_READY)", [(int(o), q, int(st)) for o, q, st in want], [(int(o), q, int(st)) for o, q, st in got])
    b, _, sb = put_unit(link, tid, Opcode.PING, len(payload), 40, payload[40:80])
    commit, ccrc = link.frame(Opcode.COMMIT, bulk.encode_commit(tid, Opcode.PING, len(payload)))
    link.send(b + commit)
    frames = _settled(link, link.collect(2, ctx.timeout_s), commit, ccrc)
    expect([(f.opcode, f.status) for f in frames] == [(Opcode.BULK_PUT, Status.OK), (Opcode.COMMIT, Status.OK)],
           "answers to the burst completing the transfer", "BULK_PUT OK, COMMIT OK",
           [(int(f.opcode), int(f.status)) for f in frames])
    rid, status, length, first = bulk.decode_result(frames[1].payload)
    expect((rid, status, length, first) == (tid, Status.OK, len(payload), payload), "RESULT of the burst COMMIT",
           (tid, 0, len(payload)), (rid, status, length))


@check("op.bulk_put", "A BULK_PUT whose raw block fails its CRC-32 is answered DATA_CRC (bound to the request) "
                      "and stores nothing; a BULK_PUT with id 0, a non-stageable target or a piece beyond "
                      "`total` is answered OUT_OF_RANGE.")
def put_refusals(ctx):
    link, _ = _bulk(ctx)
    tid = 0xB0B0
    data, crc, seq = put_unit(link, tid, Opcode.PING, 8, 0, b"12345678", crc=zlib.crc32(b"12345678") ^ 1)
    r = link.exchange(data, crc)
    expect((r.status, r.frame.seq, r.frame.opcode) == (Status.DATA_CRC, seq, Opcode.BULK_PUT),
           "answer to a raw block with a wrong CRC", (int(Status.DATA_CRC), seq), (r.status_name, r.frame.seq))
    expect_status(link.request(Opcode.COMMIT, bulk.encode_commit(tid, Opcode.PING, 8)), Status.NOT_READY,
                  "COMMIT after the only piece failed its CRC")
    for tid, target, total, off, what in ((0, Opcode.PING, 4, 0, "id 0"), (7, Opcode.HELLO, 4, 0, "target HELLO"),
                                          (7, Opcode.BULK_PUT, 4, 0, "target BULK_PUT"),
                                          (7, Opcode.PING, 4, 2, "piece beyond total")):
        data, crc, _ = put_unit(link, tid, target, total, off, b"wxyz")
        expect_status(link.exchange(data, crc), Status.OUT_OF_RANGE, f"BULK_PUT with {what}")
    link.ok(Opcode.PING, b"still in step")


@check("op.bulk_get", "BULK_GET answers a BULK record (id, opcode 0, total, offset, nbytes, crc) followed by "
                      "the raw bytes of the kept reply and 0x00; they equal what FETCH returns.")
def get_matches_fetch(ctx):
    link, info = _bulk(ctx)
    tid = secrets.randbits(32) | 1
    uv = int(round(ctx.sandbox.v_read_v * 1e6))
    req = msg.encode_read(msg.ReadRequest(ReadMode.ARRAY, uv, 1))
    data, crc, _ = put_unit(link, tid, Opcode.READ_CELLS, len(req), 0, req)
    expect_status(link.exchange(data, crc), Status.OK, "BULK_PUT of a READ_CELLS request")
    status, length, first = _commit(link, tid, Opcode.READ_CELLS, len(req))
    expect(status == Status.OK and length == 4 * info.rows * info.columns, "READ_CELLS ARRAY result",
           4 * info.rows * info.columns, length)
    fetched = link.ok(Opcode.FETCH, bulk.encode_fetch(tid, 100, 300))
    frame, crc = link.frame(Opcode.BULK_GET, bulk.encode_fetch(tid, 100, 300))
    r = link.exchange(frame, crc)
    expect_status(r, Status.OK, "BULK_GET of 300 bytes")
    expect(len(r.payload) == BULK.size, "BULK_GET reply payload is one BULK record", BULK.size, len(r.payload))
    rid, op, _, _, total, off, n, dcrc = BULK.unpack(r.payload)
    expect((rid, op, total, off, n) == (tid, 0, length, 100, 300), "BULK record of the reply",
           (tid, 0, length, 100, 300), (rid, op, total, off, n))
    expect(r.frame.data == fetched and zlib.crc32(r.frame.data) == dcrc, "raw block differs from FETCH",
           fetched.hex()[:32], bytes(r.frame.data).hex()[:32])
    expect_status(link.request(Opcode.BULK_GET, bulk.encode_fetch(tid, length - 10, 11)), Status.OUT_OF_RANGE,
                  "BULK_GET beyond the kept reply")
    expect_status(link.request(Opcode.BULK_GET, bulk.encode_fetch(tid ^ 2, 0, 4)), Status.NOT_READY,
                  "BULK_GET of another transfer")


@check("bulk", "BULK_PUT and BULK_GET are not sequenced: the same seq twice (and a seq older than the cached "
               "one) is executed each time, never answered SEQ_REUSED or STALE_SEQ.")
def unsequenced(ctx):
    link, _ = _bulk(ctx)
    tid = 0x5151
    link.ok(Opcode.PING, b"cache me")
    cached = link.seq
    for piece, off in ((b"ab", 0), (b"cd", 2)):
        data, crc, _ = put_unit(link, tid, Opcode.PING, 4, off, piece, seq=cached)
        expect_status(link.exchange(data, crc), Status.OK, f"BULK_PUT under the cached seq {cached}")
    data, crc, _ = put_unit(link, tid, Opcode.PING, 4, 0, b"ab", seq=(cached - 5) & 0xFFFF)
    expect_status(link.exchange(data, crc), Status.OK, "BULK_PUT under an older seq")
    status, _, first = _commit(link, tid, Opcode.PING, 4)
    for seq in (link.seq, link.seq):
        frame, crc = link.frame(Opcode.BULK_GET, bulk.encode_fetch(tid, 1, 2), seq=seq)
        r = link.exchange(frame, crc)
        expect((r.status, bytes(r.frame.data)) == (Status.OK, b"bc"), "BULK_GET under a reused seq",
               (0, "bc"), (r.status_name, bytes(r.frame.data)))


@check("bulk", f"A raw block cut short is dropped after {RAW_IDLE_S:g} s without bytes (DATA_CRC) and its "
               "bytes are searched again: the frame sent after it is answered.")
def cut_short_block(ctx):
    link, _ = _bulk(ctx)
    raw = bytes(range(1, 201))
    data, crc, seq = put_unit(link, 0x600D, Opcode.PING, len(raw), 0, raw)
    head = data.index(b"\x00") + 1
    link.send(data[:head + 4] + b"\x00")  # 196 raw bytes are lost; the unit's closing 0x00 arrives
    ping, pcrc = link.frame(Opcode.PING, b"swallowed?")
    link.send(ping)  # taken as raw bytes by the board, which still waits for more
    time.sleep(RAW_IDLE_S * 2)
    link.send(b"\x00")  # the next byte after the idle time ends the block
    frames = link.collect(2, ctx.timeout_s)
    got = {(f.opcode, f.status) for f in frames}
    expect((Opcode.BULK_PUT, Status.DATA_CRC) in got, "no DATA_CRC for the cut-short block",
           "DATA_CRC", sorted(got))
    expect(any(f.echo == pcrc and f.status == Status.OK and f.payload == b"swallowed?" for f in frames),
           "the PING inside the dropped block was not answered", "PING reply", sorted(got))


@check("bulk", "A burst of garbage is not answered run by run: the raw bytes after a BULK_PUT frame that failed "
               "its own CRC (2,000 bad runs in one write) get a few BAD_FRAMEs at most (one per read); the next "
               "valid frame is answered as usual.")
def garbage_burst(ctx):
    link, _ = _bulk(ctx)
    data, crc, _ = put_unit(link, 0x7E57, Opcode.PING, 6000, 0, b"\x01\x02\x00" * 2000)
    frame_end = data.index(b"\x00") + 1
    broken = bytearray(data)
    broken[frame_end // 2] ^= 0x40 if broken[frame_end // 2] not in (0, 0x40) else 0x01  # the frame's CRC fails
    link.send(bytes(broken))
    replies = link.collect(1, ctx.timeout_s) + link.quiet(0.3)  # the first reply, then any more
    bad = [f for f in replies if f.status == Status.BAD_FRAME]
    expect(1 <= len(bad) <= 8, "BAD_FRAME replies to one lost BULK_PUT frame and its 2,000-run raw bytes",
           "1..8", len(bad))
    link.ok(Opcode.PING, b"after the burst")
