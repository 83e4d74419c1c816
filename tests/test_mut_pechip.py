"""PEChip (drivers/pechip.py) against a scripted fake board: fast unit tests for issue 18.

The fake board sits behind an in-process port (``synchronous`` like the pesim:// transport: a
reply is there as soon as ``write`` returns).  It decodes each request and builds each reply
*by hand* from docs/protocol.md -- [framing] (header ``<BBBBHHIII``, IEEE CRC-32 with zlib,
COBS with the ``cobs`` package, 0x00 delimiter; a reply echoes the request's CRC-32 trailer)
and the "Records" tables (HELLO, INFO, REG, READ_REQ, DONE, STATUS, CELL_RESULT ... packed
little-endian) -- so the driver's own encoders are never the source of an expected value.
Each test scripts what the board answers and checks what the driver sent and returned.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from cobs import cobs

import drivers.pechip as pechip_mod
from drivers.errors import ChipError, ChipTimeout, LimitError, ProtocolError
from drivers.pechip import LinkStats, PEChip
from firmware_iface.spec import Opcode
from firmware_iface.write_verify import PulseSchedule

HDR = "<BBBBHHIII"          # [framing] header: version, opcode, flags, status, seq, _rsv, session, echo, length
PING, GET_INFO, REG_READ, REG_WRITE, READ_CELLS, PULSE, WRITE_VERIFY = 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12
UPLOAD_SPIKES, RUN, READ_OUTPUT, STATUS, WAIT, HELLO = 0x20, 0x21, 0x22, 0x30, 0x32, 0x40
OK, BAD_FRAME, OUT_OF_RANGE, BUSY, NO_SESSION = 0, 1, 4, 5, 0x21   # [Status codes]
ROWS, COLS, NEURONS = 8, 4, 3


@dataclass
class Req:
    opcode: int
    seq: int
    session: int
    payload: bytes
    crc: int


def frame(opcode: int, seq: int, session: int, echo: int, payload: bytes = b"", status: int = OK,
          flags: int = 1) -> bytes:
    """One reply frame on the wire, built from [framing] by hand."""
    body = struct.pack(HDR, 2, opcode, flags, status, seq, 0, session, echo, len(payload)) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def reply(req: Req, payload: bytes = b"", status: int = OK, **kw) -> bytes:
    f = dict(opcode=req.opcode, seq=req.seq, session=req.session, echo=req.crc)
    f.update(kw)
    return frame(f["opcode"], f["seq"], f["session"], f["echo"], payload, status)


def info_payload(max_payload: int = 65536, sample_slots: int = 4, max_steps: int = 16) -> bytes:
    """INFO (48 bytes) of an 8 x 4 array, 3 neurons, no capabilities, no levels."""
    return struct.pack("<QBBBBHHHHHHIIIIII", 7, 2, 0, 0, 2, ROWS, COLS, NEURONS, 1, 0, max_steps, 10, 10_000_000,
                       1000, sample_slots, max_payload, 0)


def done(count: int, chip_ns: int) -> bytes:
    return struct.pack("<IIQ", count, 0, chip_ns)           # DONE (16 bytes)


def status_payload(state: int = 0) -> bytes:
    return struct.pack("<BBHQIIIIII", state, 0, 0, 0, 0, 0, 0, 0, 0, 0)   # STATUS (36 bytes)


class FakeBoard:
    """A port whose far side is a scripted board.  ``handlers[opcode](board, req)`` returns the
    bytes the board sends back (b"" = no answer); HELLO and GET_INFO have defaults."""

    synchronous = True

    def __init__(self, handlers: dict | None = None) -> None:
        self.rx = bytearray()
        self.requests: list[Req] = []
        self.handlers = {HELLO: lambda b, r: reply(r, struct.pack("<BBBBIIIHHII", 2, 2, 0, 0, r.session, 65536,
                                                                  70000, 5000, 0, 1_000_000, 0)),
                         GET_INFO: lambda b, r: reply(r, info_payload())}
        self.handlers.update(handlers or {})
        self.closed = False

    def write(self, wire: bytes) -> int:
        assert wire.endswith(b"\x00")
        for run in bytes(wire).split(b"\x00")[:-1]:
            raw = cobs.decode(run)
            body, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
            assert zlib.crc32(body) == crc
            v, op, flags, st, seq, rsv, session, echo, length = struct.unpack_from(HDR, body)
            assert (v, flags, st, rsv, echo, length) == (2, 0, 0, 0, 0, len(body) - 20)
            req = Req(op, seq, session, body[20:], crc)
            self.requests.append(req)
            self.rx += self.handlers[op](self, req)
        return len(wire)

    def read(self, n: int) -> bytes:
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def close(self) -> None:
        self.closed = True

    def ops(self) -> list[int]:
        return [r.opcode for r in self.requests]


def chip(board: FakeBoard, monkeypatch, **kw) -> PEChip:
    monkeypatch.setattr(pechip_mod, "open_link", lambda url, timeout_s: board)
    return PEChip("fake://board", timeout_s=0.2, **kw)


def echo_ping(b: FakeBoard, r: Req) -> bytes:
    return reply(r, r.payload)


# --- LinkStats -------------------------------------------------------------------------------
def test_modelled_seconds_adds_latency_bytes_and_chip_time():
    """kills LinkStats.modelled_seconds mutants (+ -> -): 2 round trips x 10 ms + 300 bytes x 10
    bits / 1000 baud + 0.5 s of chip time = 3.52 s (8N1: 10 bits a byte)."""
    s = LinkStats(round_trips=2, bytes_tx=100, bytes_rx=200, chip_seconds=0.5)
    assert s.modelled_seconds(1000.0, 0.01) == pytest.approx(3.52, rel=1e-12)


def test_since_is_the_field_by_field_difference():
    """kills LinkStats.since mutants."""
    a = LinkStats(round_trips=5, commands=4, retries=1, bytes_tx=70, chip_seconds=1.5)
    b = LinkStats(round_trips=2, commands=1, retries=1, bytes_tx=20, chip_seconds=0.25)
    d = a.since(b)
    assert (d.round_trips, d.commands, d.retries, d.bytes_tx, d.chip_seconds) == (3, 3, 0, 50, 1.25)
    assert a.snapshot() == a and a.snapshot() is not a


# --- sessions, sequence numbers, retries -------------------------------------------------------
def test_hello_then_commands_count_seq_from_one(monkeypatch):
    """kills PEChip._next_seq / _exchange mutants: [session] HELLO goes out with seq 0 and the
    commands after it with 1, 2, 3 under the session HELLO opened; one round trip a frame; the
    payload is sent as given."""
    b = FakeBoard({PING: echo_ping})
    c = chip(b, monkeypatch)
    assert c.ping(b"abc") == b"abc" and c.ping(b"\x00\x01") == b"\x00\x01" and c.ping(b"z") == b"z"
    assert [r.seq for r in b.requests] == [0, 1, 2, 3]
    assert [r.payload for r in b.requests[1:]] == [b"abc", b"\x00\x01", b"z"]
    assert {r.session for r in b.requests} == {c._session} and c._session != 0
    assert c.stats.round_trips == 4 and c.stats.commands == 4 and c.stats.retries == 0
    assert c.stats.bytes_tx == sum(len(cobs.encode(b"x" * (20 + len(r.payload) + 4))) + 1 for r in b.requests)


def test_seq_wraps_at_16_bits(monkeypatch):
    """kills PEChip._next_seq mutants (`& 0xFFFF` -> `| 0xFFFF`, `& 65536`): seq is a u16."""
    c = chip(FakeBoard(), monkeypatch)
    c._seq = 0xFFFD
    assert [c._next_seq() for _ in range(4)] == [0xFFFE, 0xFFFF, 0, 1]


def test_a_lost_reply_is_retried_retries_times(monkeypatch):
    """kills PEChip._exchange mutants on the attempt count (range(retries + 1)): with retries=3
    the board answers only the 4th copy of the identical frame, and the command succeeds."""
    seen = []

    def late(b, r):
        seen.append(r)
        return reply(r, r.payload) if len(seen) == 4 else b""

    b = FakeBoard({PING: late})
    c = chip(b, monkeypatch, retries=3)
    assert c.ping(b"hi") == b"hi"
    assert len({(r.seq, r.crc) for r in seen}) == 1           # the identical frame each time
    assert c.stats.retries == 3 and c.stats.timeouts == 3 and c.stats.round_trips == 5


def test_no_reply_at_all_is_a_timeout_naming_the_attempts(monkeypatch):
    """kills PEChip._exchange mutants: retries + 1 attempts, then ChipTimeout 'no reply'."""
    b = FakeBoard({PING: lambda b, r: b""})
    c = chip(b, monkeypatch, retries=2)
    with pytest.raises(ChipTimeout, match=r"^PING to fake://board failed after 3 attempts: no reply within 0.2 s$"):
        c.ping(b"x")
    assert b.ops().count(PING) == 3


def test_corrupted_replies_are_reported_as_such(monkeypatch):
    """kills PEChip._exchange mutant on the message 'the reply arrived corrupted (CRC/COBS check
    failed)': every reply has a bad CRC trailer."""
    def corrupt(b, r):
        w = bytearray(reply(r, r.payload))
        w[-2] ^= 0x01 if w[-2] != 1 else 0x03             # flip a bit of the stuffed CRC, never to 0x00
        return bytes(w)

    c = chip(FakeBoard({PING: corrupt}), monkeypatch, retries=1)
    with pytest.raises(ProtocolError) as e:
        c.ping(b"x")
    assert str(e.value) == ("PING to fake://board failed after 2 attempts: "
                            "the reply arrived corrupted (CRC/COBS check failed)")
    assert c.stats.bad_frames == 2


def test_bad_frame_reports_are_retried_and_named(monkeypatch):
    """kills PEChip._exchange mutant on the message 'board received a corrupted frame': the board
    answers BAD_FRAME (opcode, seq, session, echo 0 as [framing] says) to every copy."""
    bad = lambda b, r: frame(0, 0, 0, 0, b"", status=BAD_FRAME)   # noqa: E731
    c = chip(FakeBoard({PING: bad}), monkeypatch, retries=2)
    with pytest.raises(ProtocolError) as e:
        c.ping(b"x")
    assert str(e.value) == "PING to fake://board failed after 3 attempts: board received a corrupted frame"
    assert c.stats.retries == 2


def test_a_foreign_reply_with_echo_zero_is_rejected_not_taken(monkeypatch):
    """kills PEChip._await mutant `status == BAD_FRAME and echo == 0` -> `or`: an OK reply of
    another session with echo 0 is no answer to this request (rejected); the retry gets the
    real reply."""
    n = []

    def stale_first(b, r):
        n.append(1)
        if len(n) == 1:
            return frame(r.opcode, r.seq, r.session ^ 1, 0, b"stale")
        return reply(r, r.payload)

    c = chip(FakeBoard({PING: stale_first}), monkeypatch)
    assert c.ping(b"fresh") == b"fresh"
    assert c.stats.rejected == 1 and c.stats.retries == 1


def test_an_error_status_raises_chip_error_with_the_board_text(monkeypatch):
    """kills PEChip._exchange mutants on ChipError (payload text dropped / not decoded as UTF-8):
    [opcodes] non-OK replies may carry a short UTF-8 explanation."""
    c = chip(FakeBoard({PING: lambda b, r: reply(r, "cell (9, 1) outside the array: µ".encode(),
                                                   status=OUT_OF_RANGE)}), monkeypatch)
    with pytest.raises(ChipError) as e:
        c.ping(b"x")
    assert e.value.status == OUT_OF_RANGE and e.value.status_name == "OUT_OF_RANGE"
    assert str(e.value) == "board reported OUT_OF_RANGE (status 4): cell (9, 1) outside the array: µ"
    c2 = chip(FakeBoard({PING: lambda b, r: reply(r, b"", status=200)}), monkeypatch)
    with pytest.raises(ChipError, match=r"^board reported UNKNOWN \(status 200\)$"):
        c2.ping(b"x")


def test_busy_is_followed_by_status_polls_then_the_identical_frame(monkeypatch):
    """kills PEChip._follow_busy mutants: [busy] BUSY -> STATUS polls until idle -> the identical
    frame again, answered from the board's cache."""
    polls = []

    def status(b, r):
        polls.append(r)
        return reply(r, status_payload(1 if len(polls) < 2 else 0))

    wv = []

    def busy_then_done(b, r):
        wv.append(r)
        return reply(r, done(0, 5000)) if len(wv) > 1 else reply(r, b"", status=BUSY)

    b = FakeBoard({STATUS: status, WAIT: busy_then_done})
    c = chip(b, monkeypatch)
    assert c.wait(5e-6) == pytest.approx(5e-6)
    assert len(polls) == 2 and len(wv) == 2 and wv[0].crc == wv[1].crc
    assert b.ops() == [HELLO, WAIT, STATUS, STATUS, WAIT]


# --- registers ------------------------------------------------------------------------------
def reg_board(codes: dict[int, int]) -> FakeBoard:
    def rd(b, r):
        reg, _, _ = struct.unpack("<HHI", r.payload)
        return reply(r, struct.pack("<HHI", reg, 0, codes[reg]))

    def wr(b, r):
        reg, _, code = struct.unpack("<HHI", r.payload)
        codes[reg] = code
        return reply(r, struct.pack("<HHI", reg, 0, code))

    return FakeBoard({REG_READ: rd, REG_WRITE: wr, RUN: lambda b, r: reply(r, done(2, 4000))})


def test_register_read_and_write_carry_the_register_and_code(monkeypatch):
    """kills PEChip.read_register / write_register mutants: REG record (reg, _pad, code); the
    value is code x scale (register table: V_READ uV code, TIME_STEP ns code)."""
    codes = {0x01: 150_000, 0x03: 100}
    b = reg_board(codes)
    c = chip(b, monkeypatch)
    assert c.read_register("V_READ") == pytest.approx(0.15)
    assert b.requests[-1].payload == struct.pack("<HHI", 0x01, 0, 0)
    assert c.write_register("TIME_STEP", 2e-6) == pytest.approx(2e-6)
    assert b.requests[-1].payload == struct.pack("<HHI", 0x03, 0, 2000)


def test_run_uses_registers_already_known(monkeypatch):
    """kills PEChip.check_run_registers mutant ("TIME_STEP" -> "time_step" in the cache lookup):
    after V_SPIKE and TIME_STEP were written by this driver, RUN is sent without reading them."""
    b = reg_board({0x02: 200_000, 0x03: 100})
    c = chip(b, monkeypatch)
    c.write_register("V_SPIKE", 0.2)
    c.write_register("TIME_STEP", 1e-6)
    n = len(b.requests)
    assert c.run(2, slot=1) == pytest.approx(4e-6)
    assert [r.opcode for r in b.requests[n:]] == [GET_INFO, RUN]
    assert b.requests[-1].payload == struct.pack("<II", 1, 2)


def test_run_refuses_a_time_step_in_force_beyond_the_station_limit(monkeypatch):
    """kills PEChip.check_run_registers message mutants: the time step read from the board
    (20 ms > dt_max 10 ms) is refused before RUN, naming the register."""
    b = reg_board({0x02: 200_000, 0x03: 20_000_000})
    c = chip(b, monkeypatch)
    with pytest.raises(LimitError, match=r"^time step in force \(register TIME_STEP\) = 0.02 is outside"):
        c.run(1)
    assert RUN not in b.ops()


# --- reads ----------------------------------------------------------------------------------
def read_board(seen: list) -> FakeBoard:
    def rd(b, r):
        v_uv, avg, mode, row, count = struct.unpack_from("<IHBBI", r.payload)
        seen.append((v_uv, avg, mode, row, count, r.payload[12:]))
        n = {0: count, 1: COLS, 2: ROWS * COLS}[mode]
        return reply(r, struct.pack(f"<{n}f", *[(k + 1) * 1e-6 for k in range(n)]))

    return FakeBoard({READ_CELLS: rd})


def test_read_row_sends_voltage_averages_and_row(monkeypatch):
    """kills PEChip.read_row / _read_args mutants: READ_REQ v_read_uv = round(V x 1e6),
    averages, mode ROW = 1, row ([op.read_cells])."""
    seen: list = []
    c = chip(read_board(seen), monkeypatch)
    g = c.read_row(5, v_read_v=0.25, averages=3)
    assert seen == [(250_000, 3, 1, 5, 0, b"")]
    assert g.tolist() == [float(np.float32((k + 1) * 1e-6)) for k in range(COLS)]


def test_read_cells_and_array_requests(monkeypatch):
    """kills PEChip.read_cells / read_array mutants: LIST mode with the CELL records in order;
    ARRAY mode reshaped rows x columns."""
    seen: list = []
    c = chip(read_board(seen), monkeypatch)
    g = c.read_cells([1, 7], [3, 0], v_read_v=0.1, averages=2)
    assert seen[-1] == (100_000, 2, 0, 0, 2, bytes([1, 3, 7, 0]))
    assert g.size == 2
    a = c.read_array(v_read_v=0.2)
    assert seen[-1][:5] == (200_000, 1, 2, 0, 0) and a.shape == (ROWS, COLS)
    assert a[1, 0] == pytest.approx(5e-6, rel=1e-6)


def test_a_malformed_status_reply_names_the_command(monkeypatch):
    """kills PEChip.status mutant (the name given to _parse): a 3-byte STATUS reply."""
    c = chip(FakeBoard({STATUS: lambda b, r: reply(r, b"\x00\x00\x00")}), monkeypatch)
    with pytest.raises(ProtocolError, match=r"^STATUS reply malformed: "):
        c.status()


def test_wait_sends_ns_and_returns_the_boards_chip_time(monkeypatch):
    """kills PEChip.wait mutants: WAIT record = round(s x 1e9) ns; returns DONE.chip_ns in s."""
    b = FakeBoard({WAIT: lambda b, r: reply(r, done(0, 3_000_000_007))})
    c = chip(b, monkeypatch)
    assert c.wait(1.5) == pytest.approx(3.000000007)
    assert b.requests[-1].payload == struct.pack("<Q", 1_500_000_000)
    assert c.stats.chip_seconds == pytest.approx(3.000000007)


# --- spikes -----------------------------------------------------------------------------------
def test_upload_spikes_checks_shape_and_steps(monkeypatch):
    """kills PEChip.upload_spikes mutants on the shape / steps checks and their messages."""
    c = chip(FakeBoard(), monkeypatch)
    with pytest.raises(ValueError, match=r"^spikes must have shape \(n, steps, 8\), got \(2, 3\)$"):
        c.upload_spikes(np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"^17 steps exceed the board's 16$"):
        c.upload_spikes(np.zeros((1, 17, ROWS), bool))


def test_upload_spikes_sends_the_chosen_encoding(monkeypatch):
    """kills PEChip.upload_spikes mutants (encoding not passed on, opcode / payload dropped): with
    encoding="aer" a busy sample still goes as AER (SAMPLE.encoding = 1)."""
    b = FakeBoard({UPLOAD_SPIKES: lambda b, r: reply(r, struct.pack("<I", 1))})
    c = chip(b, monkeypatch)
    s = np.ones((1, 2, ROWS), bool)
    sent = c.upload_spikes(s, slot=3, encoding="aer")
    p = b.requests[-1].payload
    assert b.requests[-1].opcode == UPLOAD_SPIKES and sent == len(p)
    assert struct.unpack_from("<IIHH", p) == (3, 1, 2, ROWS)
    assert struct.unpack_from("<B3xI", p, 12) == (1, 4 * 2 * ROWS)


def test_upload_spikes_splits_into_frames_that_fit(monkeypatch):
    """kills PEChip.upload_spikes mutants on the per-frame count: max_payload 96 -> (96 - 64) //
    (2 bytes + 16) = 1 sample a frame, slots counted on."""
    b = FakeBoard({UPLOAD_SPIKES: lambda b, r: reply(r, struct.pack("<I", 1)),
                     GET_INFO: lambda b, r: reply(r, info_payload(max_payload=96))})
    c = chip(b, monkeypatch)
    c.upload_spikes(np.zeros((3, 2, ROWS), bool), slot=5, encoding="dense")
    ups = [r for r in b.requests if r.opcode == UPLOAD_SPIKES]
    assert [struct.unpack_from("<II", r.payload) for r in ups] == [(5, 1), (6, 1), (7, 1)]


def output_board() -> FakeBoard:
    def rd(b, r):
        slot, n = struct.unpack("<II", r.payload)
        counts = struct.pack(f"<{n * NEURONS}H", *([0] * (n * NEURONS)))
        return reply(r, struct.pack("<IHHI", n, NEURONS, 2, 0) + counts)

    return FakeBoard({UPLOAD_SPIKES: lambda b, r: reply(r, struct.pack("<I", 1)),
                        RUN: lambda b, r: reply(r, done(struct.unpack("<II", r.payload)[1], 10)),
                        READ_OUTPUT: rd,
                        REG_READ: lambda b, r: reply(r, struct.pack("<HHI", r.payload[0], 0,
                                                                   200_000 if r.payload[0] == 2 else 100))})


def test_infer_runs_each_chunk_once(monkeypatch):
    """kills PEChip.infer mutants on the chunk loop: 6 samples on a 4-slot board = 2 rounds of
    upload / RUN / READ_OUTPUT (4 then 2 samples), output shape (6, steps, neurons)."""
    b = output_board()
    c = chip(b, monkeypatch)
    out = c.infer(np.zeros((6, 2, ROWS), bool))
    assert out.shape == (6, 2, NEURONS)
    runs = [struct.unpack("<II", r.payload) for r in b.requests if r.opcode == RUN]
    assert runs == [(0, 4), (0, 2)]
    assert [struct.unpack("<II", r.payload) for r in b.requests if r.opcode == READ_OUTPUT] == [(0, 4), (0, 2)]


def test_infer_of_nothing_is_an_empty_output(monkeypatch):
    """kills PEChip.infer mutant on the empty result's shape: (0, steps, neurons)."""
    b = output_board()
    c = chip(b, monkeypatch)
    out = c.infer(np.zeros((0, 5, ROWS), bool))
    assert out.shape == (0, 5, NEURONS) and out.dtype == bool
    assert RUN not in b.ops()


# --- write-verify -------------------------------------------------------------------------------
def wv_board(flags: int = 1) -> FakeBoard:
    """Answers WRITE_VERIFY with DONE + one CELL_RESULT per TARGET (g = target, given flags)."""
    def wv(b, r):
        (count,) = struct.unpack_from("<I", r.payload, 36)
        res = b""
        for k in range(count):
            row, col, _, t_ns = struct.unpack_from("<BBHI", r.payload, 40 + 8 * k)
            res += struct.pack("<BBBBHHf", row, col, flags, 0, 3 + k, 0, t_ns * 1e-9)
        return reply(r, done(count, 1000 * count) + res)

    return FakeBoard({WRITE_VERIFY: wv})


def test_write_verify_batches_and_results(monkeypatch):
    """kills PEChip.write_verify mutants (batch slices, result fields, flag bits): 3 cells in
    batches of 2 -> two requests with cells [0, 1] and [2]; g_s from CELL_RESULT, success = bit 0,
    stuck = bit 1, confirm_failed = bit 2 ([CELL_RESULT])."""
    b = wv_board(flags=1)
    c = chip(b, monkeypatch)
    r = c.write_verify([1, 2, 3], [0, 1, 2], [10e-6, 20e-6, 30e-6], PulseSchedule(), batch=2)
    reqs = [q for q in b.requests if q.opcode == WRITE_VERIFY]
    assert [struct.unpack_from("<I", q.payload, 36)[0] for q in reqs] == [2, 1]
    assert struct.unpack_from("<BBHI", reqs[1].payload, 40) == (3, 2, 0, 30_000)
    assert r.g_s.dtype == np.float64
    assert r.g_s.tolist() == pytest.approx([10e-6, 20e-6, 30e-6], rel=1e-6)
    assert r.pulses.tolist() == [3, 4, 3]
    assert r.success.tolist() == [True] * 3
    assert r.stuck.tolist() == [False] * 3 and r.confirm_failed.tolist() == [False] * 3
    assert r.chip_seconds == pytest.approx(3e-6)


def test_write_verify_flags_stuck_and_confirm_failed(monkeypatch):
    """kills PEChip.write_verify mutants on the flag bits: flags 6 = STUCK | CONFIRM_FAILED."""
    c = chip(wv_board(flags=6), monkeypatch)
    r = c.write_verify([0], [0], [1e-6], PulseSchedule())
    assert (r.success[0], r.stuck[0], r.confirm_failed[0]) == (False, True, True)


def test_write_verify_refuses_negative_targets_before_sending(monkeypatch):
    """kills PEChip.write_verify message mutant: the error says what a target must be."""
    b = wv_board()
    c = chip(b, monkeypatch)
    with pytest.raises(ValueError, match=r"^write-verify targets must be finite conductances >= 0 S$"):
        c.write_verify([0], [0], [-1e-6], PulseSchedule())
    with pytest.raises(ValueError, match=r"^write-verify targets must be finite conductances >= 0 S$"):
        c.write_verify([0], [0], [np.nan], PulseSchedule())
    assert WRITE_VERIFY not in b.ops()


# --- pulses and sessions ---------------------------------------------------------------------------
def test_pulse_sends_count_and_pulse_records_and_sums_chip_time(monkeypatch):
    """kills PEChip.pulse / _check_pulses mutants: [op.pulse] COUNT then PULSE records (kind,
    row, col, _pad, v_bl/v_wl/v_sl in mV, _pad2, width in ns); max_payload 96 -> (96 - 64) // 16
    = 2 pulses a frame; chip time = sum of DONE.chip_ns."""
    def pulse(b, r):
        (count,) = struct.unpack_from("<I", r.payload)
        return reply(r, done(count, 1000 * count))

    b = FakeBoard({PULSE: pulse, GET_INFO: lambda b, r: reply(r, info_payload(max_payload=96))})
    c = chip(b, monkeypatch)
    t = c.pulse(1, [1, 2, 3], [0, 1, 2], 2.0, 1.8, 0.0, 1e-6)
    reqs = [r for r in b.requests if r.opcode == PULSE]
    assert [struct.unpack_from("<I", r.payload)[0] for r in reqs] == [2, 1]
    assert struct.unpack_from("<BBBBHHHHI", reqs[0].payload, 4) == (1, 1, 0, 0, 2000, 1800, 0, 0, 1000)
    assert struct.unpack_from("<BBBBHHHHI", reqs[1].payload, 4) == (1, 3, 2, 0, 2000, 1800, 0, 0, 1000)
    assert t == pytest.approx(3e-6) and c.stats.chip_seconds == pytest.approx(3e-6)


def test_pulse_limits_are_checked_before_sending(monkeypatch):
    """kills PEChip._check_pulses mutants: a word line above v_wl_max_v (3.3 V) is refused,
    naming the quantity, and nothing is sent."""
    b = FakeBoard()
    c = chip(b, monkeypatch)
    with pytest.raises(LimitError, match=r"^word-line voltage = 3.4 is outside the station limit"):
        c.pulse(1, [0], [0], 2.0, 3.4, 0.0, 1e-6)
    with pytest.raises(ValueError, match="pulse kind"):
        c.pulse(3, [0], [0], 2.0, 1.8, 0.0, 1e-6)
    assert PULSE not in b.ops()


def test_no_session_reopens_and_resends_once(monkeypatch):
    """kills PEChip._exchange mutants on NO_SESSION ([session]: the board lost the session, e.g.
    a reboot; it did not execute the frame): a new HELLO with a new session, then the command again
    under it; counted as one command and one retry."""
    n = []

    def lost_once(b, r):
        n.append(r)
        return reply(r, b"", status=NO_SESSION) if len(n) == 1 else reply(r, r.payload)

    b = FakeBoard({PING: lost_once})
    c = chip(b, monkeypatch)
    first = c._session
    assert c.ping(b"again") == b"again"
    assert b.ops() == [HELLO, PING, HELLO, PING]
    assert b.requests[2].session == b.requests[3].session == c._session
    assert c.stats.sessions == 2 and c.stats.commands == 3 and c.stats.retries == 1
    assert first != 0


def test_a_read_whose_reply_exceeds_max_chunk_goes_in_bounded_frames(monkeypatch):
    """kills PEChip._read mutant on the expected reply size (4 bytes a conductance): a BOUNDED
    board with LIMITS.max_chunk 64 ([bounded]: every frame at most max_chunk + 32 bytes of
    payload): reading 20 cells (a 52-byte request, an 80-byte reply) must go as STAGE / COMMIT /
    FETCH, never as one plain READ_CELLS whose reply would exceed the piece size."""
    STAGE, COMMIT, FETCH, GET_LIMITS = 0x50, 0x51, 0x52, 0x53
    kept: dict = {}

    def limits(b, r):   # LIMITS (64 bytes): max_chunk 64, generous everything else
        return reply(r, struct.pack("<IIHHIQIIIHHQQQ", 64, 65536, 16, 1000, 4, 1 << 20, 100, 100, 100, 64, 0,
                                    10**16, 2**62, 1 << 20))

    def stage(b, r):
        tid, op, _, _, total, off = struct.unpack_from("<IBBHII", r.payload)
        buf = kept.setdefault(("stage", tid), bytearray(total))
        buf[off:off + len(r.payload) - 16] = r.payload[16:]
        return reply(r, struct.pack("<I", off + len(r.payload) - 16))

    def commit(b, r):
        tid, op, _, _, total = struct.unpack("<IBBHI", r.payload)
        assert op == READ_CELLS
        staged = bytes(kept[("stage", tid)])
        count = struct.unpack_from("<IHBBI", staged)[4]
        out = struct.pack(f"<{count}f", *[(k + 1) * 1e-6 for k in range(count)])
        kept["reply"] = out
        return reply(r, struct.pack("<IBBHI", tid, OK, 0, 0, len(out)) + out[:64])

    def fetch(b, r):
        tid, off, length = struct.unpack("<III", r.payload)
        return reply(r, kept["reply"][off:off + length])

    info = struct.pack("<QBBBBHHHHHHIIIIII", 7, 2, 0, 0, 2, ROWS, COLS, NEURONS, 1, 0, 16, 10, 10_000_000, 1000,
                       4, 65536, 16)            # capabilities = BOUNDED (16)
    b = FakeBoard({GET_INFO: lambda b, r: reply(r, info), GET_LIMITS: limits, STAGE: stage, COMMIT: commit,
                   FETCH: fetch, READ_CELLS: lambda b, r: reply(r, b"", status=OUT_OF_RANGE)})
    c = chip(b, monkeypatch)
    rows = np.arange(20) % ROWS
    cols = np.arange(20) % COLS
    g = c.read_cells(rows, cols)
    assert READ_CELLS not in b.ops()
    assert b.ops()[-3:] == [STAGE, COMMIT, FETCH]
    assert g.tolist() == [float(np.float32((k + 1) * 1e-6)) for k in range(20)]


class FdBoard(FakeBoard):
    """The fake board behind a port with a file descriptor (a socket pair) that is neither a
    pyserial socket:// nor a tty port: the driver select()s on it and reads with port.read()."""

    synchronous = False

    def __init__(self, handlers: dict | None = None) -> None:
        import socket

        super().__init__(handlers)
        self.near, self.far = socket.socketpair()
        self.near.setblocking(False)
        self.timeout = None
        self.sent = 0

    def fileno(self) -> int:
        return self.near.fileno()

    def write(self, wire: bytes) -> int:
        n = super().write(wire)
        self.sent += len(self.rx)
        self.far.sendall(bytes(self.rx))
        self.rx.clear()
        return n

    def read(self, n: int) -> bytes:
        try:
            return self.near.recv(n)
        except BlockingIOError:
            return b""

    @property
    def in_waiting(self) -> int:
        return 0

    def close(self) -> None:
        super().close()
        self.near.close()
        self.far.close()


def test_a_descriptor_port_is_read_after_select(monkeypatch):
    """kills PEChip._receive mutants on the descriptor path (select() arguments; port.read() when
    there is no Direct reader for the transport): PING over a socket-pair port, and a lost reply
    times out after the deadline instead of hanging."""
    b = FdBoard({PING: echo_ping})
    c = chip(b, monkeypatch)
    try:
        assert c._fd == b.fileno() and c._direct is None and b.timeout == 0
        assert c.ping(b"over a descriptor") == b"over a descriptor"
        assert c.stats.bytes_rx == b.sent > 0
        b.handlers[PING] = lambda b, r: b""
        with pytest.raises(ChipTimeout):
            c.transact(Opcode.PING, b"x", timeout_s=0.05)
    finally:
        c.close()
