"""Threaded line-oriented TCP server for simulated instruments (127.0.0.1, newline-terminated).

One connection owner at a time: the server thread accepts a client and serves it until it
disconnects; another client waits in the listen backlog meanwhile (like a real instrument
socket that only one controller may own).  A command handler returns the reply line, or
``None`` for no reply.

Latency: the accepted connection has Nagle's algorithm off and each reply line goes out in
one ``send`` (so it is one segment, never held for the controller's delayed ACK); the accept
loop waits in ``select`` on the listening socket and a wake-up socket, so :meth:`stop` ends
the thread at once (a polling accept with a timeout cost up to that timeout per instrument
at every simulator shutdown).
"""
from __future__ import annotations

import re
import selectors
import socket
import struct
import threading
from collections import deque
from typing import Any


class ErrorQueue:
    """Instrument error queue (first in, first out, bounded)."""

    def __init__(self, size: int = 32) -> None:
        self.q: deque[tuple[int, str]] = deque()
        self.size = size

    def push(self, code: int, message: str) -> None:
        if len(self.q) >= self.size:
            self.q.pop()
            self.q.append((-350, "Queue overflow"))
            return
        self.q.append((code, message))

    def pop(self) -> tuple[int, str]:
        return self.q.popleft() if self.q else (0, "No error")

    def clear(self) -> None:
        self.q.clear()

    def __len__(self) -> int:
        return len(self.q)


class InstrumentServer:
    """Base class: subclasses implement :meth:`handle` (one line in, reply or None out)."""

    model = "?"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.errors = ErrorQueue()
        self.lock = threading.RLock()
        self._sock = socket.create_server((host, port))
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name=f"sim-{self.model}-{self.port}", daemon=True)
        self.log: deque[str] = deque(maxlen=256)
        self.connections = 0

    @property
    def resource(self) -> str:
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def start(self) -> "InstrumentServer":
        self._thread.start()
        return self

    def _wake(self) -> None:
        """Wake the accept loop (it sees ``_stop`` and returns)."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def stop(self) -> None:
        """Orderly stop (closes the active connection and the listening socket)."""
        self._stop.set()
        self._wake()
        self._drop(abort=False)
        try:
            self._sock.close()
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        if self._thread.ident is None:          # never started: nobody else closes these
            self._close_wake()

    def _close_wake(self) -> None:
        for s in (self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass

    def kill(self) -> None:
        """Die like a crashed process: reset the connection, stop listening."""
        self._stop.set()
        self._wake()
        self._drop(abort=True)
        try:
            self._sock.close()
        except OSError:
            pass

    def _drop(self, abort: bool) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if abort:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            conn.close()
        except OSError:
            pass

    # ---- serving ---------------------------------------------------------------------
    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            self._accept_loop(sel)
        except (OSError, ValueError):           # a socket closed under us: stopping
            return
        finally:
            sel.close()
            self._close_wake()

    def _accept_loop(self, sel: selectors.BaseSelector) -> None:
        while not self._stop.is_set():
            ready = {key.fileobj for key, _ in sel.select()}
            if self._stop.is_set() or self._sock not in ready:
                continue
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                continue                        # the client gave up before it was accepted
            except OSError:
                return
            conn.setblocking(True)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
            self.connections += 1
            try:
                self._serve_connection(conn)
            finally:
                self._conn = None
                try:
                    conn.close()
                except OSError:
                    pass

    def _serve_connection(self, conn: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                if not line:
                    continue
                self.log.append(line)
                with self.lock:
                    try:
                        reply = self.handle(line)
                    except Exception as exc:  # noqa: BLE001 - an instrument never crashes on input
                        self.errors.push(-300, f"Device-specific error: {exc}")
                        reply = None
                if reply is not None and not self._stop.is_set():
                    try:
                        conn.sendall(reply.encode("ascii") + b"\n")
                    except OSError:
                        return

    def handle(self, line: str) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> dict[str, Any]:  # pragma: no cover - overridden
        return {}


# ---- SCPI helpers ---------------------------------------------------------------------

_LONG = {
    "SOURCE": "SOUR", "SENSE": "SENS", "VOLTAGE": "VOLT", "CURRENT": "CURR", "FUNCTION": "FUNC",
    "OUTPUT": "OUTP", "MEASURE": "MEAS", "TRACE": "TRAC", "TRIGGER": "TRIG", "INITIATE": "INIT",
    "SYSTEM": "SYST", "ERROR": "ERR", "FETCH": "FETC", "ARRAY": "ARR", "PROTECTION": "PROT",
    "LEVEL": "LEV", "CLEAR": "CLE", "POINTS": "POIN", "ACQUIRE": "ACQ", "TIMER": "TIM",
    "COUNT": "COUN", "LFREQUENCY": "LFR", "STATE": "STAT", "ACTUAL": "ACT", "IMMEDIATE": "IMM",
    "AMPLITUDE": "AMPL", "APERTURE": "APER", "ILIMIT": "ILIM", "ABORT": "ABOR", "RANGE": "RANG",
}
_OPTIONAL = {"LEV", "IMM", "AMPL", "NEXT"}
_TOKEN = re.compile(r"^([A-Z*]+?)(\d*)$")


def parse_scpi(line: str) -> tuple[str, int | None, str]:
    """``":SOUR2:VOLT:LEV 1.8"`` -> ``("SOUR:VOLT", 2, "1.8")``; queries keep their ``?``."""
    head, _, args = line.strip().partition(" ")
    query = head.endswith("?")
    head = head.rstrip("?").lstrip(":").upper()
    parts = []
    suffix: int | None = None
    for tok in head.split(":"):
        m = _TOKEN.match(tok)
        if not m:
            return "", None, args
        name, num = m.group(1), m.group(2)
        name = _LONG.get(name, name)
        if num:
            if suffix is None:
                suffix = int(num)
        if name in _OPTIONAL:
            continue
        if name == "STAT" and parts and parts[-1] == "OUTP":
            continue
        parts.append(name)
    return ":".join(parts) + ("?" if query else ""), suffix, args.strip()


def split_commands(line: str) -> list[str]:
    """Split ``a; b`` at semicolons outside quotes."""
    out, cur, quote = [], [], ""
    for ch in line:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [c for c in out if c]


def scpi_args(args: str) -> list[str]:
    return [a.strip() for a in split_commands(args.replace(",", ";"))] if args else []


def channel_list(args: str) -> list[int]:
    m = re.search(r"\(@([\d,:]+)\)", args)
    if not m:
        return []
    chans: list[int] = []
    for part in m.group(1).split(","):
        if ":" in part:
            a, b = part.split(":")
            chans.extend(range(int(a), int(b) + 1))
        else:
            chans.append(int(part))
    return chans


def parse_number(text: str) -> float:
    t = text.strip().upper()
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)(E[+-]?\d+)?", t):
        raise ValueError(text)
    return float(t)


def parse_onoff(text: str) -> bool:
    t = text.strip().upper()
    if t in ("ON", "1"):
        return True
    if t in ("OFF", "0"):
        return False
    raise ValueError(text)
