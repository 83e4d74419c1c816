"""The virtual FPGA firmware: the board side of the protocol, driving a ``VirtualChip``.

It consumes bytes and produces bytes, exactly like the real board on the far side of the
serial link; transports (in-process URL, TCP, pty) only move those bytes.  It implements the
session and retry rules of docs/protocol.md (protocol v2):

- a frame failing COBS/CRC/length checks is answered BAD_FRAME (opcode, seq, session and
  echo 0); a CRC-valid frame of another protocol version is answered BAD_VERSION;
- HELLO opens a session (header ``session`` != 0) and clears the reply cache; any other
  request whose session is not the current one is answered NO_SESSION, never executed;
- the reply to the most recent seq is cached: the identical frame again (a retry) gets the
  cached reply and is **not executed again**; the same seq with other content is answered
  SEQ_REUSED, an older seq STALE_SEQ; STATUS is exempt (executed every time, never cached);
- every reply copies the request's opcode, seq and session and echoes its CRC-32 trailer;
- with ``ack_s`` set, a long job (WRITE_VERIFY, RUN, WAIT) still running after ``ack_s``
  is answered BUSY; the host polls STATUS and then retries the identical frame;
- every command is checked against the firmware's own ranges (OUT_OF_RANGE) besides the
  host's station limits.
"""
from __future__ import annotations

import bisect
import collections
import contextlib
import json
import operator
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from firmware_iface import messages as msg
from firmware_iface.bulk import (Limits, board_raw_rule, bulk_header, bulk_unit, decode_bulk, decode_commit,
                                 decode_fetch, decode_stage, encode_bulk, encode_limits, encode_result)
from firmware_iface.framing import (FLAG_RESPONSE, MAX_WIRE_FRAME, PROTOCOL_VERSION, Frame, FrameDecoder,
                                    RawBlockError, VersionError, encode_frame)
from firmware_iface.records import PayloadError, pack, record_struct, records, unpack
from firmware_iface.spec import (FW_VERSION, MAX_PING, RECORDS, REGISTER_BY_ID, REGISTER_BY_NAME, REGISTERS,
                                 Capability, Opcode, PulseKind, ReadMode, Status)
from firmware_iface.spec_text import MAX_STEPS, MAX_WAIT_NS
from firmware_iface.spikes import decode_upload_packed, encode_output
from firmware_iface.write_verify import WriteVerifyJob, as_reported
from sim_backend.chip import VirtualChip


class _RawReply(NamedTuple):
    """A BULK_GET reply: the BULK record (the frame's payload) and the raw block after it."""

    record: bytes
    data: memoryview


class _Parts(list):
    """A reply as the parts that go on the wire in order (a BULK_GET reply: its frame, the raw
    block as a view of the kept result, the closing 0x00), for a gathered write without copying
    the block; ``b"".join`` gives the bytes."""


class _Claim(NamedTuple):
    """A BULK_PUT or STAGE piece whose frame was decoded and which is not handled yet (a raw
    block being received, or a frame waiting in the decoder's output)."""

    frame: tuple[int, int]
    """(seq, CRC-32 trailer) of the announcing frame: the piece's event carries the same."""
    key: tuple[int, int, int]
    """(transfer id, target opcode, total) of the piece."""
    start: int
    end: int
    view: memoryview | None
    """Where its raw block is received in place (a slice of a staging buffer), or None: the
    decoder's own buffer."""


def _staging_buffer(total: int) -> np.ndarray:
    """A transfer's staging buffer (``total`` bytes, uint8), not zero-filled: a COMMIT runs only
    once every byte was received (zero-filling a 4 MB buffer costs as much as receiving it)."""
    return np.empty(total, np.uint8)


class CommandError(Exception):
    """Raised inside a handler to answer with a non-OK status."""

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message)
        self.status = status


_UPLOAD, _COUNT = record_struct("UPLOAD"), record_struct("COUNT")
"""struct forms of the records on the bulk upload path (numpy's are tens of us per call there)."""
SAMPLE_SLOTS = 65536
MAX_PAYLOAD = 4 * 1024 * 1024
# --- limits advertised in LIMITS (GET_LIMITS) and enforced before any work (issue 16) ---------
MAX_CHUNK = 1024
"""Largest STAGE / FETCH piece (bytes): every frame of a bounded transfer stays this small."""
MAX_PULSES = 1000
"""Most write-verify pulses per cell (SCHEDULE.max_pulses)."""
SAMPLE_MEMORY_BITS = 1 << 28
"""Board sample memory: stored input spikes, steps x rows bits per sample (32 MiB packed)."""
MAX_PULSE_RECORDS = 4096
"""Most PULSE records in one PULSE command."""
MAX_WV_CELLS = 4096
"""Most targets in one WRITE_VERIFY."""
MAX_READ_CELLS = 4096
"""Most CELL records in one READ_CELLS (LIST)."""
MAX_AVERAGES = 65535
"""Most averages of one read (READ_CELLS, SCHEDULE.read_averages)."""
MAX_CHIP_NS = 2**63 - 1
"""The chip clock never passes this (a WAIT that would is OUT_OF_RANGE): STATUS.chip_ns fits."""
MEMORY_BYTES = (3 * MAX_PAYLOAD                               # staging buffer, kept reply, one request
                + SAMPLE_MEMORY_BITS                           # one upload decoded to bools (<= the memory)
                + SAMPLE_MEMORY_BITS // 8 + SAMPLE_MEMORY_BITS // 128 * 12 // 8   # inputs, outputs packed
                + SAMPLE_MEMORY_BITS                           # RUN: its inputs as bools
                + SAMPLE_MEMORY_BITS // 128 * 12 * 8 * 2)      # RUN: float64 drive and outputs
"""Bound on the memory the firmware allocates for requests, whatever they ask (bytes; < 1 GiB).
Every size a request names is checked against the limits above before anything is allocated."""
DT_MIN_S, DT_MAX_S = 10e-9, 10e-3
# Absolute maxima the board firmware itself refuses beyond (the host's station limits are tighter).
FW_V_MAX = 5.0
FW_WIDTH_MAX_S = 1e-3
LONG_JOBS = frozenset({Opcode.WRITE_VERIFY, Opcode.RUN, Opcode.WAIT, Opcode.COMMIT})
"""Opcodes that may run longer than the acknowledge time and then answer BUSY."""
UNSEQUENCED = frozenset({Opcode.STATUS, Opcode.BULK_PUT, Opcode.BULK_GET})
"""Executed every time they arrive in the current session, whatever their seq; never cached."""


class _Ranges:
    """Byte ranges of a staging buffer received so far: sorted, disjoint, merged."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.count = 0
        """Bytes covered."""

    def add(self, a: int, b: int) -> int:
        """Cover ``[a, b)``; returns the bytes now covered."""
        if a < b:
            i = bisect.bisect_left(self.ends, a)      # first range ending at or after a
            j = bisect.bisect_right(self.starts, b)   # ranges starting at or before b touch [a, b)
            if i < j:
                self.count -= sum(e - s for s, e in zip(self.starts[i:j], self.ends[i:j]))
                a, b = min(a, self.starts[i]), max(b, self.ends[j - 1])
            self.starts[i:j], self.ends[i:j] = [a], [b]
            self.count += b - a
        return self.count

    def overlaps(self, a: int, b: int) -> bool:
        """Is any byte of ``[a, b)`` covered?"""
        i = bisect.bisect_right(self.ends, a)  # first range ending after a
        return a < b and i < len(self.starts) and self.starts[i] < b


def seq_newer(seq: int, last: int) -> bool:
    """Serial-number order of 16-bit seqs (RFC 1982): is ``seq`` after ``last``?"""
    return 0 < ((seq - last) & 0xFFFF) < 0x8000


class _Cached:
    """The reply cache entry: the most recent sequenced request and its reply."""

    __slots__ = ("seq", "opcode", "crc", "length", "reply", "job")

    def __init__(self, frame: Frame) -> None:
        self.seq, self.opcode, self.crc, self.length = frame.seq, frame.opcode, frame.crc, len(frame.payload)
        self.reply: bytes | None = None
        self.job: threading.Thread | None = None

    def same(self, frame: Frame) -> bool:
        return (frame.crc, frame.opcode, len(frame.payload)) == (self.crc, self.opcode, self.length)


class _SampleMemory:
    """The board's sample memory: slot -> (packed bits, steps) of the input stored there.

    Kept per upload, not per slot: an UPLOAD_SPIKES of ``n`` samples is one entry (its packed
    bitmaps, often a view of the request) plus three slice assignments to per-slot lists, so
    storing it costs the same few C-level list operations whatever ``n`` (it was ~1 us of
    Python per sample: about a quarter of the board's time per MB of a bulk upload,
    docs/BENCHMARKS.md link3).  Plain lists, not numpy arrays: each small numpy call costs tens
    of microseconds with cold caches, and the board runs these right after a transfer
    (docs/BENCHMARKS.md link4).  An upload's bitmaps are released once all of its slots were
    replaced."""

    def __init__(self, slots: int) -> None:
        self._upload = [-1] * slots
        """Per slot: the upload holding its sample (-1: none)."""
        self._row = [0] * slots
        """Per slot: the sample's row in that upload's bitmaps."""
        self._steps = [0] * slots
        """Per slot: the sample's steps (0: none)."""
        self._uploads: dict[int, list] = {}
        """upload id -> [bitmaps (n, nbytes) uint8, slots still holding one of its samples]."""
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, slot: object) -> bool:
        try:
            i = operator.index(slot)  # an int, or a numpy integer (as a dict key would take)
        except TypeError:
            return False
        return 0 <= i < len(self._upload) and self._upload[i] >= 0

    def __getitem__(self, slot: int) -> tuple[np.ndarray, int]:
        if slot not in self:
            raise KeyError(slot)
        slot = operator.index(slot)
        return self._uploads[self._upload[slot]][0][self._row[slot]], self._steps[slot]

    def steps(self, slot: int, n: int) -> int:
        """Steps of the samples stored in slots ``slot``..``slot + n - 1`` together."""
        return sum(self._steps[slot:slot + n])

    def missing(self, slot: int, n: int) -> int | None:
        """The first of slots ``slot``..``slot + n - 1`` holding no sample, or None."""
        try:
            return self._upload.index(-1, slot, slot + n) if n > 0 else None
        except ValueError:
            return None

    def store(self, slot: int, packed: np.ndarray, steps: int) -> None:
        """Store the ``len(packed)`` samples ``packed`` (one row each) in slots from ``slot``."""
        n = len(packed)
        if not n:
            return
        old = self._upload[slot:slot + n]
        ids = set(old)
        if len(ids) == 1:  # the usual case: the slots of one earlier upload, or all empty
            held = {} if -1 in ids else {ids.pop(): n}
        else:
            held = collections.Counter(old)
            held.pop(-1, None)
        self._count += n - sum(held.values())
        for uid, c in held.items():
            entry = self._uploads[uid]
            entry[1] -= c
            if not entry[1]:
                del self._uploads[uid]
        uid, self._next = self._next, self._next + 1
        self._uploads[uid] = [packed, n]
        self._upload[slot:slot + n] = [uid] * n
        self._row[slot:slot + n] = range(n)
        self._steps[slot:slot + n] = [steps] * n


class VirtualFirmware:
    """Board firmware emulation; thread-safe (one lock around the chip)."""

    job_class = WriteVerifyJob
    """The write-verify state machine WRITE_VERIFY runs (the normative one)."""

    def __init__(self, chip: VirtualChip, lock: threading.Lock | None = None,
                 chip_id: int | None = None) -> None:
        self.chip = chip
        self.lock = lock or threading.RLock()
        self.chip_id = chip_id if chip_id is not None else (0x5E0000000000 | (chip.chip_seed & 0xFFFFFFFF))
        self._claims: list[_Claim] = []
        self.decoder = self._new_decoder()
        self._garbage = False
        """A bad run of the bytes being fed was answered and no valid frame came since: further
        bad runs of the same burst are not."""
        self.frames_rx = 0
        self.duplicates = 0
        self.executed = 0
        """Sequenced commands executed (each at most once, whatever the retries)."""
        self.status_served = 0
        self.last_error = 0
        self.queries: dict[str, Callable[[], object]] = {}
        self.session = 0
        """Current session id (0: none open, as after power-up or a reboot)."""
        self.ack_s: float | None = None
        """Acknowledge time of long jobs: None answers when done; else BUSY after ``ack_s``."""
        self._cache: _Cached | None = None
        self._guard = threading.Lock()
        self._reset_memory()
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            Opcode.PING: self._ping, Opcode.GET_INFO: self._info, Opcode.REG_READ: self._reg_read,
            Opcode.REG_WRITE: self._reg_write, Opcode.READ_CELLS: self._read,
            Opcode.PULSE: self._pulse, Opcode.WRITE_VERIFY: self._write_verify,
            Opcode.UPLOAD_SPIKES: self._upload, Opcode.RUN: self._run,
            Opcode.READ_OUTPUT: self._read_output, Opcode.STATUS: self._status,
            Opcode.RESET: self._reset, Opcode.WAIT: self._wait, Opcode.SIM_QUERY: self._sim_query,
            Opcode.HELLO: self._hello, Opcode.STAGE: self._stage, Opcode.COMMIT: self._commit,
            Opcode.FETCH: self._fetch, Opcode.GET_LIMITS: self._get_limits,
            Opcode.BULK_PUT: self._bulk_put, Opcode.BULK_GET: self._bulk_get,
        }
        self.regs = {r.id: r.default_code for r in REGISTERS}
        self._apply_registers()

    def _reset_memory(self) -> None:
        self.inputs = _SampleMemory(SAMPLE_SLOTS)
        """slot -> (spikes packed with numpy.packbits (little), steps); ``rows`` bits per step."""
        self.outputs: dict[int, tuple[np.ndarray, int]] = {}
        """slot -> (output spikes packed, steps); ``neurons`` bits per step."""
        self.memory_bits = 0
        """Bits of sample memory in use (inputs)."""
        self._staging: list | None = None
        """Bounded transfer being received: [id, opcode, buffer, byte ranges received]."""
        self._prepared: tuple[tuple[int, int, int], np.ndarray] | None = None
        """The staging buffer of a transfer whose first BULK_PUT block is being received in
        place before any piece of it was handled: ((id, opcode, total), buffer); taken over
        when that transfer's first piece is stored."""
        self._kept: tuple[int, int, bytes] | None = None
        """Result of the last committed transfer: (id, status, reply payload)."""

    # --- byte interface ----------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Bytes from the host in, bytes to the host out."""
        out = self.feed_parts(data)
        return out[0] if len(out) == 1 and isinstance(out[0], bytes) else b"".join(out)

    def feed_parts(self, data: bytes) -> list:
        """Bytes from the host in; the bytes to the host out as a list of bytes-like parts, in
        order (a raw block is a view of the kept result, not a copy): for a gathered write."""
        self._garbage = False  # a new burst of bytes (on a UART: after a pause in the stream)
        return self._answer(self.decoder.feed_events(data))

    def raw_target(self) -> memoryview | None:
        """Where the next bytes from the host belong when a transport can receive them there
        directly (``recv_into``): the rest of a BULK_PUT raw block being received in place into
        its transfer's staging buffer; None otherwise (give the bytes to :meth:`feed_parts`)."""
        return self.decoder.raw_target()

    def received_parts(self, n: int) -> list:
        """``n`` bytes were received into :meth:`raw_target`'s view: the replies, as
        :meth:`feed_parts` gives them for the same bytes."""
        self._garbage = False
        return self._answer(self.decoder.raw_received(n))

    def _new_decoder(self) -> FrameDecoder:
        self._claims.clear()
        decoder = FrameDecoder(raw=self._raw_rule)
        decoder.sink = self._raw_sink
        return decoder

    def _raw_rule(self, frame: Frame) -> tuple[int, int] | None:
        """:func:`board_raw_rule`, and a claim for every STAGE piece decoded (see _raw_sink):
        a block is never received in place over bytes a STAGE piece before it will write."""
        if frame.opcode == Opcode.STAGE and not frame.is_response:
            with contextlib.suppress(PayloadError, ValueError):
                tid, opcode, total, offset, piece = decode_stage(frame.payload)
                self._claims.append(_Claim((frame.seq, frame.crc), (tid, opcode, total), offset,
                                           offset + len(piece), None))
            return None
        return board_raw_rule(frame)

    def _raw_sink(self, frame: Frame, nbytes: int) -> memoryview | None:
        """Where the raw block of a BULK_PUT ``frame`` is received: straight into its place in
        the transfer's staging buffer when no byte stored there can be lost -- none of its
        range already received (a late or corrupted duplicate never overwrites acknowledged
        bytes, decision 0016) nor claimed by a piece decoded before it and not handled yet (a
        STAGE or BULK_PUT piece handled later would write over it) -- and the piece passes the
        checks it will be handled with; else None (the decoder's buffer, then a copy).  Every
        BULK_PUT and STAGE piece decoded is claimed until its event is handled (:meth:`_answer`)."""
        h = decode_bulk(frame.payload)  # board_raw_rule decoded it already: a BULK record
        key, start, end = (h.id, h.opcode, h.total), h.offset, h.offset + nbytes
        view = self._place(frame, key, start, end)
        self._claims.append(_Claim((frame.seq, frame.crc), key, start, end, view))
        return view

    def _place(self, frame: Frame, key: tuple[int, int, int], start: int, end: int) -> memoryview | None:
        tid, opcode, total = key
        if not self.session or frame.session != self.session:
            return None  # answered NO_SESSION: nothing stored
        try:
            self._check_piece(tid, opcode, total, start, end - start)
        except CommandError:
            return None
        if any(c.key == key and c.start < end and start < c.end for c in self._claims):
            return None
        st = self._staging
        if st is not None and (st[0], st[1], len(st[2])) == key:
            if st[3].overlaps(start, end):
                return None
            buf = st[2]
        else:
            if self._prepared is None or self._prepared[0] != key:
                self._prepared = (key, _staging_buffer(total))
            buf = self._prepared[1]
        return memoryview(buf)[start:end]

    def _unclaim(self, frame: Frame) -> None:
        """The BULK_PUT or STAGE piece of ``frame`` was handled (stored, refused or failed)."""
        ident = (frame.seq, frame.crc)
        for i, c in enumerate(self._claims):
            if c.frame == ident:
                del self._claims[i]
                return

    def _answer(self, events: list) -> list:
        out: list = []
        for ev in events:
            if isinstance(ev, Frame):
                self._garbage = False
                reply = self.handle(ev)
                if ev.opcode in (Opcode.BULK_PUT, Opcode.STAGE) and not ev.is_response:
                    self._unclaim(ev)
                if isinstance(reply, _Parts):
                    out += reply
                else:
                    out.append(reply)
            elif isinstance(ev, RawBlockError):  # the BULK_PUT frame was sound: answer it, bound
                self._unclaim(ev.frame)
                self.frames_rx += 1
                self._garbage = True  # its bytes are searched again: what is not a frame is garbage
                out.append(self._reply(ev.frame, Status.DATA_CRC, str(ev).encode()))
            elif self._garbage and not isinstance(ev, VersionError):
                continue  # one BAD_FRAME per burst of bad runs (counted in STATUS.bad_frames)
            elif isinstance(ev, VersionError):
                self.last_error = int(Status.BAD_VERSION)
                out.append(encode_frame(Frame(0, 0, bytes([PROTOCOL_VERSION]), flags=FLAG_RESPONSE,
                                              status=Status.BAD_VERSION)))
            else:
                self._garbage = True
                self.last_error = int(Status.BAD_FRAME)
                out.append(encode_frame(Frame(0, 0, flags=FLAG_RESPONSE, status=Status.BAD_FRAME)))
        return out

    def _reply(self, req: Frame, status: Status, payload: bytes = b"") -> bytes | _Parts:
        if status != Status.OK:
            self.last_error = int(status)
        if isinstance(payload, _RawReply):  # BULK_GET: the BULK record in the frame, the data raw
            return _Parts(bulk_unit(Frame(req.opcode, req.seq, payload.record, flags=FLAG_RESPONSE,
                                          status=status, session=req.session, echo=req.crc), payload.data))
        return encode_frame(Frame(req.opcode, req.seq, payload, flags=FLAG_RESPONSE, status=status,
                                  session=req.session, echo=req.crc))

    def handle(self, frame: Frame) -> bytes | _Parts:
        """One decoded request -> the reply bytes (session, retry and BUSY rules applied); a
        BULK_GET reply as its parts (:class:`_Parts`)."""
        with self._guard:
            self.frames_rx += 1
            if frame.is_response:
                return self._reply(frame, Status.BAD_PAYLOAD, b"a response frame sent to the board")
            c = self._cache
            busy = c is not None and c.job is not None and c.job.is_alive()
            if frame.opcode == Opcode.HELLO:
                if c is not None and frame.session == self.session and frame.seq == c.seq and c.same(frame):
                    self.duplicates += 1
                    return c.reply if c.reply is not None else self._reply(frame, Status.BUSY)
                if busy:
                    return self._reply(frame, Status.BUSY, b"a job is running")
                if frame.session == 0:
                    return self._reply(frame, Status.OUT_OF_RANGE, b"session id 0 is reserved")
                self.session = frame.session
                self._cache = None
                return self._execute(frame)
            if self.session == 0 or frame.session != self.session:
                return self._reply(frame, Status.NO_SESSION,
                                   b"no session open" if self.session == 0 else b"not the current session")
            if frame.opcode in UNSEQUENCED:  # exempt from the seq rules: executed every time, not cached
                return self._run_handler(frame)
            if c is not None and frame.seq == c.seq:
                if not c.same(frame):
                    return self._reply(frame, Status.SEQ_REUSED, f"seq {frame.seq} was used by another frame".encode())
                self.duplicates += 1
                return c.reply if c.reply is not None else self._reply(frame, Status.BUSY, b"still running")
            if busy:
                return self._reply(frame, Status.BUSY, b"a job is running")
            if c is not None and not seq_newer(frame.seq, c.seq):
                return self._reply(frame, Status.STALE_SEQ,
                                   f"seq {frame.seq} is not after the most recent {c.seq}".encode())
            return self._execute(frame)

    def _execute(self, frame: Frame) -> bytes:
        """Run a sequenced request and cache its reply (a long job in the background)."""
        entry = _Cached(frame)
        self._cache = entry
        if self.ack_s is None or frame.opcode not in LONG_JOBS:
            entry.reply = self._run_handler(frame)
            return entry.reply

        def job() -> None:
            entry.reply = self._run_handler(frame)

        entry.job = threading.Thread(target=job, name="fw-job", daemon=True)
        entry.job.start()
        entry.job.join(self.ack_s)
        if entry.reply is not None:
            return entry.reply
        return self._reply(frame, Status.BUSY, b"accepted; running")

    def _run_handler(self, frame: Frame) -> bytes:
        if frame.opcode == Opcode.STATUS:  # not sequenced: not counted in ``executed``
            status, payload = self._invoke(frame.opcode, frame.payload)
            self.status_served += 1
        elif frame.opcode in UNSEQUENCED:  # bulk pieces touch the transfer buffers, not the chip
            raw = frame.data if frame.opcode == Opcode.BULK_PUT else None
            status, payload = self._invoke(frame.opcode, frame.payload, raw)
        else:
            with self.lock:
                status, payload = self._invoke(frame.opcode, frame.payload)
            if status == Status.OK:  # refused commands did not execute
                self.executed += 1
        return self._reply(frame, status, payload)

    def _invoke(self, opcode: int, request: bytes, data: bytes | None = None) -> tuple[Status, bytes]:
        """Run one handler: (status, reply payload); every failure becomes a status.  ``data``:
        the raw block that followed a BULK_PUT frame."""
        handler = self._handlers.get(opcode)
        status, payload = Status.OK, b""
        if handler is None:
            return Status.UNKNOWN_OPCODE, b""
        try:
            payload = handler(request) if data is None else handler(request, data)
        except CommandError as exc:
            status, payload = exc.status, str(exc).encode()[:200]
        except PayloadError as exc:
            status, payload = Status.BAD_PAYLOAD, str(exc).encode()[:200]
        except MemoryError:
            status, payload = Status.NO_MEMORY, b"out of memory"
        except Exception as exc:  # noqa: BLE001 - firmware answers, it never dies on a command
            status, payload = Status.INTERNAL, f"{type(exc).__name__}: {exc}".encode()[:200]
        if status == Status.OK and not isinstance(payload, _RawReply) and len(payload) > MAX_PAYLOAD:
            status = Status.NO_MEMORY
            payload = f"reply of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte frame limit".encode()
        return status, payload

    # --- helpers ------------------------------------------------------------------------
    def _apply_registers(self) -> None:
        """Register codes -> the chip model's SI settings (the DACs taking effect)."""
        r = self.chip.regs
        get = lambda name: REGISTER_BY_NAME[name].to_si(self.regs[REGISTER_BY_NAME[name].id])  # noqa: E731
        r.v_read_v = get("V_READ")
        r.v_spike_v = get("V_SPIKE")
        r.dt_s = get("TIME_STEP")
        r.theta = get("THRESHOLD")
        r.tau_steps = get("TAU")
        r.ref_scale = get("REFRACTORY")
        r.g_unit_s = get("G_UNIT")
        self.n_steps = int(get("N_STEPS"))
        self.regs[REGISTER_BY_NAME["LATENCY"].id] = int(round(r.latency_s * 1e9))

    def reboot(self) -> None:
        """A board reset from outside (power glitch, watchdog): registers to defaults,
        sample memory and the reply cache gone, a half-received frame discarded."""
        self._reset(b"")
        with self._guard:
            self._cache = None
            self.session = 0
        self.decoder = self._new_decoder()
        self._garbage = False

    def add_command_hook(self, hook: Callable[[int], None]) -> None:
        """Call ``hook(opcode)`` after every command handler, also a failed one, while the
        handler's lock is held (the die file saves there: ``sim_backend.die``)."""
        def wrap(opcode: int, handler: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
            def run(*request: bytes) -> bytes:
                try:
                    return handler(*request)
                finally:
                    hook(opcode)
            return run

        self._handlers = {op: wrap(op, h) for op, h in self._handlers.items()}

    def _check_cells(self, rows: np.ndarray, cols: np.ndarray) -> None:
        if rows.size and (rows.max() >= self.chip.rows or cols.max() >= self.chip.columns):
            raise CommandError(Status.OUT_OF_RANGE, "cell address outside the array")

    @staticmethod
    def _ns(seconds: float) -> int:
        return int(round(seconds * 1e9))

    # --- handlers -----------------------------------------------------------------------
    def _hello(self, p: bytes) -> bytes:
        if p:
            raise CommandError(Status.BAD_PAYLOAD, f"HELLO payload must be empty, got {len(p)} bytes")
        return msg.encode_hello(msg.Hello(
            protocol_version=PROTOCOL_VERSION, firmware_version=".".join(map(str, FW_VERSION)),
            session=self.session, max_payload=MAX_PAYLOAD, max_frame=MAX_WIRE_FRAME, v_max_v=FW_V_MAX,
            width_max_s=FW_WIDTH_MAX_S, capabilities=int(self._capabilities())))

    @staticmethod
    def _capabilities() -> Capability:
        return (Capability.WRITE_VERIFY | Capability.DENSE_UPLOAD | Capability.AER_UPLOAD
                | Capability.SIMULATED | Capability.BOUNDED | Capability.BULK)

    # --- limits and bounded transfers (issue 16) -----------------------------------------
    def limits(self) -> Limits:
        """Every limit this board enforces (the LIMITS record)."""
        return Limits(max_chunk=MAX_CHUNK, max_payload=MAX_PAYLOAD, max_steps=MAX_STEPS, max_pulses=MAX_PULSES,
                      sample_slots=SAMPLE_SLOTS, sample_memory_bits=SAMPLE_MEMORY_BITS,
                      max_pulse_records=MAX_PULSE_RECORDS, max_wv_cells=MAX_WV_CELLS,
                      max_read_cells=MAX_READ_CELLS, max_averages=MAX_AVERAGES, max_wait_ns=MAX_WAIT_NS,
                      max_chip_ns=MAX_CHIP_NS, memory_bytes=MEMORY_BYTES)

    def _get_limits(self, p: bytes) -> bytes:
        self._empty(p, "GET_LIMITS")
        return encode_limits(self.limits())

    _NOT_STAGED = frozenset({Opcode.STAGE, Opcode.COMMIT, Opcode.FETCH, Opcode.HELLO, Opcode.STATUS,
                             Opcode.BULK_PUT, Opcode.BULK_GET})

    def _stage(self, p: bytes) -> bytes:
        tid, opcode, total, offset, piece = decode_stage(p)
        if len(piece) > MAX_CHUNK:
            raise CommandError(Status.OUT_OF_RANGE, f"piece of {len(piece)} bytes exceeds max_chunk {MAX_CHUNK}")
        self._check_piece(tid, opcode, total, offset, len(piece))
        return pack("COUNT", count=self._put(tid, opcode, total, offset, piece))

    def _check_piece(self, tid: int, opcode: int, total: int, offset: int, n: int) -> None:
        """The checks of a STAGE or BULK_PUT piece (OUT_OF_RANGE before anything is stored)."""
        if tid == 0:
            raise CommandError(Status.OUT_OF_RANGE, "transfer id 0 is reserved")
        if opcode not in self._handlers or opcode in self._NOT_STAGED:
            raise CommandError(Status.OUT_OF_RANGE, f"opcode 0x{opcode:02x} cannot be staged")
        if total > MAX_PAYLOAD:
            raise CommandError(Status.OUT_OF_RANGE, f"transfer of {total} bytes exceeds max_payload {MAX_PAYLOAD}")
        if offset + n > total:
            raise CommandError(Status.OUT_OF_RANGE, f"piece {offset}+{n} beyond the transfer's {total} bytes")

    def _put(self, tid: int, opcode: int, total: int, offset: int, piece) -> int:
        """Store ``piece`` at ``offset`` of transfer ``tid``'s staging buffer (a new transfer
        replaces the one being staged); bytes of the transfer staged so far.  O(piece), so a
        transfer of many pieces costs linear time."""
        st = self._staging
        if st is None or st[0] != tid or st[1] != opcode or len(st[2]) != total:
            prep = self._prepared
            if prep is not None and prep[0] == (tid, opcode, total):  # blocks already received there
                buf, self._prepared = prep[1], None
            else:
                buf = _staging_buffer(total)
            st = self._staging = [tid, opcode, buf, _Ranges()]
        if not (isinstance(piece, memoryview) and piece.obj is st[2]
                and any(c.view is piece for c in self._claims)):  # else received in place: there
            memoryview(st[2])[offset:offset + len(piece)] = piece  # one copy (a bytearray slice copies twice)
        return st[3].add(offset, offset + len(piece))

    def _commit(self, p: bytes) -> bytes:
        tid, opcode, total = decode_commit(p)
        kept = self._kept
        if kept is not None and kept[0] == tid:  # run at most once per transfer id
            return encode_result(tid, kept[1], len(kept[2]), kept[2][:MAX_CHUNK])
        st = self._staging
        if st is None or st[0] != tid or st[1] != opcode or len(st[2]) != total:
            raise CommandError(Status.NOT_READY, f"transfer {tid:#x} was not staged as {total} bytes of 0x{opcode:02x}")
        if st[3].count != total:
            raise CommandError(Status.NOT_READY, f"transfer {tid:#x}: {total - st[3].count} bytes not staged")
        self._staging = None
        # the buffer itself: the transfer is over, and no block is being received into it (one
        # decoded after this COMMIT overlaps a piece claimed or received before it: _raw_sink)
        status, payload = self._invoke(opcode, memoryview(st[2]))
        self._kept = (tid, int(status), payload)
        return encode_result(tid, int(status), len(payload), payload[:MAX_CHUNK])

    def _fetch(self, p: bytes) -> bytes:
        tid, offset, length = decode_fetch(p)
        return self._kept_result(tid, offset, length, MAX_CHUNK)[offset:offset + length]

    def _kept_result(self, tid: int, offset: int, length: int, most: int) -> bytes:
        """The kept reply of transfer ``tid``, after the checks of a FETCH / BULK_GET of
        ``length`` (at most ``most``) bytes from ``offset``."""
        kept = self._kept
        if kept is None or kept[0] != tid:
            raise CommandError(Status.NOT_READY, f"no kept result of transfer {tid:#x}")
        if length > most:
            raise CommandError(Status.OUT_OF_RANGE, f"a piece of {length} bytes exceeds {most}")
        if offset + length > len(kept[2]):
            raise CommandError(Status.OUT_OF_RANGE, f"piece {offset}+{length} beyond the {len(kept[2])}-byte result")
        return kept[2]

    def _bulk_put(self, p: bytes, data: bytes = b"") -> bytes:
        h = decode_bulk(p)
        if len(data) != h.nbytes:  # the frame's BULK record did not parse as one when it arrived
            raise CommandError(Status.BAD_PAYLOAD, f"BULK_PUT announced {h.nbytes} raw bytes, {len(data)} arrived")
        self._check_piece(h.id, h.opcode, h.total, h.offset, h.nbytes)
        return _COUNT.pack(self._put(h.id, h.opcode, h.total, h.offset, data))

    def _bulk_get(self, p: bytes) -> bytes:
        tid, offset, length = decode_fetch(p)
        kept = self._kept_result(tid, offset, length, MAX_PAYLOAD)
        data = memoryview(kept)[offset:offset + length]
        return _RawReply(encode_bulk(bulk_header(tid, 0, len(kept), offset, data)), data)

    def _ping(self, p: bytes) -> bytes:
        if len(p) > MAX_PING:
            raise CommandError(Status.BAD_PAYLOAD, f"PING payload over {MAX_PING} bytes")
        return p

    @staticmethod
    def _empty(p: bytes, what: str) -> None:
        if p:
            raise CommandError(Status.BAD_PAYLOAD, f"{what} payload must be empty, got {len(p)} bytes")

    def _info(self, p: bytes) -> bytes:
        self._empty(p, "GET_INFO")
        c = self.chip
        caps = self._capabilities()
        return msg.encode_info(msg.ChipInfo(
            chip_id=self.chip_id, firmware_version=".".join(map(str, FW_VERSION)),
            protocol_version=PROTOCOL_VERSION, rows=c.rows, columns=c.columns, neurons=c.neurons,
            pes=c.pes, levels_s=tuple(float(x) for x in c.levels_s), max_steps=MAX_STEPS,
            dt_min_s=DT_MIN_S, dt_max_s=DT_MAX_S, latency_s=c.regs.latency_s,
            sample_slots=SAMPLE_SLOTS, max_payload=MAX_PAYLOAD, capabilities=int(caps)))

    def _reg_read(self, p: bytes) -> bytes:
        reg, _ = msg.decode_reg(p)
        if reg not in REGISTER_BY_ID:
            raise CommandError(Status.OUT_OF_RANGE, f"no register 0x{reg:02x}")
        return msg.encode_reg(reg, self.regs[reg])

    def _reg_write(self, p: bytes) -> bytes:
        reg, code = msg.decode_reg(p)
        spec = REGISTER_BY_ID.get(reg)
        if spec is None:
            raise CommandError(Status.OUT_OF_RANGE, f"no register 0x{reg:02x}")
        if not spec.writable:
            raise CommandError(Status.OUT_OF_RANGE, f"register {spec.name} is read-only")
        if not spec.min_code <= code <= spec.max_code:
            raise CommandError(Status.OUT_OF_RANGE,
                               f"{spec.name} code {code} outside [{spec.min_code}, {spec.max_code}]")
        self.regs[reg] = code
        self._apply_registers()
        return msg.encode_reg(reg, code)

    def _read(self, p: bytes) -> bytes:
        req = msg.decode_read(p)
        v = req.v_read_uv * 1e-6
        if not 0 < v <= 1.0 or not 1 <= req.averages <= MAX_AVERAGES:
            raise CommandError(Status.OUT_OF_RANGE, f"read voltage or averages (1..{MAX_AVERAGES}) out of range")
        if req.mode == ReadMode.LIST and len(req.rows) > MAX_READ_CELLS:
            raise CommandError(Status.OUT_OF_RANGE, f"{len(req.rows)} cells exceed max_read_cells {MAX_READ_CELLS}")
        c = self.chip
        if req.mode == ReadMode.LIST:
            rows, cols = req.rows, req.cols
        elif req.mode == ReadMode.ROW:
            rows, cols = np.full(c.columns, req.row), np.arange(c.columns)
        else:
            rr, cc = np.meshgrid(np.arange(c.rows), np.arange(c.columns), indexing="ij")
            rows, cols = rr.ravel(), cc.ravel()
        self._check_cells(rows, cols)
        return msg.encode_conductances(self._measure(rows, cols, req.v_read_uv, req.averages))

    def _measure(self, rows: np.ndarray, cols: np.ndarray, v_read_uv: int, averages: int) -> np.ndarray:
        """Averaged reads as READ_CELLS reports them (float32 siemens); write-verify uses the same."""
        return as_reported(self.chip.read(rows, cols, v_read_uv * 1e-6, averages))

    def _apply_pulses(self, p: np.ndarray) -> None:
        """Apply PULSE records in order, after checking the whole batch (nothing applied on error)."""
        v_bl, v_wl, v_sl = p["v_bl_mv"] * 1e-3, p["v_wl_mv"] * 1e-3, p["v_sl_mv"] * 1e-3
        width = p["width_ns"] * 1e-9
        if np.any((v_bl > FW_V_MAX) | (v_wl > FW_V_MAX) | (v_sl > FW_V_MAX)) or np.any(width > FW_WIDTH_MAX_S):
            raise CommandError(Status.OUT_OF_RANGE, "pulse beyond the firmware's absolute maxima")
        kind = p["kind"]
        if not np.all((kind == PulseKind.SET) | (kind == PulseKind.RESET)):
            raise CommandError(Status.OUT_OF_RANGE, "pulse kind must be SET (1) or RESET (2)")
        rows, cols = p["row"].astype(np.int64), p["col"].astype(np.int64)
        self._check_cells(rows, cols)
        signed = np.where(kind == PulseKind.SET, 1, -1)
        self.chip.pulse(signed, rows, cols, v_bl, v_wl, v_sl, width)

    def _pulse(self, p: bytes) -> bytes:
        pulses = msg.decode_pulses(p)
        if len(pulses) > MAX_PULSE_RECORDS:
            raise CommandError(Status.OUT_OF_RANGE, f"{len(pulses)} pulses exceed max_pulse_records {MAX_PULSE_RECORDS}")
        t0 = self.chip.clock_s
        self._apply_pulses(pulses)
        return msg.encode_done(len(pulses), self._ns(self.chip.clock_s - t0))

    def _write_verify(self, p: bytes) -> bytes:
        schedule, targets = msg.decode_write_verify(p)
        rows, cols = targets["row"].astype(np.int64), targets["col"].astype(np.int64)
        self._check_cells(rows, cols)
        r, _ = unpack("SCHEDULE", p)
        uv, averages = int(r["v_read_uv"]), int(r["read_averages"])
        if rows.size > MAX_WV_CELLS:
            raise CommandError(Status.OUT_OF_RANGE, f"{rows.size} targets exceed max_wv_cells {MAX_WV_CELLS}")
        if int(r["max_pulses"]) > MAX_PULSES or averages > MAX_AVERAGES:
            raise CommandError(Status.OUT_OF_RANGE, f"max_pulses {int(r['max_pulses'])} / read_averages {averages} "
                                                    f"beyond the board's {MAX_PULSES} / {MAX_AVERAGES}")
        top = max(int(r[k]) for k in ("set_max_mv", "set_wl_mv", "reset_max_mv", "reset_wl_mv")) * 1e-3
        if top > FW_V_MAX or int(r["width_ns"]) * 1e-9 > FW_WIDTH_MAX_S or uv > 1_000_000:
            raise CommandError(Status.OUT_OF_RANGE, "schedule voltage, width or read voltage beyond the board maxima")
        t0 = self.chip.clock_s
        job = self.job_class.from_nano_siemens(targets["target_ns"], schedule)
        while not job.finished:
            idx = job.to_read()
            batch = job.step(idx, self._measure(rows[idx], cols[idx], uv, averages))
            if len(batch):
                self._apply_pulses(msg.pulse_records(batch.kind, rows[batch.index], cols[batch.index],
                                                     batch.v_bl_v, batch.v_wl_v, batch.v_sl_v, batch.width_s))
        res = records("CELL_RESULT", rows.size)
        res["row"], res["col"] = rows, cols
        res["flags"], res["pulses"], res["g_s"] = job.flags(), job.pulses, job.g
        return msg.encode_cell_results(res, self._ns(self.chip.clock_s - t0))

    def _upload(self, p: bytes) -> bytes:
        # The header's sizes are checked before anything is decoded or allocated.
        if len(p) < _UPLOAD.size:
            unpack("UPLOAD", p)  # raises the record's PayloadError
        slot, n, steps, rows = _UPLOAD.unpack_from(p)
        if steps > MAX_STEPS:
            raise CommandError(Status.OUT_OF_RANGE, f"upload has {steps} steps, the board runs at most {MAX_STEPS}")
        if rows != self.chip.rows:
            raise CommandError(Status.OUT_OF_RANGE, f"upload has {rows} rows, array has {self.chip.rows}")
        if slot + n > SAMPLE_SLOTS:
            raise CommandError(Status.NO_MEMORY, f"slots {slot}..{slot + n - 1} beyond {SAMPLE_SLOTS}")
        if n * RECORDS["SAMPLE"].itemsize > len(p):
            raise CommandError(Status.BAD_PAYLOAD, f"{n} samples announced in a {len(p)}-byte payload")
        replaced = self.inputs.steps(slot, n) * rows
        if self.memory_bits - replaced + n * steps * rows > SAMPLE_MEMORY_BITS:
            raise CommandError(Status.NO_MEMORY, f"{n} samples of {steps} x {rows} bits exceed the sample memory "
                                                 f"({SAMPLE_MEMORY_BITS} bits, {self.memory_bits} in use)")
        slot, packed, _, _, _ = decode_upload_packed(p)
        self.inputs.store(slot, packed, steps)
        self.memory_bits += n * steps * rows - replaced
        stale = (s for s in range(slot, slot + n) if s in self.outputs) if n < len(self.outputs) else \
            [s for s in self.outputs if slot <= s < slot + n]
        for s in list(stale):  # their results are stale
            del self.outputs[s]
        return _COUNT.pack(n)

    def _input(self, s: int) -> np.ndarray:
        packed, steps = self.inputs[s]
        rows = self.chip.rows
        return np.unpackbits(packed, count=steps * rows, bitorder="little").view(bool).reshape(steps, rows)

    def _output(self, s: int) -> np.ndarray:
        packed, steps = self.outputs[s]
        k = self.chip.neurons
        return np.unpackbits(packed, count=steps * k, bitorder="little").view(bool).reshape(steps, k)

    @staticmethod
    def _slots(slot: int, n: int) -> None:
        if slot + n > SAMPLE_SLOTS:
            raise CommandError(Status.OUT_OF_RANGE, f"slots {slot}..{slot + n - 1} beyond sample_slots {SAMPLE_SLOTS}")

    def _run(self, p: bytes) -> bytes:
        slot, n = msg.decode_run(p)
        self._slots(slot, n)
        missing = self.inputs.missing(slot, n)
        if missing is not None:
            raise CommandError(Status.NOT_READY, f"no input stored in slot {missing}")
        batch = np.stack([self._input(s) for s in range(slot, slot + n)]) if n else np.zeros((0, 1, self.chip.rows), bool)
        t0 = self.chip.clock_s
        trig_mode = self.regs.get(REGISTER_BY_NAME["TRIG_MODE"].id, 0)
        world = getattr(self, "world", None)
        if trig_mode and n and world is not None:
            world.trigger(t0)            # the trigger output rises as the RUN starts
        out = self.chip.run(batch) if n else np.zeros((0, batch.shape[1], self.chip.neurons), bool)
        if trig_mode == 2 and n > 1 and world is not None:
            per = (self.chip.clock_s - t0) / n    # then at the start of every further sample
            for i in range(1, n):
                world.trigger(t0 + i * per)
        for i in range(n):
            self.outputs[slot + i] = (np.packbits(out[i], bitorder="little"), out.shape[1])
        return msg.encode_done(n, self._ns(self.chip.clock_s - t0))

    def _read_output(self, p: bytes) -> bytes:
        slot, n = msg.decode_run(p)
        self._slots(slot, n)
        missing = next((s for s in range(slot, slot + n) if s not in self.outputs), None)
        if missing is not None:
            raise CommandError(Status.NOT_READY, f"no output for slot {missing} (RUN first)")
        if n == 0:
            return encode_output(np.zeros((0, self.n_steps, self.chip.neurons), bool))
        outs = [self._output(s) for s in range(slot, slot + n)]
        if len({o.shape for o in outs}) > 1:
            raise CommandError(Status.OUT_OF_RANGE, f"slots {slot}..{slot + n - 1} hold results of different lengths")
        return encode_output(np.stack(outs))

    def _status(self, p: bytes) -> bytes:
        self._empty(p, "STATUS")
        c = self._cache
        running = c is not None and c.job is not None and c.job.is_alive()
        return msg.encode_status(
            state=1 if running else 0, last_error=self.last_error, chip_ns=self._ns(self.chip.clock_s),
            frames_rx=self.frames_rx, bad_frames=self.decoder.errors, duplicates=self.duplicates,
            samples_stored=len(self.inputs), outputs_ready=len(self.outputs))

    def _reset(self, p: bytes) -> bytes:
        self._empty(p, "RESET")
        self.regs = {r.id: r.default_code for r in REGISTERS}
        self.chip.reset()
        self._apply_registers()
        self._reset_memory()
        self.last_error = 0
        return b""

    def _wait(self, p: bytes) -> bytes:
        ns = msg.decode_wait(p)
        if ns > MAX_WAIT_NS:
            raise CommandError(Status.OUT_OF_RANGE, f"WAIT of {ns} ns exceeds {MAX_WAIT_NS} ns")
        if self._ns(self.chip.clock_s) + ns > MAX_CHIP_NS:
            raise CommandError(Status.OUT_OF_RANGE, f"WAIT of {ns} ns would take the chip clock past {MAX_CHIP_NS} ns")
        self.chip.advance(ns * 1e-9)
        return msg.encode_done(0, ns)

    def _sim_query(self, p: bytes) -> bytes:
        name = bytes(p).decode("utf-8", "replace")  # any bytes-like (a committed transfer: a view)
        fn = self.queries.get(name) or _DEFAULT_QUERIES.get(name)
        if fn is None:
            raise CommandError(Status.UNSUPPORTED, f"unknown simulator query {name!r}")
        value = fn() if name in self.queries else fn(self)
        with contextlib.suppress(TypeError):
            return json.dumps(value).encode()
        raise CommandError(Status.INTERNAL, f"query {name!r} not serialisable")


_DEFAULT_QUERIES: dict[str, Callable[[VirtualFirmware], object]] = {
    "clock_s": lambda fw: fw.chip.clock_s,
    "executed": lambda fw: fw.executed,
    "duplicates": lambda fw: fw.duplicates,
    "conductances": lambda fw: np.asarray(fw.chip.conductances() if hasattr(fw.chip, "conductances")
                                          else fw.chip.g).tolist(),
    "seeds": lambda fw: {"chip_seed": fw.chip.chip_seed, "run_seed": fw.chip.run_seed},
    # ground truth of the stuck-cell map (issue 4 tests): bool (rows, columns)
    "stuck": lambda fw: np.asarray(fw.chip.array.stuck).tolist(),
    # programming pulses each cell has received since power-up (wear; issue 16 resume tests)
    "pulse_counts": lambda fw: np.asarray(fw.chip.array.pulse_count).tolist(),
    "stuck_conductances": lambda fw: np.where(fw.chip.array.stuck, fw.chip.array.g_stuck, np.nan).tolist(),
}
