"""Bulk mode on the host side (capability BULK, decision 0016).

The pieces of a bounded transfer travel as raw blocks after a small CRC-checked frame:
BULK_PUT carries the request up, BULK_GET the kept reply down (firmware_iface/bulk.py).  Both
are unsequenced, so the host *pipelines*: every piece of a round goes out before any reply is
awaited, and a STATUS request closes the round.  The board answers in order, so a piece with
no reply once STATUS has been answered was lost on the way; a piece answered DATA_CRC (or
whose raw reply failed its CRC) was corrupted.  Only those pieces are sent again, each split
into smaller ones (down to ``PIECE_MIN``) so that a noisy link still converges.  Under the
retry budget of the bounded path (``retries`` re-sends per KiB of the transfer) a transfer
either completes bit-identical or raises.

A mixin of :class:`drivers.pechip.PEChip` (through :class:`drivers.bounded.BoundedTransfers`).
"""
from __future__ import annotations

import select
import time
from collections.abc import Callable

import serial

from drivers.errors import ChipError, ChipTimeout, ProtocolError
from firmware_iface.bulk import bulk_header, bulk_unit, decode_bulk, encode_bulk, encode_commit, encode_fetch
from firmware_iface.framing import Frame, FrameError, RawBlockError, encode_frame, frame_crc
from firmware_iface.records import PayloadError
from firmware_iface.sockio import drop_sent
from firmware_iface.spec import Opcode, Status

PIECE_MAX = 2 * 1024 * 1024
"""Largest piece of a round (bytes): big enough that per-piece work (a frame, a reply, a
handler call and a few system calls on either end) is small next to the copy -- at 256 KiB it
was not: 1 MiB pieces cut the board's CPU per MB of a socket:// upload by a third
(docs/BENCHMARKS.md, link2); 2 MiB uploads as fast as 1 MiB and reads back as fast or a little
faster with fewer frames (link4) -- and small enough that a link losing pieces gets back to it
in a few clean rounds (a lossy round quarters the next transfer's piece size, a clean one
doubles it)."""
PIECE_MIN = 1024
"""Smallest piece a failed one is split into (bytes): LIMITS.max_chunk of the STAGE path."""
SPLIT = 4
"""A failed piece is sent again as this many smaller pieces (at least PIECE_MIN each)."""
UNSEQUENCED_MAX = 16384
"""Most unsequenced requests between two sequenced ones (docs/protocol.md, Sessions)."""
PEEK = 4096
"""Most bytes a read takes while a readout round waits for its next reply frame (bytes): that
frame and the first bytes of its raw block, the rest of which is then read straight into its
place in the result."""
WRITE_SLICE = 64 * 1024
"""Bytes written through pyserial (a transport without a descriptor) before replies are
drained: a board blocked on a full reply buffer must never stop the host's write."""


class SessionLost(ProtocolError):
    """The board answered NO_SESSION during a pipelined round (it rebooted)."""


class _Round:
    """One direction of a pipelined transfer: how to send a piece and accept its reply."""

    opcode: Opcode
    wait_s = 0.0
    """Least time (s) to wait for the closing frame's reply (an upload's COMMIT runs the command)."""

    def __init__(self, tid: int, total: int) -> None:
        self.tid, self.total = tid, total

    def unit(self, frame_seq: int, session: int, off: int, n: int) -> tuple[tuple, int]:
        raise NotImplementedError

    def accept(self, reply: Frame, off: int, n: int) -> bool:
        raise NotImplementedError

    def sink(self, frame: Frame, nbytes: int, inflight: dict[int, tuple[int, int, int]]) -> memoryview | None:
        return None

    def closing(self, seq: int, session: int) -> Frame:
        """The frame that closes a round: the board answers it after every piece before it."""
        return Frame(Opcode.STATUS, seq, session=session)

    def closed(self, reply: Frame) -> None:
        """The board answered the closing frame with ``reply`` (status not NO_SESSION)."""

    def done(self) -> bool:
        """Nothing more to send, whatever failed (the closing frame's reply settled it)."""
        return False

    def sent(self) -> None:
        """The round's frames went to the link; its replies are awaited next."""


class _Put(_Round):
    """BULK_PUT: bytes ``off:off+n`` of the request, raw after the frame."""

    opcode = Opcode.BULK_PUT

    def __init__(self, tid: int, target: int, payload: bytes) -> None:
        super().__init__(tid, len(payload))
        self.target, self.data = target, memoryview(payload)
        self.result: bytes | None = None
        """The COMMIT reply's payload (the RESULT record) once a round's COMMIT ran the request."""
        self.unsettled = False
        """A round's COMMIT was answered neither OK nor NOT_READY (BUSY: a long job accepted):
        the caller settles the COMMIT through its own retry and BUSY rules."""

    def closing(self, seq: int, session: int) -> Frame:
        """COMMIT closes an upload round (docs/protocol.md, Bulk mode): it runs the request when
        every byte is staged, and is answered NOT_READY (nothing run) when a piece was lost."""
        return Frame(Opcode.COMMIT, seq, encode_commit(self.tid, self.target, self.total), session=session)

    def closed(self, reply: Frame) -> None:
        if reply.status == Status.OK:
            self.result = reply.payload
        elif reply.status != Status.NOT_READY:
            self.unsettled = True

    def done(self) -> bool:
        return self.result is not None or self.unsettled

    def unit(self, seq: int, session: int, off: int, n: int) -> tuple[tuple, int]:
        piece = self.data[off:off + n]
        frame = Frame(self.opcode, seq, encode_bulk(bulk_header(self.tid, self.target, self.total, off, piece)),
                      session=session)
        return bulk_unit(frame, piece), frame_crc(frame)

    def accept(self, reply: Frame, off: int, n: int) -> bool:
        return True  # COUNT: the piece is stored


class _Get(_Round):
    """BULK_GET: bytes ``off:off+n`` of the kept reply, raw after the reply frame."""

    opcode = Opcode.BULK_GET

    def __init__(self, tid: int, total: int, first: bytes) -> None:
        super().__init__(tid, total)
        self._first = first
        self._out: bytearray | None = None

    @property
    def out(self) -> bytearray:
        """The result (``total`` bytes, beginning with the COMMIT reply's first piece); made at
        first use -- after the round's requests went out (:meth:`sent`), so that zero-filling
        it (~30 us per MB) overlaps the board preparing its first piece."""
        return self._out if self._out is not None else self.sent()

    def sent(self) -> bytearray:
        if self._out is None:
            self._out = bytearray(self.total)
            self._out[:len(self._first)] = self._first
        return self._out

    def unit(self, seq: int, session: int, off: int, n: int) -> tuple[tuple, int]:
        frame = Frame(self.opcode, seq, encode_fetch(self.tid, off, n), session=session)
        return (encode_frame(frame),), frame_crc(frame)

    def accept(self, reply: Frame, off: int, n: int) -> bool:
        try:
            h = decode_bulk(reply.payload)
        except (PayloadError, ValueError):
            return False
        if (h.id, h.total, h.offset, h.nbytes, len(reply.data)) != (self.tid, self.total, off, n, n):
            return False
        if not (isinstance(reply.data, memoryview) and reply.data.obj is self.out):
            self.out[off:off + n] = reply.data  # else the decoder collected it in place (sink)
        return True

    def sink(self, frame: Frame, nbytes: int, inflight: dict[int, tuple[int, int, int]]) -> memoryview | None:
        """Where the raw block after ``frame`` goes: its place in the result, for the reply to
        a piece in flight whose BULK record names exactly that piece (no other block can write
        there, so bytes already accepted are never overwritten); else None (the decoder's
        own buffer)."""
        entry = inflight.get(frame.seq)
        if entry is None or frame.echo != entry[2] or frame.opcode != self.opcode:
            return None
        off, n, _ = entry
        try:
            h = decode_bulk(frame.payload)
        except (PayloadError, ValueError):
            return None
        if (h.id, h.total, h.offset, h.nbytes, nbytes) != (self.tid, self.total, off, n, n):
            return None
        return memoryview(self.out)[off:off + n]


def _split(off: int, n: int) -> list[tuple[int, int]]:
    size = max(PIECE_MIN, -(-n // SPLIT))
    return [(o, min(size, off + n - o)) for o in range(off, off + n, size)]


class BulkMode:
    """Pipelined BULK_PUT / BULK_GET rounds for the PE-chip driver."""

    bulk_piece = PIECE_MAX
    """Piece size the next transfer starts with: quartered after a transfer that lost pieces in
    its first round, doubled (up to PIECE_MAX) after one that did not."""

    def _bulk_put(self, tid: int, target: int, payload: bytes, timeout_s: float | None = None) -> bytes | None:
        """Stage ``payload`` as transfer ``tid``, each round closed by its COMMIT: the COMMIT
        reply's payload (RESULT) once one ran the request, None when none settled it (its
        reply lost, or BUSY): the caller then sends COMMIT itself.  A board that rebooted
        meanwhile (its staging buffer lost) gets a new session and the whole request again,
        ``retries`` times at most.  ``timeout_s``: the command's own time limit (its COMMIT is
        waited for at least that long)."""
        for attempt in range(self.retries + 1):
            try:
                job = _Put(tid, target, payload)
                job.wait_s = timeout_s or 0.0
                self._pipeline(job, 0)
                return job.result
            except SessionLost:
                if attempt == self.retries:
                    raise
                self._open_session()

    def _bulk_get(self, tid: int, total: int, first: bytes) -> bytearray:
        job = _Get(tid, total, first)
        self._pipeline(job, len(first))
        return job.out  # bytes-like; not copied again

    def _pipeline(self, job: _Round, start: int) -> None:
        size = self.bulk_piece
        pending = [(o, min(size, job.total - o)) for o in range(start, job.total, size)]
        left = self.retries * max(1, -(-(job.total - start) // PIECE_MIN))
        idle = sent = 0
        first = True
        while pending:
            sent += len(pending) + 1
            if sent > UNSEQUENCED_MAX:
                raise ProtocolError(f"{job.opcode.name} of transfer {job.tid:#x} to {self.url}: more than "
                                    f"{UNSEQUENCED_MAX} pieces sent without completing")
            failed = self._round(job, pending)
            if first:
                self.bulk_piece = max(PIECE_MIN, size // SPLIT) if failed else min(PIECE_MAX, size * 2)
                first = False
            if not failed or job.done():
                return
            idle = idle + 1 if len(failed) == len(pending) else 0
            left -= len(failed)
            self.stats.retries += len(failed)
            if idle > self.retries or left < 0:
                why = (f"no piece got through in {idle} rounds" if idle > self.retries
                       else f"retry budget of {self.retries} per KiB exhausted")
                err = ChipTimeout if idle > self.retries else ProtocolError
                raise err(f"{job.opcode.name} of transfer {job.tid:#x} to {self.url}: {why} "
                          f"({len(failed)} of {len(pending)} pieces failed in the last round)")
            pending = [p for off, n in failed for p in _split(off, n)]

    def _round(self, job: _Round, pending: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Send every piece of ``pending``, then the closing frame (STATUS, or an upload's
        COMMIT); return the pieces that failed."""
        inflight: dict[int, tuple[int, int, int]] = {}
        failed: list[tuple[int, int]] = []
        marker: dict[str, int] = {}

        def on_events(events: list) -> None:
            for ev in events:
                if isinstance(ev, RawBlockError):
                    f = ev.frame
                    self.stats.bad_frames += 1
                    if f.seq in inflight and f.echo == inflight[f.seq][2]:
                        off, n, _ = inflight.pop(f.seq)
                        failed.append((off, n))
                    continue
                if isinstance(ev, FrameError):
                    self.stats.bad_frames += 1
                    continue
                if not ev.is_response:
                    continue
                if ev.seq == marker.get("seq") and ev.echo == marker["crc"] and ev.opcode == marker["opcode"]:
                    if ev.status == Status.NO_SESSION:
                        raise SessionLost(f"the board at {self.url} lost the session (it rebooted)")
                    if ev.session == self._session:
                        job.closed(ev)
                    marker["seen"] = 1
                    continue
                entry = inflight.get(ev.seq)
                if entry is None or ev.echo != entry[2] or ev.opcode != job.opcode or ev.session != self._session:
                    if ev.status != Status.BAD_FRAME:
                        self.stats.rejected += 1
                    continue
                off, n, _ = inflight.pop(ev.seq)
                if ev.status == Status.OK and job.accept(ev, off, n):
                    continue
                if ev.status in (Status.OK, Status.DATA_CRC):
                    failed.append((off, n))
                elif ev.status == Status.NO_SESSION:
                    raise SessionLost(f"the board at {self.url} lost the session (it rebooted)")
                else:
                    name = Status(ev.status).name if ev.status in Status._value2member_map_ else "UNKNOWN"
                    raise ChipError(ev.status, name, ev.payload.decode("utf-8", "replace"))

        self._decoder.sink = lambda frame, nbytes: job.sink(frame, nbytes, inflight)
        try:
            return self._exchange_round(job, pending, inflight, failed, marker, on_events)
        finally:
            self._decoder.detach_sink()

    def _exchange_round(self, job: _Round, pending: list[tuple[int, int]], inflight: dict, failed: list,
                        marker: dict, on_events: Callable[[list], None]) -> list[tuple[int, int]]:
        parts: list = []
        for off, n in pending:
            unit, crc = job.unit(self._next_seq(), self._session, off, n)
            inflight[self._seq] = (off, n, crc)
            parts += unit
        req = job.closing(self._next_seq(), self._session)
        marker.update(seq=req.seq, crc=frame_crc(req), opcode=req.opcode)
        parts.append(encode_frame(req))
        self._send_parts(parts, on_events)
        job.sent()
        self.stats.commands += len(pending) + 1
        self.stats.unsequenced += len(pending) + (req.opcode == Opcode.STATUS)
        self.stats.commit_rounds += req.opcode == Opcode.COMMIT
        self.stats.bulk_rounds += 1
        self.stats.round_trips += 1
        wait_s = max(self.timeout_s, job.wait_s)
        deadline = time.monotonic() + wait_s
        while "seen" not in marker:
            events = self._take_in(deadline, PEEK if job.opcode == Opcode.BULK_GET else 1 << 20)
            if events is not None:
                on_events(events)
                deadline = time.monotonic() + wait_s  # the link is alive: wait on
            elif time.monotonic() >= deadline or getattr(self._port, "synchronous", False):
                on_events(self._decoder.abandon())
                break
        return failed + [(off, n) for off, n, _ in inflight.values()]

    def _send_parts(self, parts: list, on_events: Callable[[list], None]) -> None:
        """Write ``parts`` (bytes-like) in order, taking in what the board answers meanwhile:
        a board blocked on a full reply buffer (a pty holds a few KiB) must never stop the
        host's write.  On a descriptor the parts go out in gathered writes, uncopied."""
        direct = self._direct
        if direct is None:
            small: list = []  # small parts go out together: one write, not one per frame
            for part in parts:
                if len(part) >= WRITE_SLICE:
                    if small:
                        self._write_draining(b"".join(small), on_events)
                        small.clear()
                    self._write_draining(part, on_events)
                else:
                    small.append(part)
            if small:
                self._write_draining(b"".join(small), on_events)
            return
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        fd, i = self._fd, 0
        deadline = time.monotonic() + direct.timeout_s
        while i < len(views):
            n = wrote = direct.send_some(views[i:])
            self.stats.bytes_tx += n
            if n:
                deadline = time.monotonic() + direct.timeout_s
            i = drop_sent(views, n, i)
            wait = 0.0 if wrote or i == len(views) else max(0.0, deadline - time.monotonic())
            readable, writable, _ = select.select([fd], [fd] if i < len(views) else [], [], wait)
            if readable:  # small reads: a reply frame's raw block is then read in place (_take_in)
                events = self._take_in(0.0, PEEK)
                if events:
                    on_events(events)
            elif i < len(views) and not writable and time.monotonic() >= deadline:
                raise serial.SerialTimeoutException("write timeout")

    def _take_in(self, deadline: float, size: int = 1 << 20) -> list | None:
        """What the link received by ``deadline`` (monotonic s) as decoder events; None when
        nothing came.  Bytes of a raw block the decoder collects in place (a BULK_GET piece
        in flight) are read straight there: one copy from the kernel into the result.
        ``size``: most bytes one read takes otherwise."""
        if self._direct is None:
            data = self._receive(deadline)
            return self._decoder.feed_events(data) if data else None
        if not select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return None
        target = self._decoder.raw_target()
        if target is None:
            data = self._direct.read(size)
            self.stats.bytes_rx += len(data)
            return self._decoder.feed_events(data) if data else None
        n = self._direct.read_into(target)
        self.stats.bytes_rx += n
        return self._decoder.raw_received(n)

    def _write_draining(self, data, on_events: Callable[[list], None]) -> None:
        """Write ``data`` in slices through pyserial (a transport without a descriptor),
        taking in what the board has answered between them."""
        view = memoryview(data)
        port = self._port
        for i in range(0, len(view), WRITE_SLICE):
            part = view[i:i + WRITE_SLICE]
            port.write(part)
            self.stats.bytes_tx += len(part)
            if port.in_waiting:
                on_events(self._decoder.feed_events(self._receive(0.0)))
