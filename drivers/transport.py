"""Open the chip's serial link from any pyserial URL, with errors a person can act on."""
from __future__ import annotations

import socket
import urllib.parse

import serial

from drivers.errors import BadURLError, LinkError

_HOST_PORT_SCHEMES = ("socket", "rfc2217")
"""pyserial URL schemes that name a TCP endpoint ``host:port``."""


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
    the far side's delayed acknowledgement, ~40 ms on Linux)."""
    sock = getattr(port, "_socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port
