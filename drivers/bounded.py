"""Bounded frames on the host side (issue 16): large commands as STAGE / COMMIT / FETCH
transfers (firmware_iface/bulk.py), each frame retried on its own, one retry budget per
command sized from its frame count, back-off between re-sends.

A mixin of :class:`drivers.pechip.PEChip`: it needs ``transact``, ``info``, ``retries``,
``timeout_s``, ``url`` and ``stats`` from the driver.
"""
from __future__ import annotations

import secrets
import time

from drivers.bulkmode import BulkMode
from drivers.errors import ChipError, ChipTimeout, ProtocolError
from firmware_iface.bulk import (Limits, decode_limits, decode_result, encode_commit, encode_fetch,
                                 encode_stage)
from firmware_iface.records import PayloadError
from firmware_iface.spec import Capability, Opcode, Status

HOST_MAX_CHUNK = 1024
"""Largest piece the host puts in one STAGE or asks for in one FETCH (bytes): with the 20-byte
header, CRC and COBS overhead every frame of a transfer is at most 1,080 bytes on the wire."""
BACKOFF_S = (0.001, 0.1)
"""Back-off before re-sending a frame whose attempts all failed: first delay, ceiling (doubling)."""


class BoundedTransfers(BulkMode):
    """STAGE / COMMIT / FETCH transfers for the PE-chip driver; with a board of capability
    BULK the pieces go as pipelined raw blocks instead (BULK_PUT / BULK_GET)."""

    _board_limits: Limits | None = None
    use_bulk = True
    """Use bulk mode when the board has capability BULK (False: always STAGE / FETCH)."""

    def board_limits(self) -> Limits | None:
        """The board's LIMITS (GET_LIMITS), or None for a board without bounded transfers."""
        if self._board_limits is None and self.info().has(Capability.BOUNDED):
            payload = self.transact(Opcode.GET_LIMITS)
            try:
                self._board_limits = decode_limits(payload)
            except (PayloadError, ValueError) as exc:
                raise ProtocolError(f"GET_LIMITS reply malformed: {exc}") from None
        return self._board_limits

    def chunk_bytes(self) -> int | None:
        lim = self.board_limits()
        return None if lim is None else max(1, min(HOST_MAX_CHUNK, lim.max_chunk))

    def call(self, opcode: Opcode, payload: bytes = b"", timeout_s: float | None = None,
             reply_bytes: int = 0) -> bytes:
        """One command, in bounded frames when the request (or the ``reply_bytes`` expected)
        exceeds the board's piece size; otherwise one plain frame."""
        chunk = self.chunk_bytes()
        if chunk is None or (len(payload) <= chunk and reply_bytes <= chunk):
            return self.transact(opcode, payload, timeout_s)
        return self._transfer(opcode, payload, timeout_s, chunk)

    def _transfer(self, opcode: Opcode, payload: bytes, timeout_s: float | None, chunk: int) -> bytes:
        tid = secrets.randbits(32) or 1
        frames = self.stats.commands
        try:
            return self._pieces(opcode, payload, timeout_s, chunk, tid)
        finally:
            self.stats.transfers += 1
            self.stats.transfer_frames += self.stats.commands - frames

    def _pieces(self, opcode: Opcode, payload: bytes, timeout_s: float | None, chunk: int, tid: int) -> bytes:
        total = len(payload)
        bulk = self.use_bulk and self.info().has(Capability.BULK)
        budget = Budget(self, opcode, frames=1 if bulk else max(1, -(-total // chunk)) + 1)
        reply = None
        if bulk:  # the request as raw pieces, pipelined, the COMMIT in the same burst (bulkmode.py)
            reply = self._bulk_put(tid, int(opcode), payload, timeout_s)
        else:
            for off in range(0, total, chunk):
                budget.send(Opcode.STAGE, encode_stage(tid, int(opcode), total, off, payload[off:off + chunk]))
        if reply is None:
            reply = budget.send(Opcode.COMMIT, encode_commit(tid, int(opcode), total), timeout_s)
        try:
            rid, status, length, first = decode_result(reply)
        except (PayloadError, ValueError) as exc:
            raise ProtocolError(f"COMMIT reply malformed: {exc}") from None
        if rid != tid or len(first) > length:
            raise ProtocolError(f"COMMIT reply of transfer {rid:#x} ({len(first)} of {length} bytes) "
                                f"does not answer transfer {tid:#x}")
        if status != Status.OK:
            name = Status(status).name if status in Status._value2member_map_ else "UNKNOWN"
            raise ChipError(status, name, first.decode("utf-8", "replace"))
        if bulk and length > len(first):
            return self._bulk_get(tid, length, first)
        parts = [first]
        got = len(first)
        budget.grow(-(-(length - got) // chunk))
        while got < length:
            n = min(chunk, length - got)
            piece = budget.send(Opcode.FETCH, encode_fetch(tid, got, n))
            if len(piece) != n:
                raise ProtocolError(f"FETCH of {n} bytes returned {len(piece)}")
            parts.append(piece)
            got += n
        return b"".join(parts)


class Budget:
    """Retry budget of one command: ``retries`` re-sends per frame, pooled over its frames.

    Each frame goes through the driver's ``transact`` (which resends the identical frame up to
    ``retries`` times); when that fails, the frame is sent again under a new seq -- STAGE and
    FETCH are idempotent, COMMIT runs at most once per transfer id -- after a back-off, as long
    as the command's pooled budget lasts."""

    def __init__(self, chip, opcode: Opcode, frames: int) -> None:
        self.chip, self.opcode = chip, opcode
        self.frames = frames
        self.left = chip.retries * frames
        self.delay = BACKOFF_S[0]

    def grow(self, frames: int) -> None:
        self.frames += frames
        self.left += self.chip.retries * frames

    def send(self, opcode: Opcode, payload: bytes, timeout_s: float | None = None) -> bytes:
        stats = self.chip.stats
        while True:
            before = stats.retries
            try:
                reply = self.chip.transact(opcode, payload, timeout_s)
                self.left -= stats.retries - before
                return reply
            except (ChipTimeout, ProtocolError) as exc:
                self.left -= stats.retries - before + 1
                if self.left < 0:
                    raise type(exc)(f"{self.opcode.name} in {self.frames} bounded frames: retry budget of "
                                    f"{self.chip.retries} per frame exhausted; last: {exc}") from None
                time.sleep(self.delay)
                self.delay = min(self.delay * 2, BACKOFF_S[1])
