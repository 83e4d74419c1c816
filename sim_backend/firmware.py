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

import contextlib
import json
import threading
from collections.abc import Callable

import numpy as np

from firmware_iface import messages as msg
from firmware_iface.framing import (FLAG_RESPONSE, MAX_WIRE_FRAME, PROTOCOL_VERSION, Frame, FrameDecoder,
                                    VersionError, encode_frame)
from firmware_iface.records import PayloadError, pack, records, unpack
from firmware_iface.spec import (FW_VERSION, MAX_PING, REGISTER_BY_ID, REGISTER_BY_NAME, REGISTERS, Capability,
                                 Opcode, PulseKind, ReadMode, Status)
from firmware_iface.spec_text import MAX_STEPS, MAX_WAIT_NS
from firmware_iface.spikes import decode_upload, encode_output
from firmware_iface.write_verify import WriteVerifyJob, as_reported
from sim_backend.chip import VirtualChip


class CommandError(Exception):
    """Raised inside a handler to answer with a non-OK status."""

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message)
        self.status = status


SAMPLE_SLOTS = 65536
MAX_PAYLOAD = 4 * 1024 * 1024
DT_MIN_S, DT_MAX_S = 10e-9, 10e-3
# Absolute maxima the board firmware itself refuses beyond (the host's station limits are tighter).
FW_V_MAX = 5.0
FW_WIDTH_MAX_S = 1e-3
LONG_JOBS = frozenset({Opcode.WRITE_VERIFY, Opcode.RUN, Opcode.WAIT})
"""Opcodes that may run longer than the acknowledge time and then answer BUSY."""


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


class VirtualFirmware:
    """Board firmware emulation; thread-safe (one lock around the chip)."""

    def __init__(self, chip: VirtualChip, lock: threading.Lock | None = None,
                 chip_id: int | None = None) -> None:
        self.chip = chip
        self.lock = lock or threading.RLock()
        self.chip_id = chip_id if chip_id is not None else (0x5E0000000000 | (chip.chip_seed & 0xFFFFFFFF))
        self.decoder = FrameDecoder()
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
            Opcode.HELLO: self._hello,
        }
        self.regs = {r.id: r.default_code for r in REGISTERS}
        self._apply_registers()

    def _reset_memory(self) -> None:
        self.inputs: dict[int, np.ndarray] = {}
        self.outputs: dict[int, np.ndarray] = {}

    # --- byte interface ----------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Bytes from the host in, bytes to the host out."""
        out = []
        for ev in self.decoder.feed_events(data):
            if isinstance(ev, Frame):
                out.append(self.handle(ev))
            elif isinstance(ev, VersionError):
                self.last_error = int(Status.BAD_VERSION)
                out.append(encode_frame(Frame(0, 0, bytes([PROTOCOL_VERSION]), flags=FLAG_RESPONSE,
                                              status=Status.BAD_VERSION)))
            else:
                self.last_error = int(Status.BAD_FRAME)
                out.append(encode_frame(Frame(0, 0, flags=FLAG_RESPONSE, status=Status.BAD_FRAME)))
        return b"".join(out)

    def _reply(self, req: Frame, status: Status, payload: bytes = b"") -> bytes:
        if status != Status.OK:
            self.last_error = int(status)
        return encode_frame(Frame(req.opcode, req.seq, payload, flags=FLAG_RESPONSE, status=status,
                                  session=req.session, echo=req.crc))

    def handle(self, frame: Frame) -> bytes:
        """One decoded request -> the reply bytes (session, retry and BUSY rules applied)."""
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
            if frame.opcode == Opcode.STATUS:  # exempt from the seq rules: executed every time, not cached
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
        handler = self._handlers.get(frame.opcode)
        status, payload = Status.OK, b""
        if handler is None:
            status = Status.UNKNOWN_OPCODE
        else:
            try:
                if frame.opcode == Opcode.STATUS:  # not sequenced: not counted in ``executed``
                    payload = handler(frame.payload)
                    self.status_served += 1
                else:
                    with self.lock:
                        payload = handler(frame.payload)
                    self.executed += 1
            except CommandError as exc:
                status, payload = exc.status, str(exc).encode()[:200]
            except PayloadError as exc:
                status, payload = Status.BAD_PAYLOAD, str(exc).encode()[:200]
            except Exception as exc:  # noqa: BLE001 - firmware answers, it never dies on a command
                status, payload = Status.INTERNAL, f"{type(exc).__name__}: {exc}".encode()[:200]
        if status == Status.OK and len(payload) > MAX_PAYLOAD:
            status = Status.NO_MEMORY
            payload = f"reply of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte frame limit".encode()
        return self._reply(frame, status, payload)

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
        self.decoder = FrameDecoder()

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
                | Capability.SIMULATED)

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
        if not 0 < v <= 1.0 or req.averages < 1:
            raise CommandError(Status.OUT_OF_RANGE, "read voltage or averages out of range")
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
        t0 = self.chip.clock_s
        self._apply_pulses(pulses)
        return msg.encode_done(len(pulses), self._ns(self.chip.clock_s - t0))

    def _write_verify(self, p: bytes) -> bytes:
        schedule, targets = msg.decode_write_verify(p)
        rows, cols = targets["row"].astype(np.int64), targets["col"].astype(np.int64)
        self._check_cells(rows, cols)
        r, _ = unpack("SCHEDULE", p)
        uv, averages = int(r["v_read_uv"]), int(r["read_averages"])
        top = max(int(r[k]) for k in ("set_max_mv", "set_wl_mv", "reset_max_mv", "reset_wl_mv")) * 1e-3
        if top > FW_V_MAX or int(r["width_ns"]) * 1e-9 > FW_WIDTH_MAX_S or uv > 1_000_000:
            raise CommandError(Status.OUT_OF_RANGE, "schedule voltage, width or read voltage beyond the board maxima")
        t0 = self.chip.clock_s
        job = WriteVerifyJob.from_nano_siemens(targets["target_ns"], schedule)
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
        slot, spikes, _ = decode_upload(p)
        n, steps, rows = spikes.shape
        if steps > MAX_STEPS:
            raise CommandError(Status.OUT_OF_RANGE, f"upload has {steps} steps, the board runs at most {MAX_STEPS}")
        if rows != self.chip.rows:
            raise CommandError(Status.OUT_OF_RANGE, f"upload has {rows} rows, array has {self.chip.rows}")
        if slot + n > SAMPLE_SLOTS:
            raise CommandError(Status.NO_MEMORY, f"slots {slot}..{slot + n - 1} beyond {SAMPLE_SLOTS}")
        for i in range(n):
            self.inputs[slot + i] = spikes[i]
            self.outputs.pop(slot + i, None)
        return pack("COUNT", count=n)

    def _run(self, p: bytes) -> bytes:
        slot, n = msg.decode_run(p)
        missing = [s for s in range(slot, slot + n) if s not in self.inputs]
        if missing:
            raise CommandError(Status.NOT_READY, f"no input stored in slot {missing[0]}")
        batch = np.stack([self.inputs[s] for s in range(slot, slot + n)]) if n else np.zeros((0, 1, self.chip.rows), bool)
        t0 = self.chip.clock_s
        out = self.chip.run(batch) if n else np.zeros((0, batch.shape[1], self.chip.neurons), bool)
        for i in range(n):
            self.outputs[slot + i] = out[i]
        return msg.encode_done(n, self._ns(self.chip.clock_s - t0))

    def _read_output(self, p: bytes) -> bytes:
        slot, n = msg.decode_run(p)
        missing = [s for s in range(slot, slot + n) if s not in self.outputs]
        if missing:
            raise CommandError(Status.NOT_READY, f"no output for slot {missing[0]} (RUN first)")
        if n == 0:
            return encode_output(np.zeros((0, self.n_steps, self.chip.neurons), bool))
        outs = [self.outputs[s] for s in range(slot, slot + n)]
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
        self.chip.advance(ns * 1e-9)
        return msg.encode_done(0, ns)

    def _sim_query(self, p: bytes) -> bytes:
        name = p.decode("utf-8", "replace")
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
