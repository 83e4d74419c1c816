"""Frame layer of the host<->FPGA link (protocol v2): header, CRC-32, COBS, 0x00 delimiter.

On the wire one frame is ``COBS(header || payload || crc32_le) || 0x00``:

    header (20 bytes, little-endian) = version u8, opcode u8, flags u8, status u8,
                                        seq u16, _rsv u16 (zero), session u32, echo u32,
                                        length u32
    crc32 = zlib/IEEE CRC-32 over header || payload

``session`` is the host's session id (opened by HELLO); ``echo`` is 0 in requests and, in a
reply, the CRC-32 trailer of the request frame it answers, so a reply is bound to exactly one
request (session, seq, opcode and payload).  COBS removes every 0x00 from the body, so a 0x00
always ends a frame and the receiver resynchronises after garbage at the next delimiter.
The version byte comes first in every protocol revision: a receiver reads it before anything
else and refuses a frame of another revision (:class:`VersionError`).  This module has no I/O.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from cobs import cobs

PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BBBBHHIII")
HEADER_FIELDS = ("version", "opcode", "flags", "status", "seq", "_rsv", "session", "echo", "length")
CRC = struct.Struct("<I")
DELIMITER = b"\x00"
FLAG_RESPONSE = 0x01
MAX_PAYLOAD = 4 * 1024 * 1024
"""Largest payload either side accepts (bytes)."""
MAX_FRAME = HEADER.size + MAX_PAYLOAD + CRC.size
"""Largest unstuffed frame body (header + payload + CRC), bytes."""
MAX_WIRE_FRAME = MAX_FRAME + MAX_FRAME // 254 + 2
"""Largest frame on the wire: COBS adds at most one byte per 254 plus one, then the delimiter."""


class FrameError(ValueError):
    """A received frame is malformed (bad COBS, CRC, length or version)."""


class VersionError(FrameError):
    """A well-formed (CRC-valid) frame of another protocol revision."""

    def __init__(self, version: int, crc: int) -> None:
        super().__init__(f"protocol version {version}, expected {PROTOCOL_VERSION}")
        self.version = version
        self.crc = crc


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    opcode: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    status: int = 0
    version: int = PROTOCOL_VERSION
    session: int = 0
    echo: int = 0
    crc: int = field(default=0, compare=False)
    """CRC-32 trailer as received (set by the decoder; not part of equality)."""

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)


def _body(frame: Frame) -> bytes:
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    return HEADER.pack(frame.version, frame.opcode, frame.flags, frame.status, frame.seq & 0xFFFF, 0,
                       frame.session & 0xFFFFFFFF, frame.echo & 0xFFFFFFFF, len(frame.payload)) + frame.payload


def frame_crc(frame: Frame) -> int:
    """The CRC-32 trailer ``frame`` carries on the wire (what a reply to it echoes)."""
    return zlib.crc32(_body(frame))


def encode_frame(frame: Frame) -> bytes:
    """Frame -> bytes on the wire (including the trailing 0x00 delimiter)."""
    body = _body(frame)
    return cobs.encode(body + CRC.pack(zlib.crc32(body))) + DELIMITER


def decode_body(stuffed: bytes) -> Frame:
    """Decode one COBS-stuffed body (without delimiter); raises FrameError when invalid.

    Checks, in this order: COBS, minimum size, CRC, version byte, length field.
    """
    try:
        body = cobs.decode(stuffed)
    except cobs.DecodeError as exc:
        raise FrameError(f"bad COBS stuffing: {exc}") from None
    if len(body) < 1 + CRC.size:
        raise FrameError(f"frame of {len(body)} bytes is shorter than a version byte + CRC")
    (crc,) = CRC.unpack_from(body, len(body) - CRC.size)
    if zlib.crc32(memoryview(body)[: len(body) - CRC.size]) != crc:
        raise FrameError("CRC mismatch")
    if body[0] != PROTOCOL_VERSION:
        raise VersionError(body[0], crc)
    if len(body) < HEADER.size + CRC.size:
        raise FrameError(f"frame of {len(body)} bytes is shorter than header + CRC")
    version, opcode, flags, status, seq, rsv, session, echo, length = HEADER.unpack_from(body)
    if length != len(body) - HEADER.size - CRC.size:
        raise FrameError(f"length field {length} does not match payload size "
                         f"{len(body) - HEADER.size - CRC.size}")
    if rsv:
        raise FrameError(f"reserved header field is {rsv}, must be 0")
    return Frame(opcode=opcode, seq=seq, payload=bytes(body[HEADER.size: len(body) - CRC.size]),
                 flags=flags, status=status, version=version, session=session, echo=echo, crc=crc)


class FrameDecoder:
    """Incremental stream parser: feed bytes, get frames; garbage is counted and skipped."""

    def __init__(self, max_frame: int = MAX_WIRE_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self.errors = 0
        """Number of malformed frames (or garbage runs) discarded so far."""
        self.last_error = ""
        self.foreign = 0
        """Number of CRC-valid frames of another protocol revision seen so far."""
        self.last_foreign: VersionError | None = None

    def feed_events(self, data: bytes) -> list[Frame | FrameError]:
        """Add received bytes; return, in order, every frame they complete and every error."""
        buf = self._buf
        scan = len(buf)  # bytes already searched hold no delimiter
        buf += data
        start = 0
        out: list[Frame | FrameError] = []
        while True:
            end = buf.find(0, scan)
            if end < 0:
                break
            if end > start:
                try:
                    out.append(decode_body(bytes(buf[start:end])))
                except FrameError as exc:
                    self.errors += 1
                    self.last_error = str(exc)
                    if isinstance(exc, VersionError):
                        self.foreign += 1
                        self.last_foreign = exc
                    out.append(exc)
            start = scan = end + 1
        del buf[:start]
        if len(buf) > self._max:  # no delimiter in far too long: drop the garbage
            self.errors += 1
            self.last_error = "oversized frame discarded"
            out.append(FrameError(self.last_error))
            buf.clear()
        return out

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete valid frame they finish, in order."""
        return [f for f in self.feed_events(data) if isinstance(f, Frame)]

    def pending(self) -> int:
        """Bytes buffered while waiting for a delimiter."""
        return len(self._buf)
