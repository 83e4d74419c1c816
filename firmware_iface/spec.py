"""Single source of truth for the host<->FPGA protocol: opcodes, status codes, registers
and the binary layout of every payload record.

Everything here is data: ``firmware_iface.messages`` encodes/decodes with it,
``firmware_iface.gendoc`` generates ``docs/protocol.md`` and ``include/pe_protocol.h``
from it.  All multi-byte fields are little-endian; records are packed (no padding other
than the explicit ``_pad`` fields).  Measured conductances travel as float32 siemens; write-verify targets and
tolerances as integer nano-siemens (compared exactly on both sides).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

import numpy as np


class Opcode(IntEnum):
    """Command opcodes (request and its reply share the opcode)."""

    PING = 0x01
    GET_INFO = 0x02
    REG_READ = 0x03
    REG_WRITE = 0x04
    READ_CELLS = 0x10
    PULSE = 0x11
    WRITE_VERIFY = 0x12
    UPLOAD_SPIKES = 0x20
    RUN = 0x21
    READ_OUTPUT = 0x22
    STATUS = 0x30
    RESET = 0x31
    WAIT = 0x32
    HELLO = 0x40
    STAGE = 0x50
    COMMIT = 0x51
    FETCH = 0x52
    GET_LIMITS = 0x53
    BULK_PUT = 0x70
    BULK_GET = 0x71
    SIM_QUERY = 0xF0


OPCODE_DOC: dict[Opcode, tuple[str, str, str]] = {
    Opcode.PING: ("Liveness check; echoes the payload.", "any bytes (<= 256)", "the same bytes"),
    Opcode.GET_INFO: ("Chip and firmware identity and limits.", "empty", "INFO record, then `levels` x f32 conductance levels (S)"),
    Opcode.REG_READ: ("Read one bias/DAC register.", "REG record (code ignored)", "REG record"),
    Opcode.REG_WRITE: ("Write one bias/DAC register (checked against its range).", "REG record", "REG record (value now in force)"),
    Opcode.READ_CELLS: ("Read conductances: a list of cells, one row, or the whole array.", "READ_REQ record, then `count` x CELL records (mode LIST)", "`n` x f32 conductance (S), in request order / row-major"),
    Opcode.PULSE: ("Apply programming pulses in order (one cell or a batch).", "COUNT record, then `count` x PULSE records", "DONE record"),
    Opcode.WRITE_VERIFY: ("On-board incremental-step write-verify of a batch of cells.", "SCHEDULE record, COUNT record, then `count` x TARGET records", "DONE record, then `count` x CELL_RESULT records"),
    Opcode.UPLOAD_SPIKES: ("Store input spike trains in board memory, per sample dense bitmap or AER.", "UPLOAD record, then `n` x (SAMPLE record + data)", "COUNT record (samples stored)"),
    Opcode.RUN: ("Run `n` stored samples back to back through the PE macro.", "RUN record", "DONE record"),
    Opcode.READ_OUTPUT: ("Read per-neuron output spikes of stored results.", "RUN record", "OUTPUT record, then n x neurons x u16 counts, then events x u32 (step << 8 | neuron)"),
    Opcode.STATUS: ("Board state and counters.", "empty", "STATUS record"),
    Opcode.RESET: ("Soft reset: registers to defaults, sample memory cleared (array contents are non-volatile).", "empty", "empty"),
    Opcode.WAIT: ("Let chip time pass on the board (retention experiments).", "WAIT record", "DONE record"),
    Opcode.HELLO: ("Open a session: the header's `session` (non-zero, random) becomes the board's current session; the reply cache is cleared.", "empty (session id and protocol version are in the header)", "HELLO record (the board's identity and limits)"),
    Opcode.STAGE: ("Bounded frames: one piece of a large request, stored at `offset` of the staging buffer of transfer `id`.", "STAGE record, then the piece (<= LIMITS.max_chunk bytes)", "COUNT record (bytes of transfer `id` received so far)"),
    Opcode.COMMIT: ("Bounded frames: execute the staged request of transfer `id` as `opcode` (at most once per id); its reply is kept for FETCH.", "COMMIT record", "RESULT record, then the first min(`length`, LIMITS.max_chunk) bytes of the kept reply payload"),
    Opcode.FETCH: ("Bounded frames: a piece of the kept reply of transfer `id`.", "FETCH record", "`length` bytes of the kept reply payload from `offset`"),
    Opcode.GET_LIMITS: ("Every limit the board enforces (OUT_OF_RANGE / NO_MEMORY before any work).", "empty", "LIMITS record"),
    Opcode.BULK_PUT: ("Bulk mode: a piece of a large request sent unstuffed -- the BULK record in the frame, then `nbytes` raw bytes after the frame's 0x00, then 0x00 -- stored at `offset` of transfer `id`'s staging buffer. Not sequenced (executed every time, never cached).", "BULK record (`id`, target `opcode`, `total`, `offset`, `nbytes`, `crc`); `nbytes` raw bytes and a 0x00 follow the frame", "COUNT record (bytes of transfer `id` received so far); DATA_CRC when the raw bytes failed `crc`"),
    Opcode.BULK_GET: ("Bulk mode: a piece of the kept reply of transfer `id`, sent unstuffed. Not sequenced (executed every time, never cached).", "FETCH record (`length` <= LIMITS.max_payload)", "BULK record (`id`, `opcode` 0, `total` = kept reply length, `offset`, `nbytes` = `length`, `crc`); `nbytes` raw bytes and a 0x00 follow the frame"),
    Opcode.SIM_QUERY: ("Simulator introspection (virtual firmware only; real boards answer UNSUPPORTED).", "UTF-8 query name", "UTF-8 JSON"),
}


class Status(IntEnum):
    """Reply status codes."""

    OK = 0
    BAD_FRAME = 1
    UNKNOWN_OPCODE = 2
    BAD_PAYLOAD = 3
    OUT_OF_RANGE = 4
    BUSY = 5
    NO_MEMORY = 6
    NOT_READY = 7
    UNSUPPORTED = 8
    INTERNAL = 9
    SEQ_REUSED = 0x20
    NO_SESSION = 0x21
    BAD_VERSION = 0x22
    STALE_SEQ = 0x23
    DATA_CRC = 0x30


STATUS_DOC: dict[Status, str] = {
    Status.OK: "command executed",
    Status.BAD_FRAME: "frame failed CRC/COBS/length checks; host should resend (seq unchanged)",
    Status.UNKNOWN_OPCODE: "opcode not implemented by this firmware",
    Status.BAD_PAYLOAD: "payload size or field layout wrong",
    Status.OUT_OF_RANGE: "a field is outside the firmware's range (register, voltage, width, address)",
    Status.BUSY: "a job is still running",
    Status.NO_MEMORY: "sample memory or buffer exhausted",
    Status.NOT_READY: "requested results do not exist (e.g. READ_OUTPUT before RUN)",
    Status.UNSUPPORTED: "valid request this board cannot serve",
    Status.INTERNAL: "firmware fault",
    Status.SEQ_REUSED: "the seq of the cached reply arrived with a different frame (not a retry); nothing executed",
    Status.NO_SESSION: "the header's session is not the board's current session (or none is open): send HELLO; nothing executed",
    Status.BAD_VERSION: "the frame's version byte is not this board's protocol version; payload: u8 version the board speaks",
    Status.STALE_SEQ: "seq is older than the most recent one of this session (a late duplicate); nothing executed",
    Status.DATA_CRC: "the raw bytes after a BULK_PUT frame failed their CRC-32 or stopped for RAW_IDLE_S; nothing stored; resend the piece",
}


class Capability(IntFlag):
    """Bits of INFO.capabilities."""

    WRITE_VERIFY = 0x01
    DENSE_UPLOAD = 0x02
    AER_UPLOAD = 0x04
    PARTIAL_SUM = 0x08
    BOUNDED = 0x10
    """STAGE / COMMIT / FETCH / GET_LIMITS: large transfers in frames of at most LIMITS.max_chunk bytes."""
    BULK = 0x20
    """BULK_PUT / BULK_GET: pieces of a bounded transfer as raw (unstuffed) bytes after a CRC-checked frame."""
    SIMULATED = 0x80


class PulseKind(IntEnum):
    SET = 1
    RESET = 2


class ReadMode(IntEnum):
    LIST = 0
    ROW = 1
    ARRAY = 2


class Encoding(IntEnum):
    DENSE = 0
    AER = 1


class CellFlag(IntFlag):
    SUCCESS = 0x01
    STUCK = 0x02
    CONFIRM_FAILED = 0x04


class ScheduleFlag(IntFlag):
    CONFIRM_READ = 0x01


@dataclass(frozen=True)
class Register:
    """A bias/DAC register: value_SI = code * scale."""

    id: int
    name: str
    unit: str
    scale: float
    min_code: int
    max_code: int
    default_code: int
    doc: str
    writable: bool = True

    def to_si(self, code: int) -> float:
        return code * self.scale

    def to_code(self, value: float) -> int:
        return int(round(value / self.scale))


REGISTERS: tuple[Register, ...] = (
    Register(0x01, "V_READ", "V", 1e-6, 50_000, 1_000_000, 200_000, "read voltage (uV code)"),
    Register(0x02, "V_SPIKE", "V", 1e-6, 50_000, 1_000_000, 200_000, "input spike (inference) voltage (uV code)"),
    Register(0x03, "TIME_STEP", "s", 1e-9, 10, 10_000_000, 100, "chip time step dt (ns code)"),
    Register(0x04, "THRESHOLD", "1", 1e-3, 100, 10_000, 1_000, "neuron threshold bias, normalised (milli code)"),
    Register(0x05, "TAU", "steps", 1e-3, 1_000, 100_000, 10_000, "PSP time constant in steps (milli code)"),
    Register(0x06, "REFRACTORY", "1", 1e-3, 0, 50_000, 10_000, "refractory kernel amplitude / threshold (milli code)"),
    Register(0x07, "G_UNIT", "S", 1e-9, 1_000, 150_000, 50_000, "TIA gain: differential conductance per normalised input unit (nS code)"),
    Register(0x08, "N_STEPS", "steps", 1.0, 1, 4_096, 300, "steps per sample"),
    Register(0x09, "PE_SELECT", "1", 1.0, 0, 0, 0, "PE macro addressed by array commands"),
    Register(0x0A, "LATENCY", "s", 1e-9, 0, 1_000_000, 14_310, "circuit latency per sample (ns code)", writable=False),
    Register(0x10, "TRIG_MODE", "1", 1.0, 0, 2, 0,
             "trigger output line for the SMUs: 0 off, 1 one pulse at RUN start, 2 a pulse at each sample's start"),
)
REGISTER_BY_NAME = {r.name: r for r in REGISTERS}
REGISTER_BY_ID = {r.id: r for r in REGISTERS}

# --- payload records -------------------------------------------------------------------
RECORDS: dict[str, np.dtype] = {
    "INFO": np.dtype([
        ("chip_id", "<u8"), ("fw_major", "u1"), ("fw_minor", "u1"), ("fw_patch", "u1"),
        ("protocol", "u1"), ("rows", "<u2"), ("columns", "<u2"), ("neurons", "<u2"), ("pes", "<u2"),
        ("levels", "<u2"), ("max_steps", "<u2"), ("dt_min_ns", "<u4"), ("dt_max_ns", "<u4"),
        ("latency_ns", "<u4"), ("sample_slots", "<u4"), ("max_payload", "<u4"), ("capabilities", "<u4"),
    ]),
    "REG": np.dtype([("reg", "<u2"), ("_pad", "<u2"), ("code", "<u4")]),
    "READ_REQ": np.dtype([("v_read_uv", "<u4"), ("averages", "<u2"), ("mode", "u1"), ("row", "u1"),
                          ("count", "<u4")]),
    "CELL": np.dtype([("row", "u1"), ("col", "u1")]),
    "COUNT": np.dtype([("count", "<u4")]),
    "PULSE": np.dtype([("kind", "u1"), ("row", "u1"), ("col", "u1"), ("_pad", "u1"),
                       ("v_bl_mv", "<u2"), ("v_wl_mv", "<u2"), ("v_sl_mv", "<u2"), ("_pad2", "<u2"),
                       ("width_ns", "<u4")]),
    "DONE": np.dtype([("count", "<u4"), ("_pad", "<u4"), ("chip_ns", "<u8")]),
    "SCHEDULE": np.dtype([
        ("set_start_mv", "<u2"), ("set_step_mv", "<u2"), ("set_max_mv", "<u2"), ("set_wl_mv", "<u2"),
        ("reset_start_mv", "<u2"), ("reset_step_mv", "<u2"), ("reset_max_mv", "<u2"), ("reset_wl_mv", "<u2"),
        ("width_ns", "<u4"), ("v_read_uv", "<u4"), ("tolerance_ns", "<u4"), ("max_pulses", "<u2"),
        ("read_averages", "<u2"), ("flags", "<u2"), ("_pad", "<u2"),
    ]),
    "TARGET": np.dtype([("row", "u1"), ("col", "u1"), ("_pad", "<u2"), ("target_ns", "<u4")]),
    "CELL_RESULT": np.dtype([("row", "u1"), ("col", "u1"), ("flags", "u1"), ("_pad", "u1"),
                             ("pulses", "<u2"), ("_pad2", "<u2"), ("g_s", "<f4")]),
    "UPLOAD": np.dtype([("slot", "<u4"), ("n", "<u4"), ("steps", "<u2"), ("rows", "<u2")]),
    "SAMPLE": np.dtype([("encoding", "u1"), ("_pad", "u1", (3,)), ("nbytes", "<u4")]),
    "RUN": np.dtype([("slot", "<u4"), ("n", "<u4")]),
    "OUTPUT": np.dtype([("n", "<u4"), ("neurons", "<u2"), ("steps", "<u2"), ("events", "<u4")]),
    "STATUS": np.dtype([("state", "u1"), ("last_error", "u1"), ("_pad", "<u2"), ("chip_ns", "<u8"),
                        ("frames_rx", "<u4"), ("bad_frames", "<u4"), ("duplicates", "<u4"),
                        ("samples_stored", "<u4"), ("outputs_ready", "<u4"), ("_pad2", "<u4")]),
    "WAIT": np.dtype([("duration_ns", "<u8")]),
    "STAGE": np.dtype([("id", "<u4"), ("opcode", "u1"), ("_pad", "u1"), ("_pad2", "<u2"), ("total", "<u4"),
                       ("offset", "<u4")]),
    "COMMIT": np.dtype([("id", "<u4"), ("opcode", "u1"), ("_pad", "u1"), ("_pad2", "<u2"), ("total", "<u4")]),
    "RESULT": np.dtype([("id", "<u4"), ("status", "u1"), ("_pad", "u1"), ("_pad2", "<u2"), ("length", "<u4")]),
    "FETCH": np.dtype([("id", "<u4"), ("offset", "<u4"), ("length", "<u4")]),
    "BULK": np.dtype([("id", "<u4"), ("opcode", "u1"), ("_pad", "u1"), ("_pad2", "<u2"), ("total", "<u4"),
                      ("offset", "<u4"), ("nbytes", "<u4"), ("crc", "<u4")]),
    "LIMITS": np.dtype([
        ("max_chunk", "<u4"), ("max_payload", "<u4"), ("max_steps", "<u2"), ("max_pulses", "<u2"),
        ("sample_slots", "<u4"), ("sample_memory_bits", "<u8"), ("max_pulse_records", "<u4"),
        ("max_wv_cells", "<u4"), ("max_read_cells", "<u4"), ("max_averages", "<u2"), ("_pad", "<u2"),
        ("max_wait_ns", "<u8"), ("max_chip_ns", "<u8"), ("memory_bytes", "<u8"),
    ]),
    "HELLO": np.dtype([
        ("protocol", "u1"), ("fw_major", "u1"), ("fw_minor", "u1"), ("fw_patch", "u1"),
        ("session", "<u4"), ("max_payload", "<u4"), ("max_frame", "<u4"), ("v_max_mv", "<u2"),
        ("_pad", "<u2"), ("width_max_ns", "<u4"), ("capabilities", "<u4"),
    ]),
}
RECORD_DOC: dict[str, str] = {
    "INFO": "GET_INFO reply header; followed by `levels` x f32 conductance levels in siemens",
    "REG": "register id and raw code (value = code x scale, see the register table)",
    "READ_REQ": "read request; mode 0 = LIST (then `count` CELL records), 1 = ROW (`row`), 2 = ARRAY",
    "CELL": "cell address",
    "COUNT": "a count of the records that follow (or were processed)",
    "PULSE": "one programming pulse; kind 1 = SET (BL driven), 2 = RESET (SL driven)",
    "DONE": "completion: items processed and chip time the command took (ns)",
    "SCHEDULE": "incremental-step pulse schedule shared by host- and board-side write-verify",
    "TARGET": "write-verify target conductance in integer nano-siemens (nS)",
    "CELL_RESULT": "write-verify per-cell result; flags bit0 success, bit1 stuck, bit2 confirm failed",
    "UPLOAD": "spike upload header: first slot, number of samples, steps and rows per sample",
    "SAMPLE": "per-sample header: encoding 0 = dense bitmap (steps x rows bits, LSB first), 1 = AER (u32 step << 8 | row)",
    "RUN": "first slot and number of samples",
    "OUTPUT": "output readout header",
    "STATUS": "board state (0 idle, 1 busy, 2 error) and counters",
    "WAIT": "duration to wait in chip time (ns)",
    "STAGE": "bounded frames: transfer id (host-chosen, non-zero), the opcode it will run as, the request's total size and this piece's offset (bytes)",
    "COMMIT": "bounded frames: run transfer `id` (all `total` bytes staged) as `opcode`",
    "RESULT": "bounded frames: status of the committed command and the length of its kept reply payload (bytes)",
    "FETCH": "bounded frames: `length` (<= max_chunk) bytes of transfer `id`'s kept reply from `offset`",
    "BULK": "bulk mode: transfer id, target opcode (0 in a BULK_GET reply), the transfer's total size, this piece's offset and size, and the CRC-32 (zlib/IEEE) of the `nbytes` raw bytes that follow the frame (bytes)",
    "LIMITS": "every limit the board enforces: frame piece and payload sizes (bytes), steps per sample, write-verify pulses per cell, sample slots and sample memory (bits), pulse records per PULSE, cells per WRITE_VERIFY and per READ_CELLS, read averages, longest WAIT and chip clock (ns), and the bound on the firmware's own memory (bytes)",
    "HELLO": "HELLO reply: protocol version, firmware version, the session now open, the largest payload and wire frame (bytes) the board accepts, its absolute maximum line voltage (mV) and pulse width (ns), capabilities",
}

FW_VERSION = (2, 0, 0)
MAX_PING = 256
