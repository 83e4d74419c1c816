"""Random and mutated protocol frames for fuzzing the virtual firmware and the host parsers
(issue 16, item 6).  Used by tests/test_fuzz_firmware.py (small budget) and
benchmarks/bench_fuzz.py (>= 1,000,000 frames).

Frames come in four kinds, all seeded:
- ``garbage``: random bytes (with stray 0x00 delimiters);
- ``random``: a valid frame (CRC, COBS) of a random or real opcode with a random payload;
- ``record``: a real opcode whose payload is its request record(s) with random field values,
  biased to the extremes (0, 1, max, max-1) of each field, plus random trailing data;
- ``mutated``: a valid request built by the encoders, then bit flips, truncation or extension.
"""
from __future__ import annotations

import numpy as np

from firmware_iface import messages as msg
from firmware_iface.bulk import encode_commit, encode_fetch, encode_stage
from firmware_iface.framing import Frame, encode_frame
from firmware_iface.spec import RECORDS, Opcode
from firmware_iface.spikes import encode_upload
from firmware_iface.write_verify import PulseSchedule

REQUEST_RECORDS: dict[Opcode, tuple[str, ...]] = {
    Opcode.REG_READ: ("REG",), Opcode.REG_WRITE: ("REG",), Opcode.READ_CELLS: ("READ_REQ", "CELL"),
    Opcode.PULSE: ("COUNT", "PULSE"), Opcode.WRITE_VERIFY: ("SCHEDULE", "COUNT", "TARGET"),
    Opcode.UPLOAD_SPIKES: ("UPLOAD", "SAMPLE"), Opcode.RUN: ("RUN",), Opcode.READ_OUTPUT: ("RUN",),
    Opcode.WAIT: ("WAIT",), Opcode.STAGE: ("STAGE",), Opcode.COMMIT: ("COMMIT",), Opcode.FETCH: ("FETCH",),
}
OPCODES = [int(o) for o in Opcode]


def _field_value(rng: np.random.Generator, dt: np.dtype) -> int | float:
    if dt.kind == "f":
        return float(rng.choice([0.0, -1.0, 1e-5, 1e30, np.nan, np.inf, rng.normal()]))
    info = np.iinfo(dt)
    pick = rng.integers(6)
    if pick == 0:
        return int(info.max)
    if pick == 1:
        return int(info.max) - 1
    if pick == 2:
        return 0
    if pick == 3:
        return 1
    return int(rng.integers(info.min, int(info.max) + 1, dtype=np.int64 if info.max < 2**63 else np.uint64))


def random_record(rng: np.random.Generator, name: str) -> bytes:
    dt = RECORDS[name]
    rec = np.zeros(1, dtype=dt)
    for f in dt.names:
        sub = dt[f]
        if sub.shape:
            continue
        rec[f] = _field_value(rng, sub)
    return rec.tobytes()


def valid_request(rng: np.random.Generator) -> tuple[int, bytes]:
    """A well-formed request built by the encoders (small sizes), for mutation."""
    k = int(rng.integers(9))
    n = int(rng.integers(1, 6))
    rows, cols = rng.integers(0, 128, n), rng.integers(0, 24, n)
    if k == 0:
        return Opcode.READ_CELLS, msg.encode_read(msg.ReadRequest(0, 200_000, 1, 0, rows, cols))
    if k == 1:
        return Opcode.PULSE, msg.encode_pulses(msg.pulse_records(np.ones(n, np.uint8), rows, cols, np.full(n, 1.2),
                                                                 np.full(n, 1.5), np.zeros(n), np.full(n, 1e-6)))
    if k == 2:
        return Opcode.WRITE_VERIFY, msg.encode_write_verify(PulseSchedule(max_pulses=20), rows, cols,
                                                            np.full(n, 50e-6))
    if k == 3:
        return Opcode.UPLOAD_SPIKES, encode_upload(rng.random((n, 8, 128)) < 0.05, slot=int(rng.integers(4)))
    if k == 4:
        return Opcode.RUN, msg.encode_run(int(rng.integers(4)), n)
    if k == 5:
        return Opcode.READ_OUTPUT, msg.encode_run(int(rng.integers(4)), n)
    if k == 6:
        return Opcode.WAIT, msg.encode_wait(int(rng.integers(0, 10**6)))
    if k == 7:
        return Opcode.STAGE, encode_stage(int(rng.integers(1, 4)), Opcode.RUN, 8, 0, msg.encode_run(0, 1))
    return (Opcode.COMMIT, encode_commit(int(rng.integers(1, 4)), Opcode.RUN, 8)) if rng.random() < 0.5 else \
        (Opcode.FETCH, encode_fetch(int(rng.integers(1, 4)), 0, int(rng.integers(0, 64))))


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    buf = bytearray(data)
    pick = rng.integers(4)
    if pick == 0 and buf:
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(buf)))
            buf[i] ^= 1 << int(rng.integers(8))
    elif pick == 1 and buf:
        del buf[int(rng.integers(len(buf))):]
    elif pick == 2:
        buf += rng.bytes(int(rng.integers(1, 32)))
    elif buf:  # overwrite a 4-byte field with an extreme
        i = int(rng.integers(len(buf)))
        buf[i:i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xfe\xff\xff\x7f"])
    return bytes(buf)


def payload(rng: np.random.Generator, kind: str) -> tuple[int, bytes]:
    """(opcode, payload) of one fuzz request of ``kind`` (random / record / mutated)."""
    if kind == "random":
        op = int(rng.choice(OPCODES)) if rng.random() < 0.8 else int(rng.integers(256))
        return op, rng.bytes(int(rng.integers(0, 64 if rng.random() < 0.9 else 2048)))
    if kind == "record":
        op = rng.choice(list(REQUEST_RECORDS))
        body = b"".join(random_record(rng, r) for r in REQUEST_RECORDS[op])
        if rng.random() < 0.5:
            body += rng.bytes(int(rng.integers(0, 40)))
        return int(op), body
    op, body = valid_request(rng)
    return int(op), mutate(rng, body)


class FrameFuzzer:
    """Seeded stream of wire chunks for one session of the firmware (HELLO first)."""

    KINDS = ("garbage", "random", "record", "mutated")

    def __init__(self, seed: int, session: int = 0x5EED) -> None:
        self.rng = np.random.default_rng(seed)
        self.session, self.seq = session, 0

    def hello(self) -> bytes:
        self.seq = 0
        return encode_frame(Frame(int(Opcode.HELLO), 0, b"", session=self.session))

    def next(self) -> tuple[str, bytes]:
        rng = self.rng
        kind = self.KINDS[int(rng.choice(4, p=[0.1, 0.3, 0.3, 0.3]))]
        if kind == "garbage":
            data = bytearray(rng.bytes(int(rng.integers(1, 96))))
            if rng.random() < 0.5:
                data.append(0)
            return kind, bytes(data)
        op, body = payload(rng, kind)
        self.seq = (self.seq + 1) & 0xFFFF or 1
        session = self.session if rng.random() < 0.95 else int(rng.integers(1, 2**32))
        seq = self.seq
        if rng.random() < 0.1:  # a random seq: a retry, a stale or a reused one, or a jump ahead
            seq = int(rng.integers(0, 65536))
            if 0 < (seq - self.seq) & 0xFFFF < 0x8000:
                self.seq = seq    # numbering goes on after a jump ahead
        if op == Opcode.HELLO:
            body = b""
        return kind, encode_frame(Frame(op, seq, body, session=session))
