"""Link model: the physical serial link's speed and its faults, applied to simulated links.

Timing: ``transfer_s(nbytes)`` is the time ``nbytes`` take on a UART at ``baud`` with 10
bits per byte (8N1); each round trip adds ``latency_s`` (USB/driver/FPGA turnaround).  A pty
or TCP socket ignores baud rate, so modelled link time always comes from here.

Faults (each direction independently, seeded): bit errors at ``ber`` per bit, a chunk
(frame) dropped with ``drop``, duplicated with ``dup``, a stall (chunk held back until the
next one) with ``stall``, and a board reset with ``board_reset`` per command.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

import numpy as np


@dataclass
class LinkModel:
    baud: float = 3_000_000.0
    latency_s: float = 1e-3
    ber: float = 0.0
    drop: float = 0.0
    dup: float = 0.0
    stall: float = 0.0
    board_reset: float = 0.0
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)
    stats: dict = field(default_factory=lambda: {"bit_errors": 0, "dropped": 0, "duplicated": 0,
                                                   "stalled": 0, "board_resets": 0})

    def __post_init__(self) -> None:
        for name in ("ber", "drop", "dup", "stall", "board_reset"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"link fault {name}={v} must be in [0, 1)")
        if self.baud <= 0 or self.latency_s < 0:
            raise ValueError("link baud must be > 0 and latency >= 0")
        self.rng = np.random.default_rng(self.seed)
        self._held = b""

    @property
    def faulty(self) -> bool:
        return any((self.ber, self.drop, self.dup, self.stall, self.board_reset))

    def transfer_s(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire (8N1: 10 bits per byte)."""
        return nbytes * 10.0 / self.baud

    def round_trip_s(self, tx_bytes: int, rx_bytes: int) -> float:
        return self.latency_s + self.transfer_s(tx_bytes + rx_bytes)

    def corrupt(self, data: bytes) -> bytes:
        """Pass one chunk through the faulty channel."""
        if not self.faulty or not data:
            return data
        rng = self.rng
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
            self._held += data
            return b""
        if self._held:
            data, self._held = self._held + data, b""
        return data

    def want_board_reset(self) -> bool:
        if self.board_reset and self.rng.random() < self.board_reset:
            self.stats["board_resets"] += 1
            return True
        return False

    @classmethod
    def from_query(cls, query: str, seed: int = 0) -> "LinkModel":
        """Build from URL query fields: baud, latency_s (or latency_ms), ber, drop, dup, stall, board_reset."""
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        kw: dict = {"seed": seed}
        for key in ("baud", "latency_s", "ber", "drop", "dup", "stall", "board_reset"):
            if key in q:
                kw[key] = float(q[key])
        if "latency_ms" in q:
            kw["latency_s"] = float(q["latency_ms"]) * 1e-3
        if "link_seed" in q:
            kw["seed"] = int(q["link_seed"])
        return cls(**kw)
