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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from firmware_iface.records import expect_end, pack, unpack


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


def encode_commit(transfer: int, opcode: int, total: int) -> bytes:
    return pack("COMMIT", id=transfer, opcode=opcode, total=total)


def decode_commit(payload: bytes) -> tuple[int, int, int]:
    r, off = unpack("COMMIT", payload)
    expect_end(payload, off, "COMMIT")
    return int(r["id"]), int(r["opcode"]), int(r["total"])


def encode_result(transfer: int, status: int, length: int, first: bytes) -> bytes:
    return pack("RESULT", id=transfer, status=status, length=length) + first


def decode_result(payload: bytes) -> tuple[int, int, int, bytes]:
    """(id, status, length of the whole reply, first piece)."""
    r, off = unpack("RESULT", payload)
    return int(r["id"]), int(r["status"]), int(r["length"]), bytes(payload[off:])


def encode_fetch(transfer: int, offset: int, length: int) -> bytes:
    return pack("FETCH", id=transfer, offset=offset, length=length)


def decode_fetch(payload: bytes) -> tuple[int, int, int]:
    r, off = unpack("FETCH", payload)
    expect_end(payload, off, "FETCH")
    return int(r["id"]), int(r["offset"]), int(r["length"])
