"""``PEChip``: the typed, SI-unit driver of the PE-macro chip behind the FPGA board.

The link is any pyserial URL; the driver cannot tell the real board from the virtual
firmware.  Reliability (protocol v2, docs/protocol.md): on connect the driver opens a
session with HELLO (a random 32-bit session id); every command carries the session and a
sequence number; a reply is accepted only when its session, seq and opcode are the
request's and its echo is the request's CRC-32 — anything else (a late reply, another
host's, a corrupted one) is discarded while waiting.  On a timeout or a corrupted frame the
*identical* frame is resent, and the board answers it from its reply cache without executing
it again, so a retried PULSE never pulses twice.  BUSY is followed by STATUS polls with
back-off, bounded by the command's deadline, then the identical frame again.  A board that
lost the session (NO_SESSION: it rebooted) gets a new HELLO and the command once more.  One
lock makes the driver the single owner of its link (thread-safe).

Safety: every voltage, pulse width, time step and schedule is checked against the
station's :class:`~drivers.limits.ChipLimits` before a byte is sent.
"""
from __future__ import annotations

import json
import secrets
import select
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
from serial import SerialException

from drivers.bounded import BoundedTransfers
from drivers.errors import ChipError, ChipTimeout, LimitError, LinkError, ProtocolError
from drivers.limits import ChipLimits
from drivers.transport import Direct, open_link
from firmware_iface import messages as msg
from firmware_iface.bulk import host_raw_rule
from firmware_iface.framing import PROTOCOL_VERSION, Frame, FrameDecoder, encode_frame, frame_crc
from firmware_iface.records import PayloadError
from firmware_iface.spec import REGISTER_BY_NAME, Opcode, PulseKind, ReadMode, Status
from firmware_iface.spikes import decode_output, encode_upload
from firmware_iface.write_verify import PulseSchedule


MAX_WAIT_S = 1e7
"""Longest single WAIT (about 116 days of chip time); longer retention runs chain waits."""


@dataclass
class LinkStats:
    """Traffic counters of one driver (for modelled link time and reliability reports)."""

    round_trips: int = 0
    commands: int = 0
    retries: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    rejected: int = 0
    """Well-formed replies discarded because they did not answer the pending request."""
    sessions: int = 0
    """HELLOs that opened a session (1 + reconnects after a board reset)."""
    bytes_tx: int = 0
    bytes_rx: int = 0
    chip_seconds: float = 0.0
    """Chip busy time reported by the board (pulses, write-verify, runs, waits)."""
    transfers: int = 0
    """Commands sent as bounded transfers (STAGE / COMMIT / FETCH, drivers/bounded.py)."""
    transfer_frames: int = 0
    """Frames (counted in ``commands``) that those transfers took."""
    unsequenced: int = 0
    """Frames (counted in ``commands``) outside the seq rules: bulk pieces (BULK_PUT / BULK_GET)
    and the STATUS closing each pipelined readout round (drivers/bulkmode.py)."""
    bulk_rounds: int = 0
    """Pipelined rounds of bulk pieces (each closed by one STATUS, or by the COMMIT of an upload)."""
    commit_rounds: int = 0
    """Of those, the upload rounds closed by their COMMIT (sent in the same burst as the pieces)."""

    @property
    def operations(self) -> int:
        """Commands as the caller issued them: a bounded transfer counts once."""
        return self.commands - self.transfer_frames + self.transfers

    def modelled_seconds(self, baud: float, latency_s: float) -> float:
        """Wall time this traffic takes on a UART at ``baud`` (8N1) with ``latency_s`` per round trip."""
        return self.round_trips * latency_s + (self.bytes_tx + self.bytes_rx) * 10.0 / baud + self.chip_seconds

    def snapshot(self) -> "LinkStats":
        return LinkStats(**self.__dict__)

    def since(self, before: "LinkStats") -> "LinkStats":
        return LinkStats(**{k: getattr(self, k) - getattr(before, k) for k in self.__dict__})


@dataclass
class WriteVerifyResult:
    """Per-cell write-verify outcome (arrays in target order)."""

    rows: np.ndarray
    cols: np.ndarray
    targets_s: np.ndarray
    g_s: np.ndarray
    pulses: np.ndarray
    success: np.ndarray
    stuck: np.ndarray
    confirm_failed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    chip_seconds: float = 0.0


class PEChip(BoundedTransfers):
    """Driver of one PE-macro board.  Use as a context manager.

    Large transfers (whole-array reads, write-verify batches, uploads, output readouts) go in
    bounded frames when the board supports them (:mod:`drivers.bounded`)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0, retries: int = 5,
                 limits: ChipLimits | None = None, poll_s: float = 0.05) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.limits = limits or ChipLimits()
        self.stats = LinkStats()
        self._lock = threading.RLock()
        self._decoder = FrameDecoder(raw=host_raw_rule)
        self._seq = 0
        self._port = open_link(url, timeout_s=min(poll_s, timeout_s))
        # Transports with a file descriptor (socket://, tty, pty) are read non-blocking after a
        # select(); others (rfc2217://, in-process) are polled with the port's own timeout.
        self._fd: int | None = None
        self._direct: Direct | None = None
        if not _synchronous(self._port):
            try:
                self._fd = self._port.fileno()
                self._port.timeout = 0
            except (AttributeError, OSError, NotImplementedError):
                self._fd = None
            if self._fd is not None:
                self._direct = Direct.of(self._port)
        self._info: msg.ChipInfo | None = None
        self._regs: dict[str, float] = {}
        """Register values (SI) known to be in force: written or read by this driver."""
        self._session = 0
        self.hello: msg.Hello | None = None
        """The board's HELLO reply of the current session."""
        try:
            with self._lock:
                self._open_session()
        except BaseException:
            self.close()
            raise

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._port is not None:
                self._port.close()
                self._port = None

    def __enter__(self) -> "PEChip":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- transaction ---------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _open_session(self) -> None:
        """HELLO with a fresh random session id; the board clears its reply cache."""
        self._session = secrets.randbits(32) or 1
        self._seq = 0xFFFF  # HELLO goes out with seq 0, the first command with seq 1
        hello = self._parse("HELLO", msg.decode_hello, self._exchange(Opcode.HELLO, b"", self.timeout_s))
        if hello.session != self._session or hello.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(f"HELLO reply from {self.url} opened session {hello.session:#x} protocol "
                                f"{hello.protocol_version}, expected {self._session:#x} protocol {PROTOCOL_VERSION}")
        self.hello = hello
        self.stats.sessions += 1

    def _await(self, req: Frame, crc: int, deadline: float) -> Frame | None:
        """The reply to ``req`` (or a BAD_FRAME report), None at the deadline.

        A reply counts only when it is a response with the request's session, seq and opcode
        and echoes the request's CRC-32; other frames are discarded (``stats.rejected``).
        """
        port = self._port
        while True:
            data = self._receive(deadline)
            if data:
                bad_before, foreign_before = self._decoder.errors, self._decoder.foreign
                frames = [f for f in self._decoder.feed(data) if f.is_response]
                if self._decoder.foreign != foreign_before:
                    v = self._decoder.last_foreign.version
                    raise ProtocolError(f"the board at {self.url} speaks protocol version {v}; this host "
                                        f"speaks version {PROTOCOL_VERSION}: update the board firmware "
                                        f"(docs/protocol.md)")
                self.stats.bad_frames += self._decoder.errors - bad_before
                bad = None
                for f in frames:
                    if (f.seq == req.seq and f.opcode == req.opcode and f.session == req.session
                            and f.echo == crc and f.status != Status.BAD_FRAME):
                        return f
                    if f.status == Status.BAD_FRAME and f.echo == 0:
                        bad = f
                    else:
                        self.stats.rejected += 1
                if bad is not None:
                    return bad
                continue
            if time.monotonic() >= deadline or not port.in_waiting and _synchronous(port):
                return None

    def _receive(self, deadline: float) -> bytes:
        """What the link has received, waiting for it until ``deadline`` (monotonic s) at most;
        b"" when nothing came (at once for the in-process simulator: nothing more can come)."""
        port = self._port
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                data = b""
            elif self._direct is not None:
                data = self._direct.read(1 << 20)
            else:
                data = port.read(1 << 20)  # port timeout is 0: what is there
        else:
            data = port.read(max(1, port.in_waiting))
        self.stats.bytes_rx += len(data)
        return data

    def transact(self, opcode: Opcode, payload: bytes = b"", timeout_s: float | None = None) -> bytes:
        """Send one command and return its reply payload.

        Retries the identical frame on a timeout or a corrupted frame; follows BUSY by polling
        STATUS until ``timeout_s`` (the command's deadline); re-opens the session (up to ``retries``
        times) when the board reports NO_SESSION.
        """
        if self._port is None:
            raise ProtocolError(f"link {self.url} is closed")
        timeout = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if self._session == 0:
                self._open_session()
            return self._exchange(opcode, payload, timeout)

    def _send(self, opcode: Opcode, wire: bytes, req: Frame, crc: int, timeout: float) -> Frame | None:
        self.stats.round_trips += 1
        self.stats.bytes_tx += len(wire)
        try:
            self._port.write(wire)
            return self._await(req, crc, time.monotonic() + timeout)
        except (OSError, SerialException) as exc:  # link lost (socket closed, device gone)
            raise LinkError(f"link {self.url} failed during {opcode.name}: "
                            f"{' '.join(str(exc).split())}") from None

    def _exchange(self, opcode: Opcode, payload: bytes, timeout: float, reopened: int = 0) -> bytes:
        req = Frame(int(opcode), self._next_seq(), payload, session=self._session)
        wire, crc = encode_frame(req), frame_crc(req)
        self.stats.commands += 1
        deadline = time.monotonic() + timeout
        last = "no reply"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            rejected, corrupted = self.stats.rejected, self.stats.bad_frames
            reply = self._send(opcode, wire, req, crc, timeout)
            if reply is None:
                self.stats.timeouts += 1
                last = (f"no reply within {timeout:g} s" if self.stats.rejected == rejected else
                        "only replies that do not answer this request arrived (session, seq, opcode or "
                        "echo differ: a board replaying another request's reply?)")
                if self.stats.bad_frames != corrupted:  # bytes came back, but not as a valid frame
                    last = "the reply arrived corrupted (CRC/COBS check failed)"
                continue
            if reply.status == Status.BAD_FRAME:
                last = "board received a corrupted frame"
                continue
            if reply.status == Status.BUSY:
                reply = self._follow_busy(opcode, wire, req, crc, deadline, timeout)
            if reply.status == Status.NO_SESSION and opcode != Opcode.HELLO and reopened < self.retries:
                # the board lost our session (reset): it did not execute this frame
                self.stats.commands -= 1
                self.stats.retries += 1
                self._open_session()
                return self._exchange(opcode, payload, timeout, reopened + 1)
            if reply.status != Status.OK:
                name = Status(reply.status).name if reply.status in Status._value2member_map_ else "UNKNOWN"
                raise ChipError(reply.status, name, reply.payload.decode("utf-8", "replace"))
            return reply.payload
        err = ChipTimeout if last.startswith("no reply") else ProtocolError
        raise err(f"{opcode.name} to {self.url} failed after {self.retries + 1} attempts: {last}")

    def _follow_busy(self, opcode: Opcode, wire: bytes, req: Frame, crc: int, deadline: float,
                     timeout: float) -> Frame:
        """BUSY: poll STATUS with back-off until idle, then resend the identical frame (the board
        answers from its reply cache); bounded by the command's deadline."""
        delay = 0.005
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChipTimeout(f"{opcode.name} to {self.url}: board still BUSY after {timeout:g} s "
                                  f"(the command's deadline)")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.25)
            state = msg.decode_status(self._exchange(Opcode.STATUS, b"", min(self.timeout_s, max(left, 0.05))))
            if state["state"] == 1 and time.monotonic() < deadline:
                continue
            reply = None
            for _ in range(self.retries + 1):
                reply = self._send(opcode, wire, req, crc, min(self.timeout_s, max(left, 0.05)))
                if reply is not None and reply.status != Status.BAD_FRAME:
                    break
                self.stats.retries += 1
            if reply is None or reply.status == Status.BAD_FRAME:
                raise ChipTimeout(f"{opcode.name} to {self.url}: no reply after the board left BUSY")
            if reply.status != Status.BUSY:
                return reply

    def _parse(self, what: str, fn, payload: bytes):
        try:
            return fn(payload)
        except (PayloadError, ValueError) as exc:
            raise ProtocolError(f"{what} reply malformed: {exc}") from None

    # --- identity and registers ------------------------------------------------------------
    def ping(self, payload: bytes = b"ping") -> bytes:
        echo = self.transact(Opcode.PING, payload)
        if echo != payload:
            raise ProtocolError("PING echo differs from what was sent")
        return echo

    def info(self, refresh: bool = False) -> msg.ChipInfo:
        """Chip identity and limits (cached)."""
        if self._info is None or refresh:
            self._info = self._parse("GET_INFO", msg.decode_info, self.transact(Opcode.GET_INFO))
            self._board_limits = None
            self.board_limits()  # the limits come with the identity (GET_LIMITS, BOUNDED boards)
        return self._info

    def read_register(self, name: str) -> float:
        """Register value in SI units (see ``firmware_iface.spec.REGISTERS``)."""
        reg = self._register(name)
        reg_id, code = self._parse("REG_READ", msg.decode_reg, self.transact(Opcode.REG_READ, msg.encode_reg(reg.id)))
        if reg_id != reg.id:
            raise ProtocolError(f"REG_READ of {reg.name} answered for register 0x{reg_id:02x}")
        self._regs[reg.name] = reg.to_si(code)
        return self._regs[reg.name]

    def write_register(self, name: str, value: float) -> float:
        """Set a register (SI units); returns the value in force after the DAC's rounding."""
        reg = self._register(name)
        if not reg.writable:
            raise ChipError(int(Status.OUT_OF_RANGE), "OUT_OF_RANGE", f"register {name} is read-only")
        lim = {"V_READ": "v_read_max_v", "V_SPIKE": "v_spike_max_v"}.get(name)
        if lim:
            self.limits.check(f"register {name}", value, lim, low=1e-3)
        if name == "TIME_STEP":
            self.limits.check("time step", value, "dt_max_s", low=self.limits.dt_min_s)
        code = reg.to_code(value)
        if not (np.isfinite(value) and reg.min_code <= code <= reg.max_code):
            raise LimitError(f"register {name} = {value!r} {reg.unit} is outside its range "
                             f"[{reg.to_si(reg.min_code):g}, {reg.to_si(reg.max_code):g}] {reg.unit}; nothing was sent")
        reg_id, code = self._parse("REG_WRITE", msg.decode_reg,
                                   self.transact(Opcode.REG_WRITE, msg.encode_reg(reg.id, code)))
        if reg_id != reg.id:
            raise ProtocolError(f"REG_WRITE of {reg.name} answered for register 0x{reg_id:02x}")
        self._regs[reg.name] = reg.to_si(code)
        return self._regs[reg.name]

    @staticmethod
    def _register(name: str):
        try:
            return REGISTER_BY_NAME[name.upper()]
        except KeyError:
            raise ValueError(f"unknown register {name!r} (known: {', '.join(REGISTER_BY_NAME)})") from None

    # --- array access --------------------------------------------------------------------
    def _read(self, req: msg.ReadRequest, n_cells: int) -> np.ndarray:
        g = self._parse("READ_CELLS", msg.decode_conductances,
                        self.call(Opcode.READ_CELLS, msg.encode_read(req), reply_bytes=4 * n_cells))
        if g.size != n_cells:
            raise ProtocolError(f"READ_CELLS reply holds {g.size} conductances, {n_cells} were asked for")
        return g

    def _read_args(self, v_read_v: float, averages: int) -> tuple[int, int]:
        self.limits.check("read voltage", v_read_v, "v_read_max_v", low=1e-3)
        if not 1 <= averages <= 0xFFFF:
            raise ValueError(f"averages must be in [1, 65535], got {averages}")
        return int(round(v_read_v * 1e6)), int(averages)

    def read_cells(self, rows: np.ndarray, cols: np.ndarray, v_read_v: float = 0.2,
                   averages: int = 1) -> np.ndarray:
        """Conductances (S) of the listed cells, in order."""
        uv, avg = self._read_args(v_read_v, averages)
        rows, cols = np.asarray(rows, dtype=np.int64).ravel(), np.asarray(cols, dtype=np.int64).ravel()
        info = self.info()
        if rows.size and (rows.min() < 0 or rows.max() >= info.rows or cols.min() < 0 or cols.max() >= info.columns):
            raise ValueError(f"cell address outside the {info.rows}x{info.columns} array")
        out = np.empty(rows.size)
        lim = self.board_limits()
        chunk = max(1, (info.max_payload - 64) // 4)
        if lim is not None:
            chunk = min(chunk, lim.max_read_cells)
        for i in range(0, rows.size, chunk):
            r, c = rows[i:i + chunk], cols[i:i + chunk]
            out[i:i + chunk] = self._read(msg.ReadRequest(ReadMode.LIST, uv, avg, 0, r, c), r.size)
        return out

    def read_row(self, row: int, v_read_v: float = 0.2, averages: int = 1) -> np.ndarray:
        uv, avg = self._read_args(v_read_v, averages)
        if not 0 <= row < self.info().rows:
            raise ValueError(f"row {row} outside the array")
        return self._read(msg.ReadRequest(ReadMode.ROW, uv, avg, row), self.info().columns)

    def read_array(self, v_read_v: float = 0.2, averages: int = 1) -> np.ndarray:
        """Conductance map (rows, columns) in siemens."""
        uv, avg = self._read_args(v_read_v, averages)
        info = self.info()
        return self._read(msg.ReadRequest(ReadMode.ARRAY, uv, avg), info.rows * info.columns).reshape(
            info.rows, info.columns)

    def _check_pulses(self, kind, v_bl, v_wl, v_sl, width) -> None:
        is_set = np.asarray(kind) == PulseKind.SET
        self.limits.check_max("SET bit-line voltage", np.asarray(v_bl)[is_set], "v_set_max_v")
        self.limits.check_max("RESET source-line voltage", np.asarray(v_sl)[~is_set], "v_reset_max_v")
        self.limits.check_max("word-line voltage", v_wl, "v_wl_max_v")
        self.limits.check_max("bit-line voltage", v_bl, "v_set_max_v")
        self.limits.check_max("source-line voltage", v_sl, "v_reset_max_v")
        self.limits.check_max("pulse width", width, "pulse_width_max_s", low=self.limits.pulse_width_min_s)

    def pulse(self, kind, rows, cols, v_bl_v, v_wl_v, v_sl_v, width_s) -> float:
        """Apply programming pulses in order (arrays or scalars); returns chip seconds taken.

        ``kind``: ``PulseKind.SET`` (1) or ``PulseKind.RESET`` (2).
        """
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        n = rows.size
        b = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (n,))  # noqa: E731
        kind = np.broadcast_to(np.asarray(kind, dtype=np.uint8), (n,))
        v_bl, v_wl, v_sl, width = b(v_bl_v), b(v_wl_v), b(v_sl_v), b(width_s)
        if not np.all((kind == PulseKind.SET) | (kind == PulseKind.RESET)):
            raise ValueError("pulse kind must be PulseKind.SET or PulseKind.RESET")
        self._check_pulses(kind, v_bl, v_wl, v_sl, width)
        p = msg.pulse_records(kind, rows, np.broadcast_to(np.asarray(cols, dtype=np.int64), (n,)),
                              v_bl, v_wl, v_sl, width)
        per_frame = max(1, (self.info().max_payload - 64) // p.itemsize)
        lim = self.board_limits()
        if lim is not None:
            per_frame = min(per_frame, lim.max_pulse_records)
        total = 0.0
        for i in range(0, n, per_frame):
            reply = self.call(Opcode.PULSE, msg.encode_pulses(p[i:i + per_frame]))
            _, ns, _ = self._parse("PULSE", msg.decode_done, reply)
            total += ns * 1e-9
        self.stats.chip_seconds += total
        return total

    def check_schedule(self, schedule: PulseSchedule) -> None:
        """Refuse a write-verify schedule that could exceed the station limits."""
        lim = self.limits
        lim.check("schedule SET maximum voltage", schedule.set_max_v, "v_set_max_v")
        lim.check("schedule RESET maximum voltage", schedule.reset_max_v, "v_reset_max_v")
        lim.check("schedule SET word-line voltage", schedule.set_wl_v, "v_wl_max_v")
        lim.check("schedule RESET word-line voltage", schedule.reset_wl_v, "v_wl_max_v")
        lim.check("schedule read voltage", schedule.v_read_v, "v_read_max_v")
        lim.check("schedule pulse width", schedule.width_s, "pulse_width_max_s", low=lim.pulse_width_min_s)
        if schedule.max_pulses > lim.max_pulses_per_cell:
            raise LimitError(f"schedule max_pulses = {schedule.max_pulses} exceeds the station limit "
                                   f"max_pulses_per_cell = {lim.max_pulses_per_cell}; nothing was sent")
        board = self.board_limits()  # the station cannot allow more than the board advertises
        if board is not None and schedule.max_pulses > board.max_pulses:
            raise LimitError(f"schedule max_pulses = {schedule.max_pulses} exceeds the board's max_pulses = "
                             f"{board.max_pulses} (GET_LIMITS); nothing was sent")
        if board is not None and schedule.read_averages > board.max_averages:
            raise LimitError(f"schedule read_averages = {schedule.read_averages} exceeds the board's "
                             f"max_averages = {board.max_averages} (GET_LIMITS); nothing was sent")

    def write_verify(self, rows, cols, targets_s, schedule: PulseSchedule,
                     batch: int = 1024) -> WriteVerifyResult:
        """On-board write-verify: one round trip per batch of cells."""
        self.check_schedule(schedule)
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        targets = np.asarray(targets_s, dtype=np.float64).ravel()
        if not (rows.size == cols.size == targets.size):
            raise ValueError("rows, cols and targets must have the same length")
        if not np.all(np.isfinite(targets)) or targets.size and (targets.min() < 0):
            raise ValueError("write-verify targets must be finite conductances >= 0 S")
        res = np.zeros(rows.size, dtype=[("flags", "u1"), ("pulses", "<u2"), ("g_s", "<f4")])
        chip_s = 0.0
        board = self.board_limits()
        if board is not None:
            batch = max(1, min(batch, board.max_wv_cells))
        for i in range(0, rows.size, batch):
            sl = slice(i, i + batch)
            payload = msg.encode_write_verify(schedule, rows[sl], cols[sl], targets[sl])
            # Board-side jobs take chip time: allow for the worst case on top of the link timeout.
            worst = schedule.max_pulses * (schedule.width_s + 2e-6 * schedule.read_averages) * 4
            reply = self.call(Opcode.WRITE_VERIFY, payload, timeout_s=self.timeout_s + worst + 5.0,
                              reply_bytes=16 + 12 * rows[sl].size)
            arr, ns = self._parse("WRITE_VERIFY", msg.decode_cell_results, reply)
            if arr.size != rows[sl].size or np.any(arr["row"] != rows[sl]) or np.any(arr["col"] != cols[sl]):
                raise ProtocolError("WRITE_VERIFY reply does not match the requested cells")
            res["flags"][sl], res["pulses"][sl], res["g_s"][sl] = arr["flags"], arr["pulses"], arr["g_s"]
            chip_s += ns * 1e-9
        self.stats.chip_seconds += chip_s
        f = res["flags"]
        return WriteVerifyResult(rows=rows, cols=cols, targets_s=targets, g_s=res["g_s"].astype(np.float64),
                                 pulses=res["pulses"].astype(np.int64), success=(f & 1) > 0,
                                 stuck=(f & 2) > 0, confirm_failed=(f & 4) > 0, chip_seconds=chip_s)

    # --- inference ---------------------------------------------------------------------
    def upload_spikes(self, spikes: np.ndarray, slot: int = 0, encoding: str = "auto") -> int:
        """Store spike trains (n, steps, rows) bool in board memory from ``slot``; returns bytes sent."""
        spikes = np.asarray(spikes, dtype=bool)
        info = self.info()
        if spikes.ndim != 3 or spikes.shape[2] != info.rows:
            raise ValueError(f"spikes must have shape (n, steps, {info.rows}), got {spikes.shape}")
        if spikes.shape[1] > info.max_steps:
            raise ValueError(f"{spikes.shape[1]} steps exceed the board's {info.max_steps}")
        per_sample = (spikes.shape[1] * spikes.shape[2] + 7) // 8 + 16
        per_frame = max(1, (info.max_payload - 64) // per_sample)
        sent = 0
        for i in range(0, spikes.shape[0], per_frame):
            payload = encode_upload(spikes[i:i + per_frame], slot=slot + i, choose=encoding)
            self.call(Opcode.UPLOAD_SPIKES, payload)
            sent += len(payload)
        return sent

    def check_run_registers(self) -> None:
        """Refuse to run unless the spike voltage and time step in force are within the
        station limits (they may have been left by an earlier session: read them once)."""
        for name, check in (("V_SPIKE", lambda v: self.limits.check(
                                 "input spike voltage in force (register V_SPIKE)", v, "v_spike_max_v")),
                            ("TIME_STEP", lambda v: self.limits.check(
                                 "time step in force (register TIME_STEP)", v, "dt_max_s",
                                 low=self.limits.dt_min_s))):
            value = self._regs.get(name)
            if value is None:
                value = self.read_register(name)
            check(value)

    def run(self, n: int, slot: int = 0) -> float:
        """Run ``n`` stored samples back to back; returns the chip seconds it took.

        The spike voltage and time step in force are checked against the station limits first.
        """
        self.check_run_registers()
        info = self.info()
        timeout = self.timeout_s + 1e-3 * n + 5.0  # host-side simulation or board run time
        _, ns, _ = self._parse("RUN", msg.decode_done, self.transact(Opcode.RUN, msg.encode_run(slot, n), timeout))
        self.stats.chip_seconds += ns * 1e-9
        return ns * 1e-9

    def read_outputs(self, n: int, slot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Output (counts (n, neurons), spikes (n, steps, neurons) bool) of stored results."""
        info = self.info()
        reply = self.call(Opcode.READ_OUTPUT, msg.encode_run(slot, n),
                          reply_bytes=12 + n * info.neurons * (2 + 4 * info.max_steps))
        return self._parse("READ_OUTPUT", lambda p: decode_output(p, n_expected=n, max_steps=info.max_steps,
                                                                  max_neurons=info.neurons), reply)

    def infer(self, spikes: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Upload, run and read back in chunks that fit board memory: output spikes (n, steps, neurons)."""
        spikes = np.asarray(spikes, dtype=bool)
        outs = []
        slots = min(chunk, self.info().sample_slots)
        for i in range(0, spikes.shape[0], slots):
            part = spikes[i:i + slots]
            self.upload_spikes(part, slot=0)
            self.run(part.shape[0], slot=0)
            outs.append(self.read_outputs(part.shape[0], slot=0)[1])
        return np.concatenate(outs) if outs else np.zeros((0, spikes.shape[1], self.info().neurons), bool)

    # --- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, int]:
        return self._parse("STATUS", msg.decode_status, self.transact(Opcode.STATUS))

    def wait(self, seconds: float) -> float:
        """Let ``seconds`` of chip time pass on the board (retention); returns chip seconds."""
        if not np.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT_S:
            raise ValueError(f"wait must be a duration in [0, {MAX_WAIT_S:g}] s, got {seconds!r}")
        ns = int(round(seconds * 1e9))
        reply = self.transact(Opcode.WAIT, msg.encode_wait(ns), timeout_s=self.timeout_s + seconds)
        _, done_ns, _ = self._parse("WAIT", msg.decode_done, reply)
        self.stats.chip_seconds += done_ns * 1e-9
        return done_ns * 1e-9

    def reset(self) -> None:
        """Soft reset: registers to defaults, board sample memory cleared."""
        self.transact(Opcode.RESET)
        self._info = None
        self._regs.clear()

    def sim_query(self, name: str):
        """Simulator introspection (virtual boards only; a real board answers UNSUPPORTED)."""
        return json.loads(self.call(Opcode.SIM_QUERY, name.encode(), reply_bytes=1 << 20).decode())


def _synchronous(port) -> bool:
    """True for transports that answer inside write() (the in-process simulator)."""
    return getattr(port, "synchronous", False)

