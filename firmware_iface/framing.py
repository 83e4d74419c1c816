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

Bulk mode (capability BULK): a frame that announces a raw block -- which frames do is the
caller's rule, given to :class:`FrameDecoder` as ``raw`` -- is followed on the wire by
``nbytes`` raw (unstuffed) bytes and a 0x00.  The decoder collects exactly ``nbytes`` bytes
after the frame's delimiter and checks their CRC-32; on a mismatch, or when the block stops
for ``RAW_IDLE_S``, it reports :class:`RawBlockError` and hunts for delimiters again from the
first byte it had taken as raw, so frames swallowed by a cut-short block are still found.
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cobs import cobs

from firmware_iface.crc import crc32

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
RAW_IDLE_S = 0.2
"""A receiver abandons a raw block (bulk mode) when no byte of it arrived for this long (s)."""


class FrameError(ValueError):
    """A received frame is malformed (bad COBS, CRC, length or version)."""


class RawBlockError(FrameError):
    """The raw block announced by ``frame`` (bulk mode) failed its CRC-32 or was abandoned."""

    def __init__(self, frame: "Frame", reason: str) -> None:
        super().__init__(reason)
        self.frame = frame


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
    data: bytes | bytearray = b""
    """Bulk mode: the raw block that followed the frame on the wire (CRC-checked)."""

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)


def _body(frame: Frame) -> bytes:
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    return HEADER.pack(frame.version, frame.opcode, frame.flags, frame.status, frame.seq & 0xFFFF, 0,
                       frame.session & 0xFFFFFFFF, frame.echo & 0xFFFFFFFF, len(frame.payload)) + frame.payload


def _with_data(frame: Frame, data) -> Frame:
    """``dataclasses.replace(frame, data=data)`` without its per-field introspection (on the
    bulk path once per piece): the same fields, ``data`` set."""
    new = object.__new__(Frame)
    new.__dict__.update(frame.__dict__, data=data)
    return new


def frame_crc(frame: Frame) -> int:
    """The CRC-32 trailer ``frame`` carries on the wire (what a reply to it echoes)."""
    return crc32(_body(frame))


def encode_frame(frame: Frame) -> bytes:
    """Frame -> bytes on the wire (including the trailing 0x00 delimiter)."""
    body = _body(frame)
    return cobs.encode(body + CRC.pack(crc32(body))) + DELIMITER


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
    if crc32(memoryview(body)[: len(body) - CRC.size]) != crc:
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


_MIN_RUN = 1 + 1 + CRC.size
"""Shortest run that can decode to anything: COBS code byte, version byte, CRC-32."""
_SHORT_RUN = FrameError(f"run shorter than {_MIN_RUN} bytes")


RawRule = Callable[[Frame], "tuple[int, int] | None"]
"""Bulk mode: (nbytes, crc32) of the raw block that follows ``frame`` on the wire, or None."""
RawSink = Callable[[Frame, int], "memoryview | None"]
"""Bulk mode: where the ``nbytes``-byte raw block announced by ``frame`` is to be collected (a
writable byte view of exactly that length, e.g. its place in the caller's result), or None for
the decoder's own buffer."""


class FrameDecoder:
    """Incremental stream parser: feed bytes, get frames; garbage is counted and skipped.

    ``raw`` (bulk mode) says which frames are followed by a raw block; without it every byte
    is parsed as COBS frames."""

    def __init__(self, max_frame: int = MAX_WIRE_FRAME, raw: RawRule | None = None,
                 raw_idle_s: float = RAW_IDLE_S) -> None:
        self._buf = bytearray()
        self._scan = 0
        """Bytes of ``_buf`` already searched for a delimiter (none there)."""
        self._max = max_frame
        self._rule = raw
        self._idle = raw_idle_s
        self._raw: tuple[Frame, int, int] | None = None
        """Raw block being collected: (announcing frame, nbytes, crc)."""
        self.sink: RawSink | None = None
        """Where raw blocks are collected (see :data:`RawSink`); None: the decoder's buffer."""
        self._sink: memoryview | None = None
        """Where the raw block being collected goes: the caller's view, or a buffer of the
        block's size (None until its first bytes arrive, and when it arrives whole in one
        ``feed_events``: then it is handed out as a view of those bytes, uncopied)."""
        self._got = 0
        """Bytes of the raw block already in ``_sink``."""
        self._crc_got = 0
        """CRC-32 of those ``_got`` bytes, carried along as they arrive: each piece is checked
        while it is still in the cache it was just received into, not re-read at the end."""
        self._last = self._now = 0.0
        self.errors = 0
        """Number of malformed frames (or garbage runs, or failed raw blocks) discarded so far."""
        self.last_error = ""
        self.foreign = 0
        """Number of CRC-valid frames of another protocol revision seen so far."""
        self.last_foreign: VersionError | None = None

    def _error(self, exc: FrameError, out: list) -> None:
        self.errors += 1
        self.last_error = str(exc)
        if isinstance(exc, VersionError):
            self.foreign += 1
            self.last_foreign = exc
        out.append(exc)

    def feed_events(self, data: bytes, now: float | None = None) -> list[Frame | FrameError]:
        """Add received bytes; return, in order, every frame they complete and every error.

        ``now`` (monotonic s) is when they arrived; a raw block that got no byte for
        ``raw_idle_s`` before them is abandoned first.  A raw block that arrives whole inside
        ``data`` is handed out as a view of it, without a copy."""
        out: list[Frame | FrameError] = []
        self._now = now = time.monotonic() if now is None else now
        if self._raw is not None and data:
            if now - self._last > self._idle:
                self._fail_raw("raw block stopped for longer than RAW_IDLE_S", out)
            self._last = now
        if self._buf or not isinstance(data, bytes):
            self._buf += data
            self._parse(out, None)
        else:  # nothing pending: parse the received bytes where they are
            self._parse(out, data)
        return out

    def abandon(self) -> list[Frame | FrameError]:
        """Give up an incomplete raw block now (the caller's deadline passed): its bytes are
        searched for frames again.  Returns what that finds."""
        out: list[Frame | FrameError] = []
        if self._raw is not None:
            self._fail_raw("raw block incomplete at the deadline", out)
            self._now = time.monotonic()
            self._parse(out, None)
        return out

    def raw_target(self) -> memoryview | None:
        """Where the next received bytes belong, when they can be read there directly (a raw
        block being collected into the caller's view, nothing else pending): the rest of that
        view.  After reading ``n`` bytes into it, call :meth:`raw_received`.  None otherwise."""
        if self._raw is None or self._sink is None or self._buf:
            return None
        return self._sink[self._got:]

    def detach_sink(self) -> None:
        """Stop collecting into the caller's view (the caller is done with it): a raw block
        being collected continues in the decoder's own buffer.  Also clears :attr:`sink`."""
        self.sink = None
        if self._sink is not None and self._raw is not None:
            own = bytearray(self._raw[1])
            own[:self._got] = self._sink[:self._got]
            self._sink = memoryview(own)

    def raw_received(self, n: int, now: float | None = None) -> list[Frame | FrameError]:
        """``n`` bytes were read into :meth:`raw_target`'s view: what they complete (as
        :meth:`feed_events` would return for the same bytes)."""
        now = time.monotonic() if now is None else now
        if n <= 0:
            return []
        if now - self._last > self._idle:  # the block had stopped: the bytes are parsed anew
            data = bytes(self._sink[self._got:self._got + n])
            return self.feed_events(data, now)
        self._now = self._last = now
        self._crc_got = crc32(self._sink[self._got:self._got + n], self._crc_got)
        self._got += n
        out: list[Frame | FrameError] = []
        self._parse(out, None)
        return out

    def _fail_raw(self, reason: str, out: list, rest: bytes = b"") -> None:
        """Drop the raw block; its bytes, then ``rest``, become the bytes still to be parsed
        (the hunt for delimiters restarts at the first byte taken as raw)."""
        frame = self._raw[0]
        self._raw = None
        self._error(RawBlockError(frame, reason), out)
        self._buf[:0] = self._sink[:self._got] if self._sink is not None else b""
        self._buf += rest
        self._sink, self._got, self._crc_got = None, 0, 0
        self._scan = 0

    def _parse(self, out: list, data: bytes | None) -> None:
        """Parse ``self._buf`` (``data`` None) or ``data`` (``self._buf`` empty; what is left of
        it is kept in ``self._buf``)."""
        buf = self._buf if data is None else data
        start = 0
        scan = self._scan if data is None else 0
        while True:
            if self._raw is not None:
                n = self._raw[1]
                if self._sink is None and data is not None and len(buf) - start >= n:
                    block = memoryview(buf)[start:start + n]  # whole in ``data``: a view
                    start += n
                    got = n
                else:  # into the caller's view, or a buffer of the block's size: one copy
                    if self._sink is None:
                        self._sink = memoryview(bytearray(n))
                    take = min(len(buf) - start, n - self._got)
                    self._sink[self._got:self._got + take] = memoryview(buf)[start:start + take]
                    self._crc_got = crc32(self._sink[self._got:self._got + take], self._crc_got)
                    self._got += take
                    start += take
                    got, block = self._got, self._sink
                scan = start
                if got < n:
                    break
                frame, _, crc = self._raw
                if (self._crc_got if block is self._sink else crc32(block)) == crc:
                    self._raw = None
                    out.append(_with_data(frame, block))  # handed over, not copied
                    self._sink, self._got, self._crc_got = None, 0, 0
                    continue
                rest = bytes(buf[start:] if self._sink is not None else buf[start - n:])  # a view: its bytes too
                if data is None:
                    buf.clear()
                self._fail_raw(f"raw block of {n} bytes failed its CRC-32", out, rest)
                buf, data, start, scan = self._buf, None, 0, 0
                continue
            end = buf.find(0, scan)
            if end < 0:
                break
            if 0 < end - start < _MIN_RUN:  # garbage (e.g. a raw block being hunted): no decoding
                self.errors += 1
                self.last_error = str(_SHORT_RUN)
                out.append(_SHORT_RUN)
            elif end > start:
                try:
                    frame = decode_body(bytes(buf[start:end]))
                except FrameError as exc:
                    self._error(exc, out)
                else:
                    announced = self._rule(frame) if self._rule is not None else None
                    if announced is None:
                        out.append(frame)
                    else:
                        self._raw, self._last = (frame, *announced), self._now
                        sink = self.sink(frame, announced[0]) if self.sink is not None else None
                        self._sink = sink if sink is not None and len(sink) == announced[0] else None
                        self._got = 0
            start = scan = end + 1
        if data is None:
            del buf[:start]
        else:
            self._buf += memoryview(buf)[start:]
        buf = self._buf
        self._scan = len(buf) if self._raw is None else 0
        if len(buf) > self._max:  # no delimiter in far too long: drop the garbage
            self._error(FrameError("oversized frame discarded"), out)
            buf.clear()
            self._scan = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete valid frame they finish, in order."""
        return [f for f in self.feed_events(data) if isinstance(f, Frame)]

    def pending(self) -> int:
        """Bytes buffered while waiting for a delimiter or the rest of a raw block."""
        return len(self._buf) + self._got
