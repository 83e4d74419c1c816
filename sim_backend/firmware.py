"""The virtual FPGA firmware: the board side of the protocol, driving a ``VirtualChip``.

It consumes bytes and produces bytes, exactly like the real board on the far side of the
serial link; transports (in-process URL, TCP, pty) only move those bytes.  Behaviour a
host can rely on, and which the real firmware must share:

- malformed frames (COBS/CRC/length) are answered with status BAD_FRAME, seq 0;
- the reply to the most recent sequence number is cached: a request repeating that
  sequence number (a host retry) gets the cached reply and is **not executed again**;
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
from firmware_iface.framing import FLAG_RESPONSE, PROTOCOL_VERSION, Frame, FrameDecoder, encode_frame
from firmware_iface.records import PayloadError, pack, records
from firmware_iface.spec import (FW_VERSION, MAX_PING, REGISTER_BY_ID, REGISTER_BY_NAME, REGISTERS, Capability,
                                 Opcode, PulseKind, ReadMode, Status)
from firmware_iface.spikes import decode_upload, encode_output
from firmware_iface.write_verify import WriteVerifyJob
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
        self.last_error = 0
        self.queries: dict[str, Callable[[], object]] = {}
        self._last: tuple[int, int, bytes] | None = None  # (seq, opcode, reply bytes)
        self._reset_memory()
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            Opcode.PING: self._ping, Opcode.GET_INFO: self._info, Opcode.REG_READ: self._reg_read,
            Opcode.REG_WRITE: self._reg_write, Opcode.READ_CELLS: self._read,
            Opcode.PULSE: self._pulse, Opcode.WRITE_VERIFY: self._write_verify,
            Opcode.UPLOAD_SPIKES: self._upload, Opcode.RUN: self._run,
            Opcode.READ_OUTPUT: self._read_output, Opcode.STATUS: self._status,
            Opcode.RESET: self._reset, Opcode.WAIT: self._wait, Opcode.SIM_QUERY: self._sim_query,
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
        errors_before = self.decoder.errors
        for frame in self.decoder.feed(data):
            out.append(self.handle(frame))
        for _ in range(self.decoder.errors - errors_before):
            out.append(encode_frame(Frame(opcode=0, seq=0, flags=FLAG_RESPONSE, status=Status.BAD_FRAME)))
        return b"".join(out)

    def handle(self, frame: Frame) -> bytes:
        self.frames_rx += 1
        if frame.is_response:
            return encode_frame(Frame(frame.opcode, frame.seq, flags=FLAG_RESPONSE,
                                      status=Status.BAD_PAYLOAD))
        if self._last is not None and self._last[0] == frame.seq and self._last[1] == frame.opcode:
            self.duplicates += 1
            return self._last[2]
        handler = self._handlers.get(frame.opcode)
        status, payload = Status.OK, b""
        if handler is None:
            status = Status.UNKNOWN_OPCODE
        else:
            try:
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
        if status != Status.OK:
            self.last_error = int(status)
        reply = encode_frame(Frame(frame.opcode, frame.seq, payload, flags=FLAG_RESPONSE,
                                   status=status, version=PROTOCOL_VERSION))
        self._last = (frame.seq, frame.opcode, reply)
        return reply

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
        self._last = None
        self.decoder = FrameDecoder()

    def add_command_hook(self, hook: Callable[[int], None]) -> None:
        """Call ``hook(opcode)`` after every command handler, also a failed one, while the
        handler's lock is held (the die file saves there: ``sim_backend.die``)."""
        def wrap(opcode: int, handler: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
            def run(payload: bytes) -> bytes:
                try:
                    return handler(payload)
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
    def _ping(self, p: bytes) -> bytes:
        if len(p) > MAX_PING:
            raise CommandError(Status.BAD_PAYLOAD, f"PING payload over {MAX_PING} bytes")
        return p

    def _info(self, p: bytes) -> bytes:
        c = self.chip
        caps = (Capability.WRITE_VERIFY | Capability.DENSE_UPLOAD | Capability.AER_UPLOAD
                | Capability.SIMULATED)
        return msg.encode_info(msg.ChipInfo(
            chip_id=self.chip_id, firmware_version=".".join(map(str, FW_VERSION)),
            protocol_version=PROTOCOL_VERSION, rows=c.rows, columns=c.columns, neurons=c.neurons,
            pes=c.pes, levels_s=tuple(float(x) for x in c.levels_s), max_steps=4096,
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
        return msg.encode_conductances(c.read(rows, cols, v, req.averages))

    def _apply_pulses(self, kind: np.ndarray, rows: np.ndarray, cols: np.ndarray, v_bl: np.ndarray,
                      v_wl: np.ndarray, v_sl: np.ndarray, width: np.ndarray) -> None:
        if np.any((v_bl > FW_V_MAX) | (v_wl > FW_V_MAX) | (v_sl > FW_V_MAX)) or np.any(width > FW_WIDTH_MAX_S):
            raise CommandError(Status.OUT_OF_RANGE, "pulse beyond the firmware's absolute maxima")
        if not np.all((kind == PulseKind.SET) | (kind == PulseKind.RESET)):
            raise CommandError(Status.OUT_OF_RANGE, "pulse kind must be SET (1) or RESET (2)")
        self._check_cells(rows, cols)
        signed = np.where(kind == PulseKind.SET, 1, -1)
        self.chip.pulse(signed, rows, cols, v_bl, v_wl, v_sl, width)

    def _pulse(self, p: bytes) -> bytes:
        pulses = msg.decode_pulses(p)
        t0 = self.chip.clock_s
        self._apply_pulses(pulses["kind"], pulses["row"].astype(np.int64), pulses["col"].astype(np.int64),
                           pulses["v_bl_mv"] * 1e-3, pulses["v_wl_mv"] * 1e-3, pulses["v_sl_mv"] * 1e-3,
                           pulses["width_ns"] * 1e-9)
        return msg.encode_done(len(pulses), self._ns(self.chip.clock_s - t0))

    def _write_verify(self, p: bytes) -> bytes:
        schedule, targets = msg.decode_write_verify(p)
        rows, cols = targets["row"].astype(np.int64), targets["col"].astype(np.int64)
        self._check_cells(rows, cols)
        t0 = self.chip.clock_s
        job = WriteVerifyJob(targets["target_s"].astype(np.float64), schedule)
        while not job.finished:
            idx = job.to_read()
            g = self.chip.read(rows[idx], cols[idx], schedule.v_read_v, schedule.read_averages)
            batch = job.step(idx, g)
            if len(batch):
                self._apply_pulses(batch.kind, rows[batch.index], cols[batch.index], batch.v_bl_v,
                                   batch.v_wl_v, batch.v_sl_v, batch.width_s)
        res = records("CELL_RESULT", rows.size)
        res["row"], res["col"] = rows, cols
        res["flags"], res["pulses"], res["g_s"] = job.flags(), job.pulses, job.g
        return msg.encode_cell_results(res, self._ns(self.chip.clock_s - t0))

    def _upload(self, p: bytes) -> bytes:
        slot, spikes, _ = decode_upload(p)
        n, steps, rows = spikes.shape
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
        return encode_output(np.stack([self.outputs[s] for s in range(slot, slot + n)]))

    def _status(self, p: bytes) -> bytes:
        return msg.encode_status(
            state=0, last_error=self.last_error, chip_ns=self._ns(self.chip.clock_s),
            frames_rx=self.frames_rx, bad_frames=self.decoder.errors, duplicates=self.duplicates,
            samples_stored=len(self.inputs), outputs_ready=len(self.outputs))

    def _reset(self, p: bytes) -> bytes:
        self.regs = {r.id: r.default_code for r in REGISTERS}
        self.chip.reset()
        self._apply_registers()
        self._reset_memory()
        self.last_error = 0
        return b""

    def _wait(self, p: bytes) -> bytes:
        ns = msg.decode_wait(p)
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
    "stuck_conductances": lambda fw: np.where(fw.chip.array.stuck, fw.chip.array.g_stuck, np.nan).tolist(),
}
