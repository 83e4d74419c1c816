"""Link model: the physical serial link's speed and its faults, applied to simulated links.

Timing: ``transfer_s(nbytes)`` is the time ``nbytes`` take on a UART at ``baud`` with 10
bits per byte (8N1); each round trip adds ``latency_s`` (USB/driver/FPGA turnaround).  A pty
or TCP socket ignores baud rate, so modelled link time always comes from here.

Faults, seeded, applied to each direction independently: host -> board (``TO_BOARD``) and
board -> host (``TO_HOST``) each have their own random stream and their own held-back
buffer, so a stalled command is released towards the board and a stalled reply towards the
host, never the other way round.  Per chunk (frame): bit errors at ``ber`` per bit, dropped
with ``drop``, duplicated with ``dup``, stalled (held back until the next chunk in the same
direction, i.e. it arrives late) with ``stall``, overtaken by the next chunk in the same
direction (delivered after it: reordering) with ``reorder``; and a board reset with ``board_reset`` per
command (its own random stream).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs

import numpy as np

TO_BOARD = "to_board"
"""Direction of commands: host -> board."""
TO_HOST = "to_host"
"""Direction of replies: board -> host."""

Direction = Literal["to_board", "to_host"]

_FAULTS = ("ber", "drop", "dup", "stall", "reorder", "board_reset")
"""Fault probabilities, each in [0, 1)."""


@dataclass
class _Channel:
    """One direction of the link: its random stream and the chunk it holds back."""

    rng: np.random.Generator
    held: bytes = b""
    """Stalled: delivered just before the next chunk."""
    behind: bytes = b""
    """Overtaken: delivered just after the next chunk."""


@dataclass
class LinkModel:
    baud: float = 3_000_000.0
    latency_s: float = 1e-3
    ber: float = 0.0
    drop: float = 0.0
    dup: float = 0.0
    stall: float = 0.0
    reorder: float = 0.0
    board_reset: float = 0.0
    seed: int = 0
    stats: dict = field(default_factory=lambda: {"bit_errors": 0, "dropped": 0, "duplicated": 0,
                                                   "stalled": 0, "reordered": 0,
                                                   "board_resets": 0})

    def __post_init__(self) -> None:
        for name in _FAULTS:
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"link fault {name}={v} must be in [0, 1)")
        if self.baud <= 0 or self.latency_s < 0:
            raise ValueError("link baud must be > 0 and latency >= 0")
        to_board, to_host, resets = np.random.SeedSequence(self.seed).spawn(3)
        self._channels = {TO_BOARD: _Channel(np.random.default_rng(to_board)),
                          TO_HOST: _Channel(np.random.default_rng(to_host))}
        self._reset_rng = np.random.default_rng(resets)

    @property
    def faulty(self) -> bool:
        return any(map(self.__dict__.__getitem__, _FAULTS))  # asked per read: no Python loop

    def transfer_s(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire (8N1: 10 bits per byte)."""
        return nbytes * 10.0 / self.baud

    def round_trip_s(self, tx_bytes: int, rx_bytes: int) -> float:
        """Seconds of one command/reply exchange: ``latency_s`` plus both transfers."""
        return self.latency_s + self.transfer_s(tx_bytes + rx_bytes)

    def held(self, direction: Direction) -> bytes:
        """Bytes currently held back (stalled or overtaken) in ``direction``."""
        ch = self._channels[direction]
        return ch.held + ch.behind

    def corrupt(self, data: bytes, direction: Direction) -> bytes:
        """Pass one chunk through the faulty channel of ``direction`` (TO_BOARD or TO_HOST).

        Returns what arrives at the far end now: nothing (dropped, stalled or waiting to be
        overtaken), or the chunk (possibly with flipped bits, possibly twice) preceded by any
        chunk stalled earlier and followed by any chunk it overtook, in the same direction.
        """
        try:
            ch = self._channels[direction]
        except KeyError:
            raise ValueError(f"link direction must be {TO_BOARD!r} or {TO_HOST!r}, not {direction!r}") from None
        if not self.faulty or not data:
            return data
        rng = ch.rng
        if self.drop and rng.random() < self.drop:
            self.stats["dropped"] += 1
            return b""
        if self.ber:
            nbits = len(data) * 8
            k = rng.binomial(nbits, self.ber)
            if k:
                buf = bytearray(data)
                for pos in rng.choice(nbits, size=k, replace=False):
                    buf[pos // 8] ^= 1 << (pos % 8)
                data = bytes(buf)
                self.stats["bit_errors"] += int(k)
        if self.dup and rng.random() < self.dup:
            self.stats["duplicated"] += 1
            data = data + data
        if self.stall and rng.random() < self.stall:
            self.stats["stalled"] += 1
            ch.held += data
            return b""
        if self.reorder and rng.random() < self.reorder:
            self.stats["reordered"] += 1
            ch.behind += data
            return b""
        data, ch.held, ch.behind = ch.held + data + ch.behind, b"", b""
        return data

    def want_board_reset(self) -> bool:
        """Draw whether the board resets before the next command (probability ``board_reset``)."""
        if self.board_reset and self._reset_rng.random() < self.board_reset:
            self.stats["board_resets"] += 1
            return True
        return False

    @classmethod
    def from_query(cls, query: str, seed: int = 0) -> "LinkModel":
        """Build from URL query fields: baud, latency_s (or latency_ms), ber, drop, dup, stall,
        reorder, board_reset, link_seed."""
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        kw: dict = {"seed": seed}
        for key in ("baud", "latency_s") + _FAULTS:
            if key in q:
                kw[key] = float(q[key])
        if "latency_ms" in q:
            kw["latency_s"] = float(q["latency_ms"]) * 1e-3
        if "link_seed" in q:
            kw["seed"] = int(q["link_seed"])
        return cls(**kw)
