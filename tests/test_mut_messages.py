"""Payload layouts of firmware_iface/messages.py against docs/protocol.md (issue 18).

Every expected byte string here is built by hand with ``struct.pack`` from the field tables of
docs/protocol.md, section "Records" (packed little-endian, ``_pad`` fields zero), never from the
code under test's own output.  The format strings below are transcribed from those tables.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_iface import messages as msg
from firmware_iface.records import PayloadError
from firmware_iface.spec import Capability, ReadMode

# docs/protocol.md "Records" -- one format per table, fields in table order
INFO = "<QBBBBHHHHHHIIIIII"          # INFO (48 bytes)
HELLO = "<BBBBIIIHHII"               # HELLO (28 bytes)
READ_REQ = "<IHBBI"                  # READ_REQ (12 bytes)
CELL = "<BB"                         # CELL (2 bytes)
WAIT = "<Q"                          # WAIT (8 bytes)
DONE = "<IIQ"                        # DONE (16 bytes)
RUN = "<II"                          # RUN (8 bytes)
REG = "<HHI"                         # REG (8 bytes)
STATUS = "<BBHQIIIIII"               # STATUS (36 bytes)
COUNT = "<I"                         # COUNT (4 bytes)
PULSE = "<BBBBHHHHI"                 # PULSE (16 bytes)


def test_record_formats_have_the_documented_sizes():
    """The hand formats above match the sizes in the section headings of docs/protocol.md."""
    assert [struct.calcsize(f) for f in (INFO, HELLO, READ_REQ, CELL, WAIT, DONE, RUN, REG, STATUS,
                                         COUNT, PULSE)] == [48, 28, 12, 2, 8, 16, 8, 8, 36, 4, 16]


def _info(**kw) -> msg.ChipInfo:
    base = dict(chip_id=0x0123456789ABCDEF, firmware_version="2.7.11", protocol_version=2, rows=128,
                columns=24, neurons=20, pes=4, levels_s=(1e-6, 2.5e-5, 5e-5), max_steps=4096,
                dt_min_s=10e-9, dt_max_s=10e-3, latency_s=3.5e-6, sample_slots=300,
                max_payload=65536, capabilities=int(Capability.WRITE_VERIFY | Capability.BOUNDED))
    base.update(kw)
    return msg.ChipInfo(**base)


def _info_bytes() -> bytes:
    """docs/protocol.md INFO (48 bytes) then levels x f32 (op.get_info)."""
    return (struct.pack(INFO, 0x0123456789ABCDEF, 2, 7, 11, 2, 128, 24, 20, 4, 3, 4096, 10, 10_000_000,
                        3500, 300, 65536, 1 | 16)
            + struct.pack("<3f", 1e-6, 2.5e-5, 5e-5))


def test_encode_info_lays_out_every_field_as_the_spec_says():
    """kills messages.encode_info mutants (a field dropped / swapped / mis-scaled, levels count
    or the f32 level array wrong): [op.get_info] INFO record then `levels` x f32."""
    assert msg.encode_info(_info()) == _info_bytes()


def test_info_time_fields_scale_exactly_by_1e9():
    """kills messages.encode_info mutants on the s -> ns factors (e.g. 1e9 -> 1000000001.0, which
    only shows on second-scale values): dt 1.5 s / 3 s and latency 2.5 s fit the u32 ns fields."""
    raw = msg.encode_info(_info(dt_min_s=1.5, dt_max_s=3.0, latency_s=2.5))
    assert struct.unpack_from("<III", raw, 24) == (1_500_000_000, 3_000_000_000, 2_500_000_000)
    back = msg.decode_info(raw)
    assert (back.dt_min_s, back.dt_max_s, back.latency_s) == pytest.approx((1.5, 3.0, 2.5), rel=1e-12)


def test_decode_info_reads_every_field_in_si_units():
    """kills messages.decode_info mutants: each field taken from its documented offset,
    ns -> s scaling, firmware version assembled major.minor.patch."""
    i = msg.decode_info(_info_bytes())
    assert i.chip_id == 0x0123456789ABCDEF and i.firmware_version == "2.7.11"
    assert (i.protocol_version, i.rows, i.columns, i.neurons, i.pes) == (2, 128, 24, 20, 4)
    assert i.max_steps == 4096 and i.sample_slots == 300 and i.max_payload == 65536
    assert i.capabilities == 17
    assert i.dt_min_s == pytest.approx(10e-9, rel=1e-12)
    assert i.dt_max_s == pytest.approx(10e-3, rel=1e-12)
    assert i.latency_s == pytest.approx(3.5e-6, rel=1e-12)
    assert i.levels == 3
    assert i.levels_s == tuple(float(np.float32(x)) for x in (1e-6, 2.5e-5, 5e-5))
    with pytest.raises(PayloadError):
        msg.decode_info(_info_bytes() + b"\x00")      # trailing byte after the levels
    with pytest.raises(Exception):
        msg.decode_info(_info_bytes()[:-1])           # one level byte short


def test_chip_info_as_dict_is_the_documented_summary():
    """kills messages.ChipInfo.as_dict mutants: chip_id as 16 hex digits, every field under its
    own key, capabilities as the names of the set bits (spec Enumerations: WRITE_VERIFY = 1,
    BOUNDED = 16), levels = number of levels."""
    d = _info().as_dict()
    assert d == {
        "chip_id": "0123456789abcdef", "firmware_version": "2.7.11", "protocol_version": 2,
        "rows": 128, "columns": 24, "neurons": 20, "pes": 4, "levels": 3,
        "levels_s": [1e-6, 2.5e-5, 5e-5], "max_steps": 4096, "dt_min_s": 10e-9, "dt_max_s": 10e-3,
        "latency_s": 3.5e-6, "sample_slots": 300, "max_payload": 65536,
        "capabilities": ["WRITE_VERIFY", "BOUNDED"],
    }
    assert _info(chip_id=5).as_dict()["chip_id"] == "0000000000000005"
    assert _info().has(Capability.BOUNDED) and not _info().has(Capability.BULK)


def _hello() -> msg.Hello:
    return msg.Hello(protocol_version=2, firmware_version="3.1.4", session=0xDEADBEEF, max_payload=65536,
                     max_frame=65600, v_max_v=4.5, width_max_s=100e-6, capabilities=0b100011)


def _hello_bytes() -> bytes:
    """docs/protocol.md HELLO (28 bytes): protocol, fw major/minor/patch, session, max_payload,
    max_frame, v_max_mv, _pad, width_max_ns, capabilities."""
    return struct.pack(HELLO, 2, 3, 1, 4, 0xDEADBEEF, 65536, 65600, 4500, 0, 100_000, 0b100011)


def test_encode_hello_lays_out_every_field_as_the_spec_says():
    """kills messages.encode_hello mutants (e.g. a field dropped -> zero, V -> mV or s -> ns scale
    wrong): [op.hello] HELLO record."""
    assert msg.encode_hello(_hello()) == _hello_bytes()


def test_hello_width_scales_exactly_by_1e9():
    """kills messages.encode_hello mutants on the s -> ns factor (visible on a 2 s width)."""
    raw = msg.encode_hello(msg.Hello(2, "1.0.0", 1, 64, 64, 1.0, 2.0, 0))
    assert struct.unpack_from("<HHI", raw, 16) == (1000, 0, 2_000_000_000)


def test_decode_hello_reads_every_field_in_si_units():
    """kills messages.decode_hello mutants; a trailing byte is refused."""
    h = msg.decode_hello(_hello_bytes())
    assert h == msg.Hello(protocol_version=2, firmware_version="3.1.4", session=0xDEADBEEF,
                          max_payload=65536, max_frame=65600, v_max_v=4.5, width_max_s=1e-4,
                          capabilities=0b100011)
    with pytest.raises(PayloadError):
        msg.decode_hello(_hello_bytes() + b"\x00")


def test_encode_read_list_mode_appends_one_cell_record_per_cell():
    """kills messages.encode_read mutants: [op.read_cells] READ_REQ then `count` x CELL (LIST)."""
    req = msg.ReadRequest(ReadMode.LIST, 200_000, 4, 0, np.array([3, 127]), np.array([5, 23]))
    want = struct.pack(READ_REQ, 200_000, 4, 0, 0, 2) + struct.pack(CELL, 3, 5) + struct.pack(CELL, 127, 23)
    assert msg.encode_read(req) == want


def test_encode_read_row_mode_is_the_header_only():
    """kills messages.encode_read mutants: ROW mode carries `row`, count 0, no CELL records."""
    req = msg.ReadRequest(ReadMode.ROW, 150_000, 2, 17)
    assert msg.encode_read(req) == struct.pack(READ_REQ, 150_000, 2, 1, 17, 0)


def test_decode_read_list_mode_returns_the_cells_in_order():
    """kills messages.decode_read mutants (mode, voltage, averages, row, cells)."""
    payload = struct.pack(READ_REQ, 123_456, 7, 0, 0, 3) + bytes([1, 2, 3, 4, 5, 6])
    r = msg.decode_read(payload)
    assert r.mode == ReadMode.LIST and r.v_read_uv == 123_456 and r.averages == 7 and r.row == 0
    assert r.rows.tolist() == [1, 3, 5] and r.cols.tolist() == [2, 4, 6]
    assert r.rows.dtype == np.int64 and r.cols.dtype == np.int64


def test_decode_read_row_and_array_modes_have_no_cells():
    """kills messages.decode_read mutants: ROW keeps its row, ARRAY / ROW have rows = cols = None."""
    r = msg.decode_read(struct.pack(READ_REQ, 1000, 1, 1, 9, 0))
    assert (r.mode, r.row, r.rows, r.cols) == (ReadMode.ROW, 9, None, None)
    a = msg.decode_read(struct.pack(READ_REQ, 1000, 1, 2, 0, 0))
    assert (a.mode, a.rows, a.cols) == (ReadMode.ARRAY, None, None)


def test_decode_read_refuses_an_unknown_mode_naming_it():
    """kills messages.decode_read mutants on the mode check ([op.read_cells]: unknown mode ->
    BAD_PAYLOAD); the message names the mode."""
    with pytest.raises(PayloadError, match="^READ_CELLS mode 3 unknown$"):
        msg.decode_read(struct.pack(READ_REQ, 1000, 1, 3, 0, 0))


def test_decode_read_refuses_trailing_bytes():
    """kills messages.decode_read mutants that skip the end check."""
    with pytest.raises(PayloadError):
        msg.decode_read(struct.pack(READ_REQ, 1000, 1, 1, 0, 0) + b"\x00")
    with pytest.raises(PayloadError):   # LIST with one more byte than count cells
        msg.decode_read(struct.pack(READ_REQ, 1000, 1, 0, 0, 1) + bytes([1, 2, 3]))


def test_conductances_are_little_endian_f32():
    """kills messages.encode/decode_conductances mutants: [op.read_cells] reply is n x f32 (S)."""
    g = [1e-6, 3.25e-5, 0.0]
    raw = struct.pack("<3f", *g)
    assert msg.encode_conductances(np.array(g)) == raw
    out = msg.decode_conductances(raw)
    assert out.dtype == np.float64
    assert out.tolist() == [float(np.float32(x)) for x in g]
    assert msg.decode_conductances(b"").size == 0


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_a_conductance_payload_not_a_multiple_of_four_is_refused(n):
    """kills messages.decode_conductances mutants on the length check (e.g. `% 4` -> `% 5`):
    the message names the length."""
    with pytest.raises(PayloadError, match=f"^conductance payload of {n} bytes is not a multiple of 4$"):
        msg.decode_conductances(bytes(n))


def test_wait_record_is_one_u64_of_ns():
    """kills messages.encode_wait / decode_wait mutants: [op.wait] WAIT record (8 bytes)."""
    assert msg.encode_wait(10**16) == struct.pack(WAIT, 10**16)
    assert msg.decode_wait(struct.pack(WAIT, 123_456_789_012)) == 123_456_789_012


def test_decode_wait_refuses_a_short_or_long_payload():
    """kills messages.decode_wait mutants that drop the end check."""
    with pytest.raises(PayloadError):
        msg.decode_wait(struct.pack(WAIT, 5) + b"\x00")
    with pytest.raises(PayloadError, match="^WAIT: 2 unexpected trailing bytes$"):
        msg.decode_wait(struct.pack(WAIT, 5) + b"\x01\x02")
    with pytest.raises(PayloadError):
        msg.decode_wait(b"\x00" * 7)


def test_done_record_and_its_offset():
    """kills messages.encode_done / decode_done mutants: DONE (16 bytes) count, _pad, chip_ns;
    decode returns the offset after the record."""
    assert msg.encode_done(3, 2**40 + 7) == struct.pack(DONE, 3, 0, 2**40 + 7)
    payload = b"\xAA" * 5 + struct.pack(DONE, 9, 0, 12345) + b"tail"
    assert msg.decode_done(payload, 5) == (9, 12345, 21)


def test_run_and_reg_records():
    """kills messages.encode/decode_run and _reg mutants: RUN (slot, n), REG (reg, _pad, code)."""
    assert msg.encode_run(7, 300) == struct.pack(RUN, 7, 300)
    assert msg.decode_run(struct.pack(RUN, 11, 22)) == (11, 22)
    assert msg.encode_reg(0x12, 0xABCDE) == struct.pack(REG, 0x12, 0, 0xABCDE)
    assert msg.encode_reg(5) == struct.pack(REG, 5, 0, 0)
    assert msg.decode_reg(struct.pack(REG, 0x21, 0, 77)) == (0x21, 77)
    for bad, fn in ((struct.pack(RUN, 1, 2) + b"\x00", msg.decode_run),
                    (struct.pack(REG, 1, 0, 2) + b"\x00", msg.decode_reg)):
        with pytest.raises(PayloadError):
            fn(bad)


def test_status_record_fields():
    """kills messages.decode_status / encode_status mutants: STATUS (36 bytes) without the pads."""
    raw = struct.pack(STATUS, 1, 4, 0, 2**33 + 1, 10, 11, 12, 13, 14, 0)
    assert msg.decode_status(raw) == {"state": 1, "last_error": 4, "chip_ns": 2**33 + 1, "frames_rx": 10,
                                      "bad_frames": 11, "duplicates": 12, "samples_stored": 13,
                                      "outputs_ready": 14}
    assert msg.encode_status(state=1, last_error=4, chip_ns=2**33 + 1, frames_rx=10, bad_frames=11,
                             duplicates=12, samples_stored=13, outputs_ready=14) == raw
    with pytest.raises(PayloadError):
        msg.decode_status(raw + b"\x00")


def test_pulse_records_round_to_whole_mv_and_ns():
    """kills messages.pulse_records / encode_pulses mutants: [op.pulse] COUNT then PULSE records,
    voltages rounded to whole mV and widths to whole ns (field by field, in order)."""
    p = msg.pulse_records([1, 2], [3, 4], [5, 6], [2.0004, 0.0], [1.8, 3.3], [0.0, 2.5006], [1e-6, 2.4996e-7])
    want = (struct.pack(COUNT, 2)
            + struct.pack(PULSE, 1, 3, 5, 0, 2000, 1800, 0, 0, 1000)
            + struct.pack(PULSE, 2, 4, 6, 0, 0, 3300, 2501, 0, 250))
    assert msg.encode_pulses(p) == want
    back = msg.decode_pulses(want)
    assert back["v_sl_mv"].tolist() == [0, 2501] and back["width_ns"].tolist() == [1000, 250]
    with pytest.raises(PayloadError):
        msg.decode_pulses(want + b"\x00")


def test_float32_widths_round_from_their_exact_value():
    """kills messages.pulse_records mutant (width array not taken as float64): a float32 width of
    4.2535e-6 s is exactly 4253.49995... ns, so the whole ns is 4253; multiplying in float32
    first would give 4253.5 -> 4254."""
    w = np.float32(4.2535e-06)
    assert float(w) * 1e9 < 4253.5
    p = msg.pulse_records([1], [0], [0], [1.0], [1.0], [0.0], np.array([w]))
    assert p["width_ns"].tolist() == [4253]
