"""Bounded frames and board limits (issue 16): the STAGE / COMMIT / FETCH transfer and the
LIMITS record.  No I/O.

A request larger than ``max_chunk`` bytes (or one whose reply may be) travels as a
*transfer*: the host picks a non-zero 32-bit ``id``, sends the request payload in pieces of
at most ``max_chunk`` bytes with STAGE (each piece its own frame, its own seq, retried on its
own), then COMMIT runs the assembled payload as the target opcode -- at most once per id: a
COMMIT of an id already run returns the kept result again.  The COMMIT reply carries the
RESULT record (the command's status and reply length) and the first piece of the reply; the
host FETCHes the rest in pieces of at most ``max_chunk`` bytes.  Every frame on the wire is
therefore at most ``max_chunk`` + 32 bytes of payload, whatever the command's size.

Bulk mode (capability BULK, decision 0016): BULK_PUT and BULK_GET move the pieces of the same
transfer as raw bytes after a small CRC-checked frame (the BULK record announces ``nbytes`` and
their CRC-32), without COBS stuffing and in pieces of any size up to ``max_payload``; both are
unsequenced, so the host pipelines many pieces and re-sends only the ones that failed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from firmware_iface.crc import crc32
from firmware_iface.framing import DELIMITER, MAX_PAYLOAD, Frame, encode_frame
from firmware_iface.records import PayloadError, expect_end, pack, record_struct, unpack, unpack_exact
from firmware_iface.spec import Opcode, Status


@dataclass(frozen=True)
class Limits:
    """LIMITS record in SI-free integer units (bytes, steps, pulses, bits, ns)."""

    max_chunk: int
    max_payload: int
    max_steps: int
    max_pulses: int
    sample_slots: int
    sample_memory_bits: int
    max_pulse_records: int
    max_wv_cells: int
    max_read_cells: int
    max_averages: int
    max_wait_ns: int
    max_chip_ns: int
    memory_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def encode_limits(lim: Limits) -> bytes:
    return pack("LIMITS", **lim.as_dict())


def decode_limits(payload: bytes) -> Limits:
    r, off = unpack("LIMITS", payload)
    expect_end(payload, off, "LIMITS")
    return Limits(**{k: int(r[k]) for k in Limits.__dataclass_fields__})


def encode_stage(transfer: int, opcode: int, total: int, offset: int, piece: bytes) -> bytes:
    return pack("STAGE", id=transfer, opcode=opcode, total=total, offset=offset) + piece


def decode_stage(payload: bytes) -> tuple[int, int, int, int, bytes]:
    """(id, opcode, total, offset, piece)."""
    r, off = unpack("STAGE", payload)
    return int(r["id"]), int(r["opcode"]), int(r["total"]), int(r["offset"]), bytes(payload[off:])


# COMMIT and RESULT travel once per transfer, on the path where one end waits for the other:
# ``struct``, not numpy records (tens of microseconds per call with cold caches, docs/BENCHMARKS.md
# link4); a payload of the wrong size goes through ``unpack`` for the same error as ever.
_COMMIT, _RESULT = record_struct("COMMIT"), record_struct("RESULT")


def encode_commit(transfer: int, opcode: int, total: int) -> bytes:
    return _COMMIT.pack(transfer, opcode, 0, 0, total)


def decode_commit(payload: bytes) -> tuple[int, int, int]:
    if len(payload) != _COMMIT.size:
        _, off = unpack("COMMIT", payload)
        expect_end(payload, off, "COMMIT")
    tid, opcode, _, _, total = _COMMIT.unpack(payload)
    return tid, opcode, total


def encode_result(transfer: int, status: int, length: int, first: bytes) -> bytes:
    return _RESULT.pack(transfer, status, 0, 0, length) + first


def decode_result(payload: bytes) -> tuple[int, int, int, bytes]:
    """(id, status, length of the whole reply, first piece)."""
    if len(payload) < _RESULT.size:
        unpack("RESULT", payload)
    tid, status, _, _, length = _RESULT.unpack_from(payload)
    return tid, status, length, bytes(payload[_RESULT.size:])


def encode_fetch(transfer: int, offset: int, length: int) -> bytes:
    return record_struct("FETCH").pack(transfer, offset, length)


def decode_fetch(payload: bytes) -> tuple[int, int, int]:
    return unpack_exact("FETCH", payload)


# --- bulk mode (capability BULK): pieces as raw bytes after a CRC-checked frame ----------------
@dataclass(frozen=True)
class BulkHeader:
    """BULK record: which bytes of which transfer the raw block after the frame holds."""

    id: int
    opcode: int
    total: int
    offset: int
    nbytes: int
    crc: int


def encode_bulk(h: BulkHeader) -> bytes:
    return record_struct("BULK").pack(h.id, h.opcode, 0, 0, h.total, h.offset, h.nbytes, h.crc)


def decode_bulk(payload: bytes) -> BulkHeader:
    tid, opcode, _, _, total, offset, nbytes, crc = unpack_exact("BULK", payload)
    return BulkHeader(tid, opcode, total, offset, nbytes, crc)


def bulk_header(transfer: int, opcode: int, total: int, offset: int, data: bytes) -> BulkHeader:
    """The BULK record announcing ``data`` as bytes ``offset``.. of a ``total``-byte transfer."""
    return BulkHeader(transfer, opcode, total, offset, len(data), crc32(data))


def _announced(frame: Frame) -> tuple[int, int] | None:
    try:
        h = decode_bulk(frame.payload)
    except (PayloadError, ValueError):
        return None  # not a BULK record: no raw block follows (the handler refuses the frame)
    if h.nbytes > MAX_PAYLOAD:
        return None
    return h.nbytes, h.crc


def board_raw_rule(frame: Frame) -> tuple[int, int] | None:
    """Board side: a BULK_PUT request is followed by its raw block."""
    if frame.opcode != Opcode.BULK_PUT or frame.is_response:
        return None
    return _announced(frame)


def host_raw_rule(frame: Frame) -> tuple[int, int] | None:
    """Host side: a BULK_GET reply of status OK is followed by its raw block."""
    if frame.opcode != Opcode.BULK_GET or not frame.is_response or frame.status != Status.OK:
        return None
    return _announced(frame)


def bulk_unit(frame: Frame, data: bytes) -> tuple[bytes, bytes, bytes]:
    """A frame that carries a BULK record, as the three parts that go on the wire in order:
    the COBS frame (with its 0x00), the raw bytes, and the 0x00 that ends the raw block."""
    return encode_frame(frame), data, DELIMITER
