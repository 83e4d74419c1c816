"""Typed payloads for each opcode: build request payloads and parse reply payloads.

Both sides use these functions (the driver to build requests / parse replies, the firmware
to parse requests / build replies), so the layout lives in one place.  No I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_iface.records import (PayloadError, expect_end, pack, pack_array, records,
                                    unpack, unpack_array)
from firmware_iface.spec import RECORDS, Capability, ReadMode
from firmware_iface.write_verify import PulseSchedule, to_nano_siemens


@dataclass(frozen=True)
class ChipInfo:
    """GET_INFO contents in SI units."""

    chip_id: int
    firmware_version: str
    protocol_version: int
    rows: int
    columns: int
    neurons: int
    pes: int
    levels_s: tuple[float, ...]
    max_steps: int
    dt_min_s: float
    dt_max_s: float
    latency_s: float
    sample_slots: int
    max_payload: int
    capabilities: int

    @property
    def levels(self) -> int:
        return len(self.levels_s)

    def has(self, cap: Capability) -> bool:
        return bool(self.capabilities & cap)

    def as_dict(self) -> dict:
        return {
            "chip_id": f"{self.chip_id:016x}", "firmware_version": self.firmware_version,
            "protocol_version": self.protocol_version, "rows": self.rows, "columns": self.columns,
            "neurons": self.neurons, "pes": self.pes, "levels": self.levels,
            "levels_s": list(self.levels_s), "max_steps": self.max_steps,
            "dt_min_s": self.dt_min_s, "dt_max_s": self.dt_max_s, "latency_s": self.latency_s,
            "sample_slots": self.sample_slots, "max_payload": self.max_payload,
            "capabilities": [c.name for c in Capability if self.capabilities & c],
        }


def encode_info(info: ChipInfo) -> bytes:
    major, minor, patch = (int(x) for x in info.firmware_version.split("."))
    return pack(
        "INFO", chip_id=info.chip_id, fw_major=major, fw_minor=minor, fw_patch=patch,
        protocol=info.protocol_version, rows=info.rows, columns=info.columns,
        neurons=info.neurons, pes=info.pes, levels=len(info.levels_s), max_steps=info.max_steps,
        dt_min_ns=round(info.dt_min_s * 1e9), dt_max_ns=round(info.dt_max_s * 1e9),
        latency_ns=round(info.latency_s * 1e9), sample_slots=info.sample_slots,
        max_payload=info.max_payload, capabilities=info.capabilities,
    ) + np.asarray(info.levels_s, dtype="<f4").tobytes()


def decode_info(payload: bytes) -> ChipInfo:
    r, off = unpack("INFO", payload)
    n = int(r["levels"])
    lv, off = np.frombuffer(payload, "<f4", n, off), off + 4 * n
    expect_end(payload, off, "GET_INFO reply")
    return ChipInfo(
        chip_id=int(r["chip_id"]),
        firmware_version=f"{int(r['fw_major'])}.{int(r['fw_minor'])}.{int(r['fw_patch'])}",
        protocol_version=int(r["protocol"]), rows=int(r["rows"]), columns=int(r["columns"]),
        neurons=int(r["neurons"]), pes=int(r["pes"]),
        levels_s=tuple(float(x) for x in lv), max_steps=int(r["max_steps"]),
        dt_min_s=int(r["dt_min_ns"]) * 1e-9, dt_max_s=int(r["dt_max_ns"]) * 1e-9,
        latency_s=int(r["latency_ns"]) * 1e-9, sample_slots=int(r["sample_slots"]),
        max_payload=int(r["max_payload"]), capabilities=int(r["capabilities"]),
    )


# --- registers --------------------------------------------------------------------------
def encode_reg(reg: int, code: int = 0) -> bytes:
    return pack("REG", reg=reg, code=code)


def decode_reg(payload: bytes) -> tuple[int, int]:
    r, off = unpack("REG", payload)
    expect_end(payload, off, "REG")
    return int(r["reg"]), int(r["code"])


# --- completion --------------------------------------------------------------------------
def encode_done(count: int, chip_ns: int) -> bytes:
    return pack("DONE", count=count, chip_ns=chip_ns)


def decode_done(payload: bytes, offset: int = 0) -> tuple[int, int, int]:
    """(count, chip_ns, offset after the record)."""
    r, off = unpack("DONE", payload, offset)
    return int(r["count"]), int(r["chip_ns"]), off


# --- reads --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadRequest:
    mode: ReadMode
    v_read_uv: int
    averages: int
    row: int = 0
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None


def encode_read(req: ReadRequest) -> bytes:
    count = 0 if req.rows is None else int(np.size(req.rows))
    head = pack("READ_REQ", v_read_uv=req.v_read_uv, averages=req.averages, mode=int(req.mode),
                row=req.row, count=count)
    if req.mode != ReadMode.LIST:
        return head
    cells = records("CELL", count)
    cells["row"], cells["col"] = req.rows, req.cols
    return head + cells.tobytes()


def decode_read(payload: bytes) -> ReadRequest:
    r, off = unpack("READ_REQ", payload)
    mode = int(r["mode"])
    if mode not in tuple(ReadMode):
        raise PayloadError(f"READ_CELLS mode {mode} unknown")
    rows = cols = None
    if mode == ReadMode.LIST:
        cells, off = unpack_array("CELL", payload, int(r["count"]), off)
        rows, cols = cells["row"].astype(np.int64), cells["col"].astype(np.int64)
    expect_end(payload, off, "READ_CELLS request")
    return ReadRequest(ReadMode(mode), int(r["v_read_uv"]), int(r["averages"]), int(r["row"]),
                       rows, cols)


def encode_conductances(g_s: np.ndarray) -> bytes:
    return np.asarray(g_s, dtype="<f4").tobytes()


def decode_conductances(payload: bytes) -> np.ndarray:
    if len(payload) % 4:
        raise PayloadError(f"conductance payload of {len(payload)} bytes is not a multiple of 4")
    return np.frombuffer(payload, "<f4").astype(np.float64)


# --- pulses --------------------------------------------------------------------------------
def pulse_records(kind, rows, cols, v_bl_v, v_wl_v, v_sl_v, width_s) -> np.ndarray:
    """PULSE records from SI values (arrays of one length): voltages rounded to whole mV,
    widths to whole ns.  The host's PULSE and the board's write-verify use this one rounding."""
    rows = np.asarray(rows)
    p = records("PULSE", rows.size)
    p["kind"], p["row"], p["col"] = kind, rows, cols
    p["v_bl_mv"], p["v_wl_mv"], p["v_sl_mv"] = (np.round(np.asarray(v, dtype=float) * 1e3)
                                                for v in (v_bl_v, v_wl_v, v_sl_v))
    p["width_ns"] = np.round(np.asarray(width_s, dtype=float) * 1e9)
    return p


def encode_pulses(pulses: np.ndarray) -> bytes:
    """``pulses``: array of RECORDS['PULSE'] records."""
    return pack("COUNT", count=len(pulses)) + pack_array("PULSE", pulses)


def decode_pulses(payload: bytes) -> np.ndarray:
    c, off = unpack("COUNT", payload)
    arr, off = unpack_array("PULSE", payload, int(c["count"]), off)
    expect_end(payload, off, "PULSE request")
    return arr


# --- write-verify ---------------------------------------------------------------------------
def encode_write_verify(schedule: PulseSchedule, rows: np.ndarray, cols: np.ndarray,
                        targets_s: np.ndarray) -> bytes:
    t = records("TARGET", np.size(rows))
    t["row"], t["col"], t["target_ns"] = rows, cols, to_nano_siemens(targets_s)
    return schedule.to_bytes() + pack("COUNT", count=t.size) + t.tobytes()


def decode_write_verify(payload: bytes) -> tuple[PulseSchedule, np.ndarray]:
    try:
        schedule, off = PulseSchedule.from_bytes(payload)
    except ValueError as exc:
        raise PayloadError(f"WRITE_VERIFY schedule invalid: {exc}") from None
    c, off = unpack("COUNT", payload, off)
    targets, off = unpack_array("TARGET", payload, int(c["count"]), off)
    expect_end(payload, off, "WRITE_VERIFY request")
    return schedule, targets


def encode_cell_results(results: np.ndarray, chip_ns: int) -> bytes:
    return encode_done(len(results), chip_ns) + pack_array("CELL_RESULT", results)


def decode_cell_results(payload: bytes) -> tuple[np.ndarray, int]:
    count, chip_ns, off = decode_done(payload)
    arr, off = unpack_array("CELL_RESULT", payload, count, off)
    expect_end(payload, off, "WRITE_VERIFY reply")
    return arr, chip_ns


# --- session -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    """HELLO reply contents (SI units)."""

    protocol_version: int
    firmware_version: str
    session: int
    max_payload: int
    max_frame: int
    v_max_v: float
    width_max_s: float
    capabilities: int


def encode_hello(h: Hello) -> bytes:
    major, minor, patch = (int(x) for x in h.firmware_version.split("."))
    return pack("HELLO", protocol=h.protocol_version, fw_major=major, fw_minor=minor, fw_patch=patch,
                session=h.session, max_payload=h.max_payload, max_frame=h.max_frame,
                v_max_mv=round(h.v_max_v * 1e3), width_max_ns=round(h.width_max_s * 1e9),
                capabilities=h.capabilities)


def decode_hello(payload: bytes) -> Hello:
    r, off = unpack("HELLO", payload)
    expect_end(payload, off, "HELLO reply")
    return Hello(protocol_version=int(r["protocol"]),
                 firmware_version=f"{int(r['fw_major'])}.{int(r['fw_minor'])}.{int(r['fw_patch'])}",
                 session=int(r["session"]), max_payload=int(r["max_payload"]), max_frame=int(r["max_frame"]),
                 v_max_v=int(r["v_max_mv"]) / 1000.0, width_max_s=int(r["width_max_ns"]) / 1e9,
                 capabilities=int(r["capabilities"]))


# --- run / status / wait -------------------------------------------------------------------
def encode_run(slot: int, n: int) -> bytes:
    return pack("RUN", slot=slot, n=n)


def decode_run(payload: bytes) -> tuple[int, int]:
    r, off = unpack("RUN", payload)
    expect_end(payload, off, "RUN")
    return int(r["slot"]), int(r["n"])


def encode_wait(duration_ns: int) -> bytes:
    return pack("WAIT", duration_ns=duration_ns)


def decode_wait(payload: bytes) -> int:
    r, off = unpack("WAIT", payload)
    expect_end(payload, off, "WAIT")
    return int(r["duration_ns"])


STATUS_FIELDS = [n for n in RECORDS["STATUS"].names if not n.startswith("_")]


def encode_status(**fields: int) -> bytes:
    return pack("STATUS", **fields)


def decode_status(payload: bytes) -> dict[str, int]:
    r, off = unpack("STATUS", payload)
    expect_end(payload, off, "STATUS reply")
    return {k: int(r[k]) for k in STATUS_FIELDS}
