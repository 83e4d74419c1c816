"""Socket helpers shared by both ends of the chip link: the host driver (drivers/) and the
simulated board (sim_backend/), which must not import each other (decision 0001).  No protocol
here: how a TCP end is set up, and what is left of a gathered write after a partial send."""
from __future__ import annotations

import socket

SOCKET_BUFFER = 4 * 1024 * 1024
"""Send and receive buffer asked for on either end of a TCP link (bytes): a whole bulk round (a
few MB) fits in the kernel, so neither end waits for the other to drain it piece by piece (Linux
caps the request at net.core.wmem_max / rmem_max)."""
IOV_MAX = 1024
"""Most buffers one gathered write takes (POSIX IOV_MAX on Linux and macOS)."""


def tune_tcp(sock: socket.socket, buf_bytes: int = SOCKET_BUFFER) -> None:
    """Switch Nagle's algorithm off on ``sock`` (a serial line sends every byte at once; with
    Nagle on, a write that follows a small one waits for the far side's delayed ACK, ~40 ms
    on Linux) and ask for ``buf_bytes``-byte send and receive buffers (a refused size keeps
    the system's)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, buf_bytes)
        except OSError:  # pragma: no cover - a platform that refuses the size
            pass


def drop_sent(views: list[memoryview], n: int, first: int = 0) -> int:
    """A gathered write of ``views[first:]`` (non-empty byte views) sent ``n`` bytes: drop them.  Returns the index
    of the first view with bytes still to send (``len(views)`` when all went); a view sent in
    part is replaced in ``views`` by its unsent tail (a view of the same bytes, not a copy).
    ``n`` larger than what is left is an error (ValueError): the system never reports more
    bytes than it was given."""
    i = first
    while n:
        if i >= len(views):
            raise ValueError(f"{n} bytes more sent than were given")
        size = len(views[i])
        if n >= size:
            n -= size
            i += 1
        else:
            views[i] = views[i][n:]
            n = 0
    return i
