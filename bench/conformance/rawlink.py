"""A frame-level link to a board for conformance checks: sends exactly the bytes a check
builds (valid, malformed, duplicated, reordered frames) and collects every reply frame.

Unlike the driver it does no retries, no reply matching and no session management: the
checks do that themselves, so they can observe what the board really answers.
"""
from __future__ import annotations

import contextlib
import secrets
import socket
import select
import struct
import time
import zlib
from dataclasses import dataclass

import serial
from cobs import cobs

from drivers.transport import open_link
from firmware_iface.bulk import host_raw_rule
from firmware_iface.framing import (CRC, FLAG_RESPONSE, HEADER, PROTOCOL_VERSION, Frame, FrameDecoder,
                                    FrameError, encode_frame, frame_crc)
from firmware_iface.spec import Opcode, Status
from firmware_iface.spec_text import job_deadline_s


class NoReply(AssertionError):
    """The board did not answer within the deadline (a conformance failure, not an error)."""


@dataclass
class Reply:
    """One reply frame, with the request it was meant for."""

    frame: Frame
    request_crc: int

    @property
    def status(self) -> int:
        return self.frame.status

    @property
    def status_name(self) -> str:
        s = self.frame.status
        return Status(s).name if s in Status._value2member_map_ else f"0x{s:02X}"

    @property
    def payload(self) -> bytes:
        return self.frame.payload

    @property
    def matches(self) -> bool:
        """True when the reply is bound to its request (echo = the request's CRC-32)."""
        return self.frame.echo == self.request_crc


def raw_body(opcode: int, seq: int, payload: bytes = b"", *, session: int = 0, flags: int = 0, status: int = 0,
             version: int = PROTOCOL_VERSION, rsv: int = 0, length: int | None = None, echo: int = 0) -> bytes:
    """Header || payload with any field set as given (for malformed frames)."""
    n = len(payload) if length is None else length
    return HEADER.pack(version, opcode, flags, status, seq & 0xFFFF, rsv, session, echo, n) + payload


def wire(body: bytes, *, crc: int | None = None) -> bytes:
    """COBS(body || crc) || 0x00; ``crc`` overrides the correct CRC-32."""
    c = zlib.crc32(body) if crc is None else crc
    return cobs.encode(body + CRC.pack(c)) + b"\x00"


class RawLink:
    """One connection to the board (opened fresh for every check)."""

    def __init__(self, url: str, timeout_s: float = 2.0, deadline_scale: float = 1.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.deadline_scale = deadline_scale
        self.port = open_link(url, timeout_s=0.02)
        self._fd: int | None = None
        if not getattr(self.port, "synchronous", False):
            try:  # like the driver: select() on the descriptor, then read what is there
                self._fd = self.port.fileno()
                self.port.timeout = 0
            except (AttributeError, OSError, NotImplementedError):
                self._fd = None
        self.decoder = FrameDecoder(raw=host_raw_rule)  # BULK_GET replies carry raw blocks
        self.session = 0
        self.seq = 0
        self.hello: Reply | None = None
        self.bytes_tx = 0
        self.frames: list[Frame] = []

    def close(self) -> None:
        if self.port is None:
            return
        sock = getattr(self.port, "_socket", None)
        if sock is not None:
            # pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; a check suite
            # reconnects 60 times, so shut the socket down directly (same effect, no sleep)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            self.port._socket = None
            self.port.is_open = False
        else:
            self.port.close()
        self.port = None

    # --- bytes ----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.bytes_tx += len(data)
        self.port.write(data)

    def collect(self, want: int = 1, timeout_s: float | None = None) -> list[Frame]:
        """Reply frames until ``want`` have arrived (more may come with them) or the timeout."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        got: list[Frame] = []
        synchronous = getattr(self.port, "synchronous", False)
        while len(got) < want:
            try:
                if self._fd is not None:
                    ready, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
                    data = self.port.read(1 << 20) if ready else b""
                else:
                    data = self.port.read(max(1, self.port.in_waiting))
            except (OSError, serial.SerialException) as exc:
                raise NoReply(f"link failed: {exc}") from None
            if data:
                got += [f for f in self.decoder.feed(data) if f.is_response]
                continue
            if synchronous or time.monotonic() >= deadline:
                break
        self.frames += got
        return got

    def quiet(self, timeout_s: float = 0.1) -> list[Frame]:
        """Whatever arrives within ``timeout_s`` (expected: nothing)."""
        return self.collect(want=1 << 30, timeout_s=timeout_s)

    # --- requests -----------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def frame(self, opcode: int, payload: bytes = b"", *, seq: int | None = None,
              session: int | None = None) -> tuple[bytes, int]:
        """(wire bytes, CRC-32) of a request in this link's session."""
        f = Frame(int(opcode), self.next_seq() if seq is None else seq, payload,
                  session=self.session if session is None else session)
        return encode_frame(f), frame_crc(f)

    def exchange(self, data: bytes, crc: int, timeout_s: float | None = None) -> Reply:
        """Send bytes of one request and return the reply that echoes it."""
        self.send(data)
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            left = deadline - time.monotonic()
            frames = self.collect(1, max(left, 0.0))
            for f in frames:
                if f.echo == crc:
                    return Reply(f, crc)
            if not frames and (left <= 0 or getattr(self.port, "synchronous", False)):
                raise NoReply(f"no reply echoing the request within "
                              f"{self.timeout_s if timeout_s is None else timeout_s:g} s")

    def request(self, opcode: int, payload: bytes = b"", *, seq: int | None = None,
                session: int | None = None, timeout_s: float | None = None) -> Reply:
        """One request; a BUSY acknowledgement is followed to the final reply (docs [busy])."""
        data, crc = self.frame(opcode, payload, seq=seq, session=session)
        if timeout_s is None and opcode in (Opcode.WRITE_VERIFY, Opcode.RUN, Opcode.WAIT):
            # the job's normative deadline (RUN: what the checks' small runs need)
            timeout_s = max(self.timeout_s, self.job_deadline(opcode, payload, run_chip_s=1.0))
        return self.follow(data, crc, self.exchange(data, crc, timeout_s), timeout_s)

    def job_deadline(self, opcode: int, payload: bytes, run_chip_s: float = 0.0) -> float:
        """The deadline (s) of a job's final reply: the spec's ``job_deadline_s`` (docs/protocol.md
        [busy]) times ``deadline_scale`` (1.0, the spec's own deadline, unless a test shortens it)."""
        return self.deadline_scale * job_deadline_s(opcode, payload, run_chip_s=run_chip_s)

    def follow(self, data: bytes, crc: int, reply: Reply, timeout_s: float | None = None) -> Reply:
        """BUSY: poll STATUS with back-off until idle, then resend the identical frame; bounded
        by ``timeout_s`` (the job's deadline).  Other replies are returned as they are."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        delay = 0.005
        while reply.status == Status.BUSY:
            if time.monotonic() >= deadline:
                raise NoReply("the board was still BUSY at the job's deadline")
            time.sleep(delay)
            delay = min(2 * delay, 0.25)
            st = self.exchange(*self.frame(Opcode.STATUS))
            if st.status == Status.OK and st.payload[:1] == b"\x01":
                continue
            reply = self.exchange(data, crc)
        return reply

    def ok(self, opcode: int, payload: bytes = b"", **kw) -> bytes:
        """A request that must succeed; its reply payload."""
        r = self.request(opcode, payload, **kw)
        if r.status != Status.OK:
            raise AssertionError(f"{Opcode(opcode).name} answered {r.status_name}: "
                                 f"{r.payload.decode('utf-8', 'replace')}")
        return r.payload

    def open_session(self, session: int | None = None) -> Reply:
        self.session = session if session is not None else (secrets.randbits(32) or 1)
        self.seq = 0
        r = self.request(Opcode.HELLO, seq=0)
        if r.status != Status.OK:
            raise AssertionError(f"HELLO answered {r.status_name}")
        self.hello = r
        return r


def decode_any(data: bytes) -> list[Frame | FrameError]:
    """Every frame or error in a byte stream (for checks that read raw replies)."""
    return FrameDecoder().feed_events(data)


__all__ = ["FLAG_RESPONSE", "NoReply", "RawLink", "Reply", "decode_any", "raw_body", "struct", "wire"]
