"""Helpers for tests that need a board on a real transport inside the test process."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sim_backend.firmware import VirtualFirmware
from sim_backend.link import LinkModel
from sim_backend.server import _Pump, serve_tcp


@contextlib.contextmanager
def tcp_board(fw: VirtualFirmware) -> Iterator[str]:
    """Serve ``fw`` on 127.0.0.1 (socket://) from a thread; stopped and joined on exit."""
    stop = threading.Event()
    url, thread = serve_tcp(_Pump(fw, LinkModel()), "127.0.0.1", 0, stop)
    try:
        yield url
    finally:
        stop.set()
        thread.join(5)
