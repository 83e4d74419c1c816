"""A tiny independent implementation of the protocol-v2 frame layout (docs/protocol.md), used
by tests to build and read frames without going through firmware_iface.framing."""
from __future__ import annotations

import struct
import zlib

HEADER = struct.Struct("<BBBBHHIII")  # version, opcode, flags, status, seq, _rsv, session, echo, length


def reference_cobs(data: bytes) -> bytes:
    """Textbook COBS, written independently of the library the code uses."""
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def reference_uncobs(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        out += data[i + 1:i + code]
        i += code
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def reference_frame(opcode: int, seq: int, payload: bytes = b"", *, flags: int = 0, status: int = 0,
                    session: int = 0, echo: int = 0, version: int = 2) -> bytes:
    """Protocol v2 frame: 20-byte header, CRC-32 (IEEE) of header || payload, COBS, 0x00."""
    body = HEADER.pack(version, opcode, flags, status, seq, 0, session, echo, len(payload)) + payload
    body += struct.pack("<I", zlib.crc32(body))
    return reference_cobs(body) + b"\x00"


def crc_of(wire: bytes) -> int:
    """The CRC-32 trailer of one encoded frame (what a reply to it echoes)."""
    return struct.unpack("<I", reference_uncobs(wire.rstrip(b"\x00"))[-4:])[0]


def read_frames(stream: bytes) -> list[dict]:
    """Split a byte stream into frames and parse their v2 headers (no validation beyond CRC)."""
    out = []
    for chunk in stream.split(b"\x00"):
        if not chunk:
            continue
        body = reference_uncobs(chunk)
        if zlib.crc32(body[:-4]) != struct.unpack("<I", body[-4:])[0]:
            out.append({"bad_crc": True})
            continue
        if body[0] != 2:
            out.append({"version": body[0], "raw": body})
            continue
        f = dict(zip(("version", "opcode", "flags", "status", "seq", "_rsv", "session", "echo", "length"),
                     HEADER.unpack_from(body)))
        f["payload"] = body[HEADER.size:-4]
        out.append(f)
    return out


def v1_frame(opcode: int, seq: int, payload: bytes = b"", *, flags: int = 0, status: int = 0) -> bytes:
    """A protocol-v1 frame (10-byte header: version, opcode, flags, status, seq u16, length u32)."""
    body = struct.pack("<BBBBHI", 1, opcode, flags, status, seq, len(payload)) + payload
    body += struct.pack("<I", zlib.crc32(body))
    return reference_cobs(body) + b"\x00"
