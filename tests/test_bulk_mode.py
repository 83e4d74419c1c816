"""Issue 17 item 4: bulk mode on the wire (docs/protocol.md "Bulk mode", decision 0016).

- the bytes of a bulk unit are exactly what the spec's field layout gives, built here by an
  independent encoder (struct + textbook COBS from tests/wire_ref.py);
- the virtual board stages raw pieces, answers a corrupted or cut-short block DATA_CRC, and
  finds the frames such a block swallowed; BULK_GET returns the kept reply raw;
- the driver's bulk transfers give results bit-identical to the bounded (STAGE / FETCH) path
  and to a clean link under every link fault, or fail with an error (never partial data);
- a board without capability BULK is served through STAGE / FETCH.
"""
from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import bulkmode
from drivers.errors import DriverError
from drivers.pechip import PEChip
from firmware_iface import bulk
from firmware_iface.framing import RAW_IDLE_S, Frame, FrameDecoder, RawBlockError, encode_frame
from firmware_iface.spec import Capability, Opcode, PulseKind, Status
from sim_backend.board import make_board
from sim_backend.firmware import VirtualFirmware
from sim_backend.link import LinkModel
from sim_backend.server import _Pump, serve_tcp
from tests.wire_ref import HEADER, reference_frame, reference_uncobs

REF_BULK = struct.Struct("<IB3xIIII")
"""The BULK record as docs/protocol.md lays it out: id u32, opcode u8, 3 pad bytes, total u32,
offset u32, nbytes u32, crc u32 (little-endian, 24 bytes)."""
SESSION = 0x51E55

# --- exact bytes --------------------------------------------------------------------------


def ref_put(seq: int, tid: int, target: int, total: int, offset: int, data: bytes, crc: int | None = None) -> bytes:
    """A BULK_PUT unit from the spec alone: COBS frame with the BULK record, raw data, 0x00."""
    record = REF_BULK.pack(tid, target, total, offset, len(data), zlib.crc32(data) if crc is None else crc)
    return reference_frame(Opcode.BULK_PUT, seq, record, session=SESSION) + data + b"\x00"


def ref_read_unit(stream: bytes) -> tuple[dict, bytes, bytes]:
    """(header fields + BULK record, raw data, rest of the stream) of the first unit in ``stream``."""
    end = stream.index(b"\x00")
    body = reference_uncobs(stream[:end])
    assert zlib.crc32(body[:-4]) == struct.unpack("<I", body[-4:])[0]
    h = dict(zip(("version", "opcode", "flags", "status", "seq", "_rsv", "session", "echo", "length"),
                 HEADER.unpack_from(body)))
    payload = body[HEADER.size:-4]
    if h["status"] != 0 or len(payload) != REF_BULK.size:
        return h, b"", stream[end + 1:]
    h.update(zip(("id", "opcode_field", "total", "offset", "nbytes", "crc"), REF_BULK.unpack(payload)))
    raw = stream[end + 1:end + 1 + h["nbytes"]]
    assert stream[end + 1 + h["nbytes"]] == 0, "a raw block ends with 0x00"
    return h, raw, stream[end + 2 + h["nbytes"]:]


@pytest.mark.parametrize("data", [b"", b"\x00", b"abc\x00\x00def", bytes(range(256)) * 3, bytes(700)])
def test_bulk_unit_bytes_match_the_spec_layout(data):
    got = b"".join(bulk.bulk_unit(Frame(Opcode.BULK_PUT, 7, bulk.encode_bulk(
        bulk.bulk_header(0xA1B2C3D4, Opcode.UPLOAD_SPIKES, 5000, 1234, data)), session=SESSION), data))
    assert got == ref_put(7, 0xA1B2C3D4, Opcode.UPLOAD_SPIKES, 5000, 1234, data)


def test_bulk_record_hand_derived():
    """Spelled out byte by byte from the field table of docs/protocol.md."""
    data = b"\x00ab"
    crc = zlib.crc32(data)
    want = (bytes.fromhex("04030201") + b"\x20" + b"\x00\x00\x00" + bytes.fromhex("0a000000")
            + bytes.fromhex("07000000") + bytes.fromhex("03000000") + crc.to_bytes(4, "little"))
    assert bulk.encode_bulk(bulk.bulk_header(0x01020304, 0x20, 10, 7, data)) == want
    assert bulk.decode_bulk(want) == bulk.BulkHeader(0x01020304, 0x20, 10, 7, 3, crc)


# --- the board, byte by byte ------------------------------------------------------------


def _board() -> VirtualFirmware:
    fw = make_board(1, 0, "ideal")
    reply = fw.feed(reference_frame(Opcode.HELLO, 0, session=SESSION))
    assert ref_read_unit(reply)[0]["status"] == Status.OK
    return fw


def _replies(stream: bytes) -> list[dict]:
    out = []
    while stream.strip(b"\x00"):
        stream = stream.lstrip(b"\x00")
        h, raw, stream = ref_read_unit(stream)
        h["data"] = raw
        out.append(h)
    return out


def test_board_stages_raw_pieces_and_returns_the_kept_reply_raw():
    fw = _board()
    payload = bytes([0, 7, 0, 0, 9]) * 50  # 250 bytes, PING echoes them
    r = _replies(fw.feed(ref_put(1, 0xBEEF, Opcode.PING, 250, 0, payload[:120])
                         + ref_put(2, 0xBEEF, Opcode.PING, 250, 120, payload[120:])))
    assert [(x["status"], x["opcode"], x["seq"]) for x in r] == [(0, Opcode.BULK_PUT, 1), (0, Opcode.BULK_PUT, 2)]
    assert [x["length"] for x in r] == [4, 4]
    (commit,) = _replies(fw.feed(reference_frame(Opcode.COMMIT, 3, bulk.encode_commit(0xBEEF, Opcode.PING, 250),
                                                     session=SESSION)))
    assert commit["status"] == Status.OK
    (get,) = _replies(fw.feed(reference_frame(Opcode.BULK_GET, 4, struct.pack("<III", 0xBEEF, 3, 200),
                                                  session=SESSION)))
    assert (get["status"], get["id"], get["opcode_field"], get["total"], get["offset"], get["nbytes"]) == \
        (0, 0xBEEF, 0, 250, 3, 200)
    assert get["data"] == payload[3:203] and get["crc"] == zlib.crc32(payload[3:203])


def test_corrupted_raw_block_is_answered_data_crc_and_stores_nothing():
    fw = _board()
    unit = bytearray(ref_put(1, 0xC0DE, Opcode.PING, 64, 0, bytes(range(64))))
    unit[-10] ^= 0x08  # a bit of the raw block
    r = _replies(fw.feed(bytes(unit) + reference_frame(Opcode.PING, 2, b"next", session=SESSION)))
    assert (r[0]["status"], r[0]["seq"], r[0]["opcode"]) == (Status.DATA_CRC, 1, Opcode.BULK_PUT)
    assert r[0]["echo"] == struct.unpack("<I", reference_uncobs(bytes(unit[:unit.index(0)]))[-4:])[0]
    assert (r[-1]["status"], r[-1]["seq"]) == (Status.OK, 2)  # the link stays in step
    (commit,) = _replies(fw.feed(reference_frame(Opcode.COMMIT, 3, bulk.encode_commit(0xC0DE, Opcode.PING, 64),
                                                 session=SESSION)))
    assert commit["status"] == Status.NOT_READY


def test_lost_bulk_frame_gets_one_bad_frame_for_its_raw_bytes():
    fw = _board()
    unit = bytearray(ref_put(1, 0xF00, Opcode.PING, 3000, 0, bytes(1000) + os.urandom(2000)))
    unit[5] ^= 0x01  # inside the frame: its CRC fails, the raw bytes are garbage to the board
    r = _replies(fw.feed(bytes(unit)))
    assert [x["status"] for x in r] == [Status.BAD_FRAME]
    assert _replies(fw.feed(reference_frame(Opcode.PING, 2, b"ok", session=SESSION)))[0]["status"] == Status.OK
    assert _replies(fw.feed(b"\x07garbage\x00"))[0]["status"] == Status.BAD_FRAME  # answered again after it


def test_bulk_pieces_are_not_sequenced():
    fw = _board()
    fw.feed(reference_frame(Opcode.PING, 5, b"cached", session=SESSION))
    r = _replies(fw.feed(ref_put(5, 0xAB, Opcode.PING, 4, 0, b"wx") + ref_put(2, 0xAB, Opcode.PING, 4, 2, b"yz")))
    assert [x["status"] for x in r] == [Status.OK, Status.OK]  # not SEQ_REUSED, not STALE_SEQ
    assert fw.executed == 2  # HELLO and the PING: bulk pieces are not counted as sequenced commands


# --- the decoder: resynchronisation ---------------------------------------------------------


def _rule(frame: Frame):
    return bulk.board_raw_rule(frame)


def _put(seq: int, data: bytes) -> bytes:
    return ref_put(seq, 9, Opcode.PING, len(data), 0, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=600)), min_size=1, max_size=6),
       st.lists(st.integers(1, 700), min_size=1, max_size=12))
def test_decoder_splits_units_and_frames_whatever_the_chunking(items, cuts):
    stream, want = b"", []
    for i, (is_bulk, data) in enumerate(items):
        stream += _put(i, data) if is_bulk else reference_frame(Opcode.PING, i, data[:200], session=SESSION)
        want.append((Opcode.BULK_PUT, data) if is_bulk else (Opcode.PING, data[:200]))
    dec, got, pos, k = FrameDecoder(raw=_rule), [], 0, 0
    while pos < len(stream):
        n = cuts[k % len(cuts)]
        got += dec.feed_events(stream[pos:pos + n], now=0.0)
        pos, k = pos + n, k + 1
    assert [(f.opcode, bytes(f.data) if f.opcode == Opcode.BULK_PUT else f.payload) for f in got] == want
    assert dec.errors == 0 and dec.pending() == 0


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=50, max_size=400), st.integers(0, 10_000), st.integers(1, 40))
def test_decoder_finds_the_frames_after_a_damaged_block(data, where, cut):
    """A raw block missing ``cut`` bytes swallows what follows; once it fails its CRC its bytes
    are searched again and the frames that followed are still decoded; a block whose bytes
    differ from what was sent is never delivered."""
    unit = _put(1, data)
    head = unit.index(b"\x00") + 1
    pos = head + where % len(data)
    damaged = unit[:pos] + unit[pos + min(cut, len(data) - 1 - (pos - head)) or 1:]
    tail = reference_frame(Opcode.PING, 2, b"after", session=SESSION) + _put(3, data)
    dec = FrameDecoder(raw=_rule)
    events = dec.feed_events(damaged + tail, now=0.0)
    events += dec.abandon()
    frames = [e for e in events if isinstance(e, Frame)]
    assert any(f.opcode == Opcode.PING and f.payload == b"after" for f in frames)
    assert any(f.opcode == Opcode.BULK_PUT and bytes(f.data) == data for f in frames)
    assert not any(f.opcode == Opcode.BULK_PUT and bytes(f.data) != data for f in frames)


def test_decoder_abandons_a_block_idle_for_raw_idle_s():
    unit = _put(1, bytes(range(1, 101)))
    head = unit.index(b"\x00") + 1
    dec = FrameDecoder(raw=_rule)
    assert dec.feed_events(unit[:head + 10] + b"\x00", now=100.0) == []
    ping = reference_frame(Opcode.PING, 2, b"late", session=SESSION)
    assert dec.feed_events(ping, now=100.0 + RAW_IDLE_S / 2) == []  # still waiting: taken as raw
    events = dec.feed_events(b"\x00", now=100.0 + RAW_IDLE_S * 2)
    assert isinstance(events[0], RawBlockError) and events[0].frame.seq == 1
    assert [f.payload for f in events if isinstance(f, Frame)] == [b"late"]


# --- the driver ------------------------------------------------------------------------------


def _prepare(chip: PEChip) -> None:
    """Program the G+ columns high and lower the threshold: outputs with many spikes."""
    rows, cols = np.meshgrid(np.arange(128), np.arange(0, 24, 2), indexing="ij")
    chip.pulse(PulseKind.SET, rows.ravel(), cols.ravel(), 2.0, 1.5, 0.0, 1e-6)
    chip.write_register("THRESHOLD", 0.1)


SPIKES = np.random.default_rng(17).random((40, 300, 128)) < 0.05


def _session(chip: PEChip) -> dict:
    _prepare(chip)
    chip.upload_spikes(SPIKES)
    chip.run(len(SPIKES))
    counts, out = chip.read_outputs(len(SPIKES))
    return {"counts": counts, "out": out, "g": chip.read_array(), "stored": chip.status()["samples_stored"]}


def _same(a: dict, b: dict) -> None:
    assert all(np.array_equal(a[k], b[k]) for k in ("counts", "out", "g")) and a["stored"] == b["stored"]


@pytest.fixture(scope="module")
def clean():
    with PEChip("pesim://?seed=3&fidelity=typical&run_seed=4") as chip:
        ref = _session(chip)
        assert chip.stats.unsequenced > 0 and chip.stats.bulk_rounds > 0  # bulk mode was used
        assert ref["out"].sum() > 1000  # a readout worth the name
        return ref


def test_bulk_and_bounded_paths_agree(clean):
    with PEChip("pesim://?seed=3&fidelity=typical&run_seed=4") as chip:
        chip.use_bulk = False
        _same(_session(chip), clean)
        assert chip.stats.unsequenced == 0


def test_board_without_bulk_capability_is_served_by_stage_and_fetch(clean, monkeypatch):
    caps = VirtualFirmware._capabilities()
    monkeypatch.setattr(VirtualFirmware, "_capabilities", staticmethod(lambda: caps & ~Capability.BULK))
    with PEChip("pesim://?seed=3&fidelity=typical&run_seed=4") as chip:
        assert not chip.info().has(Capability.BULK)
        _same(_session(chip), clean)
        assert chip.stats.unsequenced == 0 and chip.stats.transfers > 0


@pytest.mark.parametrize("faults", ["ber=1e-5", "ber=1e-4", "drop=0.05", "dup=0.1", "stall=0.1", "reorder=0.1",
                                    "ber=3e-5&drop=0.02&dup=0.02&stall=0.02&reorder=0.02"])
def test_bulk_transfers_under_link_faults_match_a_clean_link(clean, faults):
    # a link seed under which every fault below happens in the session (asserted at the end)
    url = f"pesim://?seed=3&fidelity=typical&run_seed=4&link_seed=24&{faults}"
    with PEChip(url, retries=10) as chip:
        got = _session(chip)
        link = chip._port.link.stats
        stats = chip.stats
    _same(got, clean)
    assert sum(link.values()) > 0  # the faults really happened
    assert stats.bulk_rounds > 0


def test_a_transfer_on_a_dead_link_fails_with_an_error_and_stores_nothing():
    with PEChip("pesim://?seed=3&fidelity=ideal", retries=3, timeout_s=0.2) as chip:
        chip.info()
        chip.board_limits()
        link = chip._port.link
        link.drop, link.ber = 0.9, 1e-3
        t0 = time.monotonic()
        with pytest.raises(DriverError):
            chip.upload_spikes(SPIKES)
        assert time.monotonic() - t0 < 30
        link.drop = link.ber = 0.0
        assert chip.status()["samples_stored"] == 0  # nothing half-stored


@contextlib.contextmanager
def _faulty_tcp_board(**faults):
    fw = make_board(3, 4, "typical")
    stop = threading.Event()
    url, thread = serve_tcp(_Pump(fw, LinkModel(seed=5, **faults)), "127.0.0.1", 0, stop)
    try:
        yield url
    finally:
        stop.set()
        thread.join(5)


def test_bulk_transfers_over_a_faulty_tcp_link_match_a_clean_link(clean):
    """Real socket:// with timeouts and the raw-block idle rule in play (drops cut blocks short)."""
    with _faulty_tcp_board(ber=1e-5, drop=0.02, dup=0.01) as url:
        with PEChip(url, retries=10, timeout_s=0.5) as chip:
            got = _session(chip)
            stats = chip.stats
    _same(got, clean)
    assert stats.retries > 0 or stats.bad_frames > 0


def test_piece_size_adapts_to_the_link():
    with PEChip("pesim://?seed=3&fidelity=ideal&ber=1e-4&link_seed=2", retries=10) as chip:
        chip.upload_spikes(SPIKES[:8])
        assert chip.bulk_piece < bulkmode.PIECE_MAX  # a first round that lost pieces starts the next smaller
    with PEChip("pesim://?seed=3&fidelity=ideal") as chip:
        chip.bulk_piece = 4096
        chip.upload_spikes(SPIKES[:8])
        assert chip.bulk_piece == 8192  # a clean round doubles it


def test_direct_io_only_where_bytes_pass_unchanged():
    """socket:// and pty ports are read and written on their descriptor; rfc2217:// (telnet-
    escaped bytes on a socket) and the in-process simulator go through pyserial."""
    import socket

    import serial.rfc2217

    from drivers.transport import Direct, open_link

    srv = socket.create_server(("127.0.0.1", 0))
    try:
        port = open_link(f"socket://127.0.0.1:{srv.getsockname()[1]}")
        try:
            assert Direct.of(port) is not None
            assert port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            port.close()
    finally:
        srv.close()
    telnet = serial.rfc2217.Serial()
    telnet._socket = socket.socket()
    try:
        assert Direct.of(telnet) is None
    finally:
        telnet._socket.close()
    assert Direct.of(open_link("pesim://?seed=1")) is None
