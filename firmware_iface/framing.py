"""Frame layer of the host<->FPGA link: header, CRC-32, COBS stuffing, 0x00 delimiter.

On the wire one frame is ``COBS(header || payload || crc32_le) || 0x00``:

    header (10 bytes, little-endian) = version u8, opcode u8, flags u8, status u8,
                                        seq u16, length u32
    crc32 = zlib/IEEE CRC-32 over header || payload

COBS removes every 0x00 from the body, so a 0x00 always ends a frame and the receiver
resynchronises after any garbage at the next delimiter.  This module has no I/O.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from cobs import cobs

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBBBHI")
CRC = struct.Struct("<I")
DELIMITER = b"\x00"
FLAG_RESPONSE = 0x01
MAX_PAYLOAD = 4 * 1024 * 1024
"""Largest payload either side accepts (bytes)."""


class FrameError(ValueError):
    """A received frame is malformed (bad COBS, CRC, length or version)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    opcode: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    status: int = 0
    version: int = PROTOCOL_VERSION

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)


def encode_frame(frame: Frame) -> bytes:
    """Frame -> bytes on the wire (including the trailing 0x00 delimiter)."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    body = HEADER.pack(frame.version, frame.opcode, frame.flags, frame.status,
                       frame.seq & 0xFFFF, len(frame.payload)) + frame.payload
    body += CRC.pack(zlib.crc32(body))
    return cobs.encode(body) + DELIMITER


def decode_body(stuffed: bytes) -> Frame:
    """Decode one COBS-stuffed body (without delimiter); raises FrameError when invalid."""
    try:
        body = cobs.decode(stuffed)
    except cobs.DecodeError as exc:
        raise FrameError(f"bad COBS stuffing: {exc}") from None
    if len(body) < HEADER.size + CRC.size:
        raise FrameError(f"frame of {len(body)} bytes is shorter than header + CRC")
    (crc,) = CRC.unpack_from(body, len(body) - CRC.size)
    if zlib.crc32(memoryview(body)[: len(body) - CRC.size]) != crc:
        raise FrameError("CRC mismatch")
    version, opcode, flags, status, seq, length = HEADER.unpack_from(body)
    if length != len(body) - HEADER.size - CRC.size:
        raise FrameError(f"length field {length} does not match payload size "
                         f"{len(body) - HEADER.size - CRC.size}")
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version}, expected {PROTOCOL_VERSION}")
    return Frame(opcode=opcode, seq=seq, payload=bytes(body[HEADER.size: len(body) - CRC.size]),
                 flags=flags, status=status, version=version)


class FrameDecoder:
    """Incremental stream parser: feed bytes, get frames; garbage is counted and skipped."""

    def __init__(self, max_frame: int = MAX_PAYLOAD + 64 + MAX_PAYLOAD // 254) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self.errors = 0
        """Number of malformed frames (or garbage runs) discarded so far."""
        self.last_error = ""

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete valid frame they finish, in order."""
        buf = self._buf
        scan = len(buf)  # bytes already searched hold no delimiter
        buf += data
        start = 0
        frames: list[Frame] = []
        while True:
            end = buf.find(0, scan)
            if end < 0:
                break
            if end > start:
                try:
                    frames.append(decode_body(bytes(buf[start:end])))
                except FrameError as exc:
                    self.errors += 1
                    self.last_error = str(exc)
            start = scan = end + 1
        del buf[:start]
        if len(buf) > self._max:  # no delimiter in far too long: drop the garbage
            self.errors += 1
            self.last_error = "oversized frame discarded"
            buf.clear()
        return frames

    def pending(self) -> int:
        """Bytes buffered while waiting for a delimiter."""
        return len(self._buf)
