"""Issue 17 item 4, the copies of the link: a BULK_GET raw block is collected straight into
its place in the result (FrameDecoder.sink, raw_target / raw_received), and a bulk round goes
out in gathered writes (drivers/transport.Direct.send_some).  Every stream here is built from
docs/protocol.md's layout by the independent encoder of tests/wire_ref.py."""
from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.pechip import PEChip
from drivers.transport import Direct
from firmware_iface.framing import Frame, FrameDecoder, RawBlockError
from firmware_iface.bulk import host_raw_rule
from firmware_iface.spec import Opcode
from sim_backend.board import make_board
from sim_backend.link import LinkModel
from sim_backend.server import _Pump, serve_pty, serve_tcp
from tests.wire_ref import reference_frame

REF_BULK = struct.Struct("<IB3xIIII")
"""BULK record (docs/protocol.md): id, opcode, 3 pad bytes, total, offset, nbytes, crc."""
TOTAL = 4096


def ref_get_reply(seq: int, offset: int, data: bytes, crc: int | None = None) -> bytes:
    """A BULK_GET reply unit from the spec: response frame with the BULK record, raw data, 0x00."""
    record = REF_BULK.pack(9, 0, TOTAL, offset, len(data), zlib.crc32(data) if crc is None else crc)
    return reference_frame(Opcode.BULK_GET, seq, record, flags=1) + data + b"\x00"


def _decoder(out: bytearray) -> FrameDecoder:
    dec = FrameDecoder(raw=host_raw_rule)
    dec.sink = lambda frame, n: memoryview(out)[struct.unpack_from("<I", frame.payload, 12)[0]:][:n]
    return dec


DATA = bytes(range(256)) * 3 + bytes(200) + b"\x00\x01\x00"  # zero bytes: a raw block is not stuffed


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 2 * len(DATA)), max_size=8))
def test_sink_collects_the_block_in_place_however_the_stream_is_cut(cuts):
    """kills FrameDecoder._parse's sink branch (bytes placed at the wrong offset, lost at a
    cut, or the block handed out as a copy instead of the caller's view)."""
    stream = ref_get_reply(3, 1000, DATA) + reference_frame(Opcode.STATUS, 4, b"", flags=1)
    out = bytearray(TOTAL)
    dec = _decoder(out)
    got: list = []
    edges = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    for a, b in zip(edges, edges[1:]):
        got += dec.feed_events(stream[a:b])
    assert [(type(f).__name__, f.opcode, f.seq) for f in got] == [("Frame", Opcode.BULK_GET, 3),
                                                                  ("Frame", Opcode.STATUS, 4)]
    data = got[0].data
    assert isinstance(data, memoryview) and data.obj is out and bytes(data) == DATA
    assert out == bytes(1000) + DATA + bytes(TOTAL - 1000 - len(DATA))  # nothing outside the place


def test_sink_block_failing_its_crc_is_reported_and_its_swallowed_frames_found():
    """kills FrameDecoder._fail_raw with a sink (the collected bytes not searched again): a
    block cut short swallows the next frame; the CRC fails; that frame is still found."""
    cut = DATA[:500]  # 500 of the 1,271 announced bytes arrive (and the block's closing 0x00),
    status = reference_frame(Opcode.STATUS, 4, b"", flags=1)  # then a STATUS reply, then more
    filler = b"\x55" * (len(DATA) - len(cut) - 1 - len(status))
    stream = ref_get_reply(3, 1000, DATA)[:-len(DATA) - 1] + cut + b"\x00" + status + filler + b"\x00"
    out = bytearray(TOTAL)
    events = _decoder(out).feed_events(stream)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RawBlockError" and events[0].frame.seq == 3
    frames = [e for e in events if isinstance(e, Frame)]
    assert [(f.opcode, f.seq) for f in frames] == [(Opcode.STATUS, 4)]
    assert out[:1000] == bytes(1000) and out[1000 + len(DATA):] == bytes(TOTAL - 1000 - len(DATA))


def test_raw_target_takes_bytes_read_straight_into_the_result():
    """kills FrameDecoder.raw_target / raw_received (a direct read not counted, or the block
    completed before its last byte)."""
    out = bytearray(TOTAL)
    dec = _decoder(out)
    unit = ref_get_reply(5, 64, DATA)
    head = len(unit) - len(DATA) - 1
    assert dec.feed_events(unit[:head + 10]) == []  # the frame and the first 10 raw bytes
    rest = DATA[10:] + b"\x00"
    events: list = []
    for _ in range(len(rest)):  # bounded: a decoder that never completes the block fails here
        target = dec.raw_target()
        if target is None:
            break
        n = min(300, len(target), len(rest))
        target[:n] = rest[:n]
        rest = rest[n:]
        events += dec.raw_received(n)
        assert events == [] or not rest[:-1]  # nothing is complete before the last raw byte
        assert n > 0, "the decoder still wants raw bytes after all of them were read"
    assert len(events) == 1 and events[0].seq == 5 and bytes(events[0].data) == DATA
    assert rest == b"\x00" and dec.feed_events(rest) == []  # the block's closing delimiter
    assert out[64:64 + len(DATA)] == DATA


def test_a_block_with_a_bad_crc_read_in_place_is_refused():
    """kills the CRC check on a block collected in place (raw_received completing it)."""
    out = bytearray(TOTAL)
    dec = _decoder(out)
    unit = ref_get_reply(5, 0, DATA, crc=zlib.crc32(DATA) ^ 1)
    head = len(unit) - len(DATA) - 1
    dec.feed_events(unit[:head])
    target = dec.raw_target()
    target[:] = DATA
    events = dec.raw_received(len(DATA))
    assert isinstance(events[0], RawBlockError) and events[0].frame.seq == 5
    assert not [e for e in events if isinstance(e, Frame)]


@contextlib.contextmanager
def _board(kind: str):
    fw = make_board(3, 4, "ideal")
    stop = threading.Event()
    pump = _Pump(fw, LinkModel(seed=5))
    url, thread = serve_tcp(pump, "127.0.0.1", 0, stop) if kind == "tcp" else serve_pty(pump, stop)
    try:
        yield url, fw
    finally:
        stop.set()
        thread.join(5)
        for fd in getattr(thread, "fds", ()):
            os.close(fd)


@pytest.mark.parametrize("kind", ["tcp", "pty"])
def test_bulk_rounds_read_in_place_and_write_gathered_with_the_same_results(kind, monkeypatch):
    """kills drivers.bulkmode._take_in / _Get.sink (a readout through direct reads that
    differs from the bounded path's) and _send_parts (an upload stored differently)."""
    reads = []
    real = Direct.read_into
    monkeypatch.setattr(Direct, "read_into", lambda self, view: reads.append(len(view)) or real(self, view))
    spikes = np.random.default_rng(5).random((60, 300, 128)) < 0.05
    with _board(kind) as (url, fw), PEChip(url, timeout_s=10) as chip:
        chip.bulk_piece = 16384
        chip.upload_spikes(spikes)
        bulk_g = chip.read_array()
        chip.use_bulk = False
        assert np.array_equal(chip.read_array(), bulk_g)
        for i, sample in enumerate(spikes):  # stored as sent: bits little-endian, step-major
            packed, steps = fw.inputs[i]
            assert steps == 300 and np.array_equal(packed, np.packbits(sample.ravel(), bitorder="little"))
    assert bulk_g.shape == (128, 24)
    if kind == "pty":  # a pty hands over a few KiB per read: most of the block is read in place
        assert len(reads) > 0


def test_an_upload_round_goes_out_in_a_few_gathered_writes(monkeypatch):
    """kills drivers.bulkmode._send_parts' gathered path (each part, or each 64 KiB slice,
    written by its own system call): a 1.2 MB upload in 256 KiB pieces is 5 raw blocks, 10
    small frames and their delimiters -- 16 parts, 19 slices of 64 KiB -- that fit the 4 MiB
    socket buffer, so a handful of sendmsg calls take them all."""
    from serial.urlhandler.protocol_socket import Serial as SocketSerial

    calls = []  # every write the driver makes, through pyserial or on the descriptor
    for cls, name in ((SocketSerial, "write"), (Direct, "write"), (Direct, "send_some")):
        real = getattr(cls, name)
        monkeypatch.setattr(cls, name, lambda self, data, _real=real: calls.append(1) or _real(self, data))
    spikes = np.random.default_rng(6).random((250, 300, 128)) < 0.05
    with _board("tcp") as (url, fw), PEChip(url, timeout_s=10) as chip:
        chip.info(), chip.board_limits()
        calls.clear()
        chip.upload_spikes(spikes)
        assert len(fw.inputs) == 250
    assert len(calls) <= 8, len(calls)


def test_without_gathered_socket_writes_an_upload_still_arrives_whole(monkeypatch):
    """kills Direct.send_some's fallback for a platform without sendmsg (Windows): one buffer
    per call must still send the round in order and in full."""
    import drivers.transport as transport

    monkeypatch.setattr(transport, "_GATHER", False)
    spikes = np.random.default_rng(7).random((120, 300, 128)) < 0.05
    with _board("tcp") as (url, fw), PEChip(url, timeout_s=10) as chip:
        chip.upload_spikes(spikes)
        for i, sample in enumerate(spikes):
            assert np.array_equal(fw.inputs[i][0], np.packbits(sample.ravel(), bitorder="little"))
