"""Issue 17 item 4 (link3): the two ends of a bulk transfer overlap instead of taking turns.

- Readout: the board writes each BULK_GET reply (frame, raw block, 0x00) as soon as it is
  ready (VirtualFirmware.flush, set by ``sim serve``'s loop), so the host receives piece k while
  the board prepares piece k+1 -- same bytes, same order as one write at the end.
- Upload: the host sends each BULK_PUT piece as soon as its frame is built, so the board
  receives piece k while the host computes piece k+1's CRC-32 (drivers/bulkmode.py).

No wire change: every check reads the bytes with the spec's layout (tests/wire_ref.py, the
BULK record of docs/protocol.md) and faults must still end in a resent piece or an error.
"""
from __future__ import annotations

import struct
import zlib

from firmware_iface import bulk
from firmware_iface.spec import Opcode, Status
from sim_backend.board import make_board
from sim_backend.firmware import VirtualFirmware
from tests.test_bulk_mode import SESSION, _replies, ref_put
from tests.wire_ref import reference_frame

PAYLOAD = bytes([0, 3, 0, 0, 200, 1, 0]) * 36  # 252 bytes with many 0x00: PING echoes them (<= MAX_PING)
TID = 0x5EED


def _board_with_kept_reply() -> VirtualFirmware:
    """A board holding PAYLOAD as the kept reply of transfer TID (a PING staged by BULK_PUT)."""
    fw = make_board(1, 0, "ideal")
    assert _replies(fw.feed(reference_frame(Opcode.HELLO, 0, session=SESSION)))[0]["status"] == Status.OK
    fw.feed(ref_put(1, TID, Opcode.PING, len(PAYLOAD), 0, PAYLOAD))
    (commit,) = _replies(fw.feed(reference_frame(Opcode.COMMIT, 2, bulk.encode_commit(TID, Opcode.PING, len(PAYLOAD)),
                                                 session=SESSION)))
    assert commit["status"] == Status.OK
    return fw


def _gets(pieces: list[tuple[int, int]], first_seq: int = 10) -> bytes:
    """BULK_GET requests for ``pieces`` (offset, length), then STATUS: one readout round."""
    out = b"".join(reference_frame(Opcode.BULK_GET, first_seq + i, struct.pack("<III", TID, off, n), session=SESSION)
                   for i, (off, n) in enumerate(pieces))
    return out + reference_frame(Opcode.STATUS, first_seq + len(pieces), session=SESSION)


PIECES = [(0, 90), (90, 90), (180, 72)]


def test_board_writes_each_raw_reply_before_preparing_the_next():
    """kills the flush in VirtualFirmware._answer (replies held until every frame of the read was
    handled: the host then waits for the board's CRC-32 of every piece before its first byte):
    piece k's reply is written before piece k+1 is handled, and each written reply is the
    spec's unit for exactly that piece (offset, nbytes, CRC-32 of PAYLOAD's bytes)."""
    fw = _board_with_kept_reply()
    log: list = []
    handler = fw._handlers[Opcode.BULK_GET]
    fw._handlers[Opcode.BULK_GET] = lambda p: (log.append(("handle", struct.unpack("<III", p)[1])), handler(p))[1]
    fw.flush = lambda parts: log.append(("write", b"".join(bytes(memoryview(x).cast("B")) for x in parts)))
    rest = b"".join(bytes(memoryview(x).cast("B")) for x in fw.feed_parts(_gets(PIECES)))
    assert [e[0] if e[0] == "write" else e for e in log] == [("handle", 0), "write", ("handle", 90), "write",
                                                             ("handle", 180), "write"]
    for (kind, wrote), (off, n) in zip([e for e in log if e[0] == "write"], PIECES):
        (r,) = _replies(wrote)
        assert (r["status"], r["offset"], r["nbytes"], r["data"]) == (Status.OK, off, n, PAYLOAD[off:off + n])
        assert r["crc"] == zlib.crc32(PAYLOAD[off:off + n])
    assert [(r["opcode"], r["status"]) for r in _replies(rest)] == [(Opcode.STATUS, Status.OK)]


def test_streamed_replies_are_the_bytes_of_one_write():
    """kills a flush that drops, repeats or reorders parts (the host would see a frame twice, or
    a raw block without its frame): what is written early, then what is returned, is byte for
    byte what a board without a writer answers in one piece -- also when a piece is refused
    (beyond the result: OUT_OF_RANGE) between two good ones."""
    pieces = [(0, 100), (200, 100), (100, 100)]  # the middle one runs past the 252 bytes
    plain = _board_with_kept_reply().feed(_gets(pieces))
    fw = _board_with_kept_reply()
    wrote: list[bytes] = []
    fw.flush = lambda parts: wrote.append(b"".join(bytes(memoryview(x).cast("B")) for x in parts))
    rest = b"".join(bytes(memoryview(x).cast("B")) for x in fw.feed_parts(_gets(pieces)))
    assert b"".join(wrote) + rest == plain and len(wrote) == 2  # each OK piece, as it is ready
    r = _replies(plain)
    assert [(x["opcode"], x["status"]) for x in r] == [(Opcode.BULK_GET, Status.OK), (Opcode.BULK_GET, Status.OUT_OF_RANGE),
                                                       (Opcode.BULK_GET, Status.OK), (Opcode.STATUS, Status.OK)]
