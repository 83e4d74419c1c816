"""Bounded-frame and bulk-mode records of firmware_iface/bulk.py against docs/protocol.md (issue 18).

Expected bytes are packed by hand with ``struct`` from docs/protocol.md "Records" (LIMITS, STAGE,
COMMIT, RESULT, FETCH, BULK; packed little-endian, ``_pad`` fields zero); CRCs with ``zlib.crc32``
(section Bulk mode [bulk]: CRC-32 zlib/IEEE of the raw bytes); frames for the raw-block rules are
built from docs/protocol.md [framing] (flags bit 0 = response).
"""
from __future__ import annotations

import struct
import zlib

import pytest
from cobs import cobs

from firmware_iface import bulk
from firmware_iface.framing import MAX_PAYLOAD, Frame
from firmware_iface.records import PayloadError
from firmware_iface.spec import Opcode, Status

LIMITS = "<IIHHIQIIIHHQQQ"   # LIMITS (64 bytes)
STAGE = "<IBBHII"            # STAGE (16 bytes): id, opcode, _pad, _pad2, total, offset
COMMIT = "<IBBHI"            # COMMIT (12 bytes): id, opcode, _pad, _pad2, total
RESULT = "<IBBHI"            # RESULT (12 bytes): id, status, _pad, _pad2, length
FETCH = "<III"               # FETCH (12 bytes): id, offset, length
BULK = "<IBBHIIII"           # BULK (24 bytes): id, opcode, _pad, _pad2, total, offset, nbytes, crc


def test_hand_formats_have_the_documented_sizes():
    assert [struct.calcsize(f) for f in (LIMITS, STAGE, COMMIT, RESULT, FETCH, BULK)] == [64, 16, 12, 12, 12, 24]


_LIM = dict(max_chunk=4096, max_payload=1 << 20, max_steps=4096, max_pulses=1000, sample_slots=512,
            sample_memory_bits=1 << 33, max_pulse_records=2000, max_wv_cells=3000, max_read_cells=4000,
            max_averages=64, max_wait_ns=10**16, max_chip_ns=2**62, memory_bytes=3 << 30)


def _limits_bytes() -> bytes:
    v = _LIM
    return struct.pack(LIMITS, v["max_chunk"], v["max_payload"], v["max_steps"], v["max_pulses"],
                       v["sample_slots"], v["sample_memory_bits"], v["max_pulse_records"], v["max_wv_cells"],
                       v["max_read_cells"], v["max_averages"], 0, v["max_wait_ns"], v["max_chip_ns"],
                       v["memory_bytes"])


def test_limits_record_round_trip_against_the_spec_layout():
    """kills bulk.encode_limits / decode_limits / Limits.as_dict mutants: [op.get_limits] LIMITS."""
    lim = bulk.Limits(**_LIM)
    assert bulk.encode_limits(lim) == _limits_bytes()
    assert bulk.decode_limits(_limits_bytes()) == lim
    assert lim.as_dict() == _LIM
    with pytest.raises(PayloadError):
        bulk.decode_limits(_limits_bytes() + b"\x00")


def test_stage_record_and_piece():
    """kills bulk.encode_stage / decode_stage mutants: [op.stage] STAGE then the piece."""
    raw = struct.pack(STAGE, 0xA1B2C3D4, 0x12, 0, 0, 100_000, 8192) + b"piece\x00bytes"
    assert bulk.encode_stage(0xA1B2C3D4, 0x12, 100_000, 8192, b"piece\x00bytes") == raw
    got = bulk.decode_stage(raw)
    assert got == (0xA1B2C3D4, 0x12, 100_000, 8192, b"piece\x00bytes")
    assert type(got[4]) is bytes
    assert bulk.decode_stage(memoryview(raw[:16]))[4] == b""


def test_commit_record():
    """kills bulk.encode_commit / decode_commit mutants: [op.commit] COMMIT, nothing after it."""
    raw = struct.pack(COMMIT, 7, 0x10, 0, 0, 65_537)
    assert bulk.encode_commit(7, 0x10, 65_537) == raw
    assert bulk.decode_commit(raw) == (7, 0x10, 65_537)
    with pytest.raises(PayloadError):
        bulk.decode_commit(raw + b"\x00")


def test_result_record_and_first_piece():
    """kills bulk.encode_result / decode_result mutants: [op.commit] reply = RESULT then the
    first min(length, max_chunk) bytes."""
    raw = struct.pack(RESULT, 9, int(Status.NO_MEMORY), 0, 0, 70_000) + b"\x01\x02\x03"
    assert bulk.encode_result(9, int(Status.NO_MEMORY), 70_000, b"\x01\x02\x03") == raw
    got = bulk.decode_result(raw)
    assert got == (9, int(Status.NO_MEMORY), 70_000, b"\x01\x02\x03") and type(got[3]) is bytes


def test_fetch_record():
    """kills bulk.encode_fetch / decode_fetch mutants: FETCH (id, offset, length), exact size."""
    raw = struct.pack(FETCH, 3, 4096, 1024)
    assert bulk.encode_fetch(3, 4096, 1024) == raw
    assert tuple(bulk.decode_fetch(raw)) == (3, 4096, 1024)
    with pytest.raises(PayloadError):
        bulk.decode_fetch(raw + b"\x00")
    with pytest.raises(PayloadError):
        bulk.decode_fetch(raw[:-1])


def test_bulk_record_and_header_from_data():
    """kills bulk.encode_bulk / decode_bulk / bulk_header mutants: BULK record (pads zero),
    nbytes = len(data), crc = zlib CRC-32 of the data ([bulk])."""
    data = bytes(range(256)) * 3
    h = bulk.bulk_header(0x55, 0x20, 10_000, 2048, data)
    assert h == bulk.BulkHeader(0x55, 0x20, 10_000, 2048, 768, zlib.crc32(data))
    raw = struct.pack(BULK, 0x55, 0x20, 0, 0, 10_000, 2048, 768, zlib.crc32(data))
    assert bulk.encode_bulk(h) == raw
    assert bulk.decode_bulk(raw) == h
    with pytest.raises(PayloadError):
        bulk.decode_bulk(raw + b"\x00")


def _bulk_frame(opcode: int, response: bool, nbytes: int = 5, crc: int = 0xCAFEBABE,
                status: int = 0, payload: bytes | None = None) -> Frame:
    if payload is None:
        payload = struct.pack(BULK, 1, 0x20, 0, 0, 100, 0, nbytes, crc)
    return Frame(opcode, 0, payload, flags=1 if response else 0, status=status)


def test_board_raw_rule_only_for_bulk_put_requests():
    """kills bulk.board_raw_rule mutants: [op.bulk_put] the raw block follows a BULK_PUT request
    only -- not its response, not another opcode."""
    assert bulk.board_raw_rule(_bulk_frame(Opcode.BULK_PUT, False)) == (5, 0xCAFEBABE)
    assert bulk.board_raw_rule(_bulk_frame(Opcode.BULK_PUT, True)) is None
    assert bulk.board_raw_rule(_bulk_frame(Opcode.BULK_GET, False)) is None
    assert bulk.board_raw_rule(_bulk_frame(Opcode.STAGE, False)) is None


def test_host_raw_rule_only_for_ok_bulk_get_replies():
    """kills bulk.host_raw_rule mutants: [op.bulk_get] the raw block follows a BULK_GET reply of
    status OK only."""
    assert bulk.host_raw_rule(_bulk_frame(Opcode.BULK_GET, True)) == (5, 0xCAFEBABE)
    assert bulk.host_raw_rule(_bulk_frame(Opcode.BULK_GET, False)) is None
    assert bulk.host_raw_rule(_bulk_frame(Opcode.BULK_GET, True, status=int(Status.NOT_READY))) is None
    assert bulk.host_raw_rule(_bulk_frame(Opcode.BULK_PUT, True)) is None


def test_announced_refuses_non_bulk_payloads_and_oversized_blocks():
    """kills bulk._announced mutants: a payload that is not one BULK record announces nothing; a
    block of more than MAX_PAYLOAD bytes is not announced; exactly MAX_PAYLOAD is."""
    assert bulk.board_raw_rule(_bulk_frame(Opcode.BULK_PUT, False, payload=b"short")) is None
    assert bulk.board_raw_rule(_bulk_frame(Opcode.BULK_PUT, False, nbytes=MAX_PAYLOAD + 1)) is None
    assert bulk.board_raw_rule(_bulk_frame(Opcode.BULK_PUT, False, nbytes=MAX_PAYLOAD)) == (MAX_PAYLOAD, 0xCAFEBABE)


def test_bulk_unit_is_frame_raw_bytes_delimiter():
    """kills bulk.bulk_unit mutants: [bulk] the COBS frame with its 0x00, the raw bytes, a 0x00.
    The frame is built by hand from [framing]: header, payload, zlib CRC-32, COBS (cobs package)."""
    payload = struct.pack(BULK, 2, 0x12, 0, 0, 3, 0, 3, zlib.crc32(b"\x00\x01\x00"))
    f = Frame(int(Opcode.BULK_PUT), 0, payload, session=0x1234)
    body = struct.pack("<BBBBHHIII", 2, 0x70, 0, 0, 0, 0, 0x1234, 0, len(payload)) + payload
    want_frame = cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"
    assert bulk.bulk_unit(f, b"\x00\x01\x00") == (want_frame, b"\x00\x01\x00", b"\x00")
