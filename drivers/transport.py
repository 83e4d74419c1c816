"""Open the chip's serial link from any pyserial URL, with errors a person can act on."""
from __future__ import annotations

import os
import select
import socket
import time
import urllib.parse

import serial

from drivers.errors import BadURLError, LinkError
from firmware_iface.sockio import IOV_MAX, SOCKET_BUFFER, tune_tcp  # noqa: F401  (re-exported)

_HOST_PORT_SCHEMES = ("socket", "rfc2217")
"""pyserial URL schemes that name a TCP endpoint ``host:port``."""
_GATHER = hasattr(socket.socket, "sendmsg")
"""Gathered socket writes (sendmsg): POSIX; Windows sends one buffer per call."""


def url_problem(url: str) -> str | None:
    """What is wrong with the link URL's form (None if nothing is): empty, a TCP scheme
    without host or with a port that is not an integer in 1..65535.  Whether the far side
    answers is for :func:`open_link` to find out."""
    if not isinstance(url, str) or not url.strip():
        return "the URL is empty (give a device such as /dev/ttyUSB0 or socket://host:port)"
    if url != url.strip():
        return "the URL has leading or trailing white space"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in _HOST_PORT_SCHEMES:
        host, sep, port = parts.netloc.rpartition(":")
        if not sep or not host:
            return f"{parts.scheme}:// needs host:port, got {parts.netloc!r}"
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            return f"port {port!r} is not an integer in 1..65535"
    return None


def check_url(url: str) -> str:
    """``url`` unchanged, or :class:`BadURLError` (exit 2) naming what is wrong with it."""
    problem = url_problem(url)
    if problem:
        raise BadURLError(f"chip link URL {url!r}: {problem}")
    return url


def open_link(url: str, timeout_s: float = 0.05, baudrate: int = 3_000_000) -> serial.SerialBase:
    """Open ``url`` (``/dev/ttyUSB0``, ``socket://host:port``, ``rfc2217://...``, ``pesim://...``).

    ``timeout_s`` is the *poll* timeout of one read; the driver keeps its own deadline.
    """
    check_url(url)
    try:
        return _no_delay(serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, write_timeout=5.0))
    except ValueError as exc:
        if "not known" in str(exc):
            raise BadURLError(f"cannot open chip link {url!r}: unknown URL scheme ({exc})") from None
        raise BadURLError(f"cannot open chip link {url!r}: {exc}") from None
    except (serial.SerialException, OSError) as exc:
        if "unknown option" in str(exc) or "bad option" in str(exc) or "expected a" in str(exc):
            raise BadURLError(f"cannot open chip link {url!r}: {' '.join(str(exc).split())}") from None
        raise LinkError(f"cannot open chip link {url!r}: {' '.join(str(exc).split())}") from None


def _no_delay(port: serial.SerialBase) -> serial.SerialBase:
    """A serial line sends every byte at once: switch Nagle's algorithm off on a TCP port
    (pyserial's socket:// leaves it on, and a write that follows a small one then waits for
    the far side's delayed acknowledgement, ~40 ms on Linux), and give it buffers that hold a
    whole bulk round (:data:`SOCKET_BUFFER`)."""
    sock = getattr(port, "_socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        tune_tcp(sock)
    return port


class Direct:
    """Reads and writes straight on the descriptor of a socket:// or POSIX serial / pty port,
    without pyserial's extra copies (it copies every read twice and every write once, and
    re-slices a partly sent write).  Errors are pyserial's: SerialException when the far end
    closed, SerialTimeoutException when a write does not drain within ``write_timeout_s``."""

    def __init__(self, port: serial.SerialBase, write_timeout_s: float = 5.0) -> None:
        sock = getattr(port, "_socket", None)
        self._sock = sock
        self.writes = 0
        """System calls that wrote (or tried to write) bytes, since the port was opened."""
        self.fd = sock.fileno() if sock is not None else port.fd
        self.timeout_s = write_timeout_s
        """A write that makes no progress for this long fails (s)."""

    @classmethod
    def of(cls, port: serial.SerialBase) -> "Direct | None":
        """For socket:// and POSIX serial ports; None for any other transport (rfc2217:// has a
        socket too, but its bytes are telnet-escaped: pyserial must move them)."""
        from serial.urlhandler.protocol_socket import Serial as SocketSerial

        posix = getattr(serial, "serialposix", None)
        if isinstance(port, SocketSerial) and getattr(port, "_socket", None) is not None:
            return cls(port, port.write_timeout or 5.0)
        if posix is not None and isinstance(port, posix.Serial) and isinstance(getattr(port, "fd", None), int):
            return cls(port, port.write_timeout or 5.0)
        return None

    def read(self, size: int) -> bytes:
        """What is there (call after select() found the descriptor readable)."""
        try:
            data = self._sock.recv(size) if self._sock is not None else os.read(self.fd, size)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            raise serial.SerialException(f"read failed: {exc}") from None
        if not data:
            raise serial.SerialException("the far end closed the link")
        return data

    def read_into(self, view: memoryview) -> int:
        """Read what is there straight into ``view`` (call after select() found the descriptor
        readable); bytes read, 0 when nothing was there after all."""
        try:
            n = self._sock.recv_into(view) if self._sock is not None else os.readv(self.fd, [view])
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            raise serial.SerialException(f"read failed: {exc}") from None
        if not n:
            raise serial.SerialException("the far end closed the link")
        return n

    def send_some(self, views: list[memoryview]) -> int:
        """Write as much of ``views`` (in order, byte views) as the link takes now, in one
        gathered system call (sendmsg / writev) without copying them together; bytes written
        (0 when the link is full).  The descriptor is non-blocking (pyserial opens it so)."""
        self.writes += 1
        try:
            if self._sock is not None:
                if _GATHER:
                    return self._sock.sendmsg(views[:IOV_MAX])
                return self._sock.send(views[0])  # Windows: no sendmsg, one buffer per call
            return os.writev(self.fd, views[:IOV_MAX])
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            raise serial.SerialException(f"write failed: {exc}") from None

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        deadline = time.monotonic() + self.timeout_s
        while view:
            self.writes += 1
            try:
                n = self._sock.send(view) if self._sock is not None else os.write(self.fd, view)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                raise serial.SerialException(f"write failed: {exc}") from None
            view = view[n:]
            if view:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [self.fd], [], left)[1]:
                    raise serial.SerialTimeoutException("write timeout")
