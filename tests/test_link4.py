"""Issue 17 item 4 (link4): what the ends of a bulk transfer do with the bytes once they arrive.

- A raw block's CRC-32 is carried along as its bytes arrive (each chunk checked while it is
  still in cache), so it must still cover every byte however the block came: partly copied
  out of the decoder's buffer, partly read in place, in any cuts.
- The board holds the replies of a burst while more of it is already waiting, and writes them
  together once the burst is over: one write (and one host wake-up) per upload round instead
  of one per piece.
- UPLOAD_SPIKES decodes an all-dense upload by comparing its sample headers as bytes; any
  other header (pad bytes set, an AER sample) takes the per-sample path, which must decide
  alike.

Every wire stream is built from docs/protocol.md's layout by tests/wire_ref.py's encoder, and
every CRC here is zlib's, not the decoder's."""
from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_iface.bulk import host_raw_rule
from firmware_iface.framing import Frame, FrameDecoder, RawBlockError
from firmware_iface.spec import Opcode
from firmware_iface.spikes import decode_upload, decode_upload_packed, encode_upload
from tests.wire_ref import reference_frame

REF_BULK = struct.Struct("<IB3xIIII")
"""BULK record (docs/protocol.md): id, opcode, 3 pad bytes, total, offset, nbytes, crc."""
REF_UPLOAD = struct.Struct("<IIHH")
"""UPLOAD record (docs/protocol.md): slot, n, steps, rows."""


@settings(max_examples=80, deadline=None)
@given(block=st.binary(min_size=1, max_size=3000), data=st.data())
def test_the_running_crc_covers_every_byte_however_the_block_arrives(block, data):
    """kills FrameDecoder's running CRC-32 (framing._crc_got) skipping the bytes copied out of
    its buffer, skipping a chunk read in place, not reset between blocks, or trusted for a
    block that arrived whole: a block with one byte changed on the way is refused wherever
    that byte is and however the block was cut; the intact block is accepted."""
    total = len(block)
    copied = data.draw(st.integers(0, total), label="bytes arriving with the frame")
    cuts = sorted(data.draw(st.lists(st.integers(copied, total), max_size=5), label="in-place cuts"))
    flip = data.draw(st.one_of(st.none(), st.integers(0, total - 1)), label="byte changed")
    sent = bytearray(block)
    if flip is not None:
        sent[flip] ^= 0x5A
    out = bytearray(total)
    dec = FrameDecoder(raw=host_raw_rule)
    dec.sink = lambda frame, n: memoryview(out)[:n]
    events: list = []
    for seq in (3, 4):  # two blocks in a row: the second must not inherit the first one's CRC
        record = REF_BULK.pack(9, 0, total, 0, total, zlib.crc32(block))
        head = reference_frame(Opcode.BULK_GET, seq, record, flags=1)
        events += dec.feed_events(head + bytes(sent[:copied]))
        edges = [copied, *cuts, total]
        for a, b in zip(edges, edges[1:]):
            if b > a:
                target = dec.raw_target()
                assert target is not None and len(target) == total - a
                target[:b - a] = sent[a:b]
                events += dec.raw_received(b - a)
        events += dec.feed_events(b"\x00")
    blocks = [e for e in events if isinstance(e, Frame) and e.opcode == Opcode.BULK_GET]
    refused = [e for e in events if isinstance(e, RawBlockError)]
    if flip is None:
        assert [f.seq for f in blocks] == [3, 4] and not refused
        assert all(bytes(f.data) == block for f in blocks)
    else:
        assert not blocks and [e.frame.seq for e in refused] == [3, 4]


def test_a_bursts_replies_leave_the_board_in_one_write(monkeypatch):
    """kills sim_backend.server's held replies (a reply written as soon as its piece is
    handled): an upload round of five BULK_PUT pieces and its COMMIT, all waiting in the
    board's socket, is answered by one write carrying the six replies -- and the upload
    arrives intact (the board's sample memory holds it bit for bit)."""
    from drivers import bulkmode
    from drivers.pechip import PEChip
    from sim_backend import server
    from sim_backend.board import make_board
    from sim_backend.link import LinkModel

    writes: list[int] = []
    real = server._write_parts
    monkeypatch.setattr(server, "_write_parts",
                        lambda write, parts, stop: (writes.append(len(parts)), real(write, parts, stop))[1])
    fw = make_board(2, 0, "ideal")
    pump = server._Pump(fw, LinkModel())
    stop = threading.Event()
    url, thread = server.serve_tcp(pump, "127.0.0.1", 0, stop)
    sp = np.random.default_rng(7).random((60, 300, 128)) < 0.05
    try:
        with PEChip(url, timeout_s=10) as chip:
            chip.info(), chip.board_limits()
            # 60 samples: UPLOAD record (12 B) + 60 x (SAMPLE 8 B + 300 x 128 / 8 B) = 288,492 B,
            # i.e. five 64 KiB pieces and the COMMIT
            chip.bulk_piece = 64 * 1024
            errors: list = []

            def upload() -> None:
                try:
                    chip.upload_spikes(sp, slot=0)
                except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                    errors.append(exc)

            written = threading.Event()
            real_send = bulkmode.BulkMode._send_parts

            def send_parts(self, parts, on_events):
                real_send(self, parts, on_events)
                written.set()  # the round's write loop is over: every byte is in the socket

            monkeypatch.setattr(bulkmode.BulkMode, "_send_parts", send_parts)
            with pump.guard:  # the board stops at the round's first bytes until all of it is there
                writes.clear()
                host = threading.Thread(target=upload)
                host.start()
                assert written.wait(10)
            host.join(10)
            assert not errors and not host.is_alive()
            assert writes == [6], writes  # five COUNT replies and the COMMIT's RESULT, together
            stored = np.stack([np.unpackbits(fw.inputs[s][0], bitorder="little")[:300 * 128] for s in range(60)])
            assert np.array_equal(stored.reshape(60, 300, 128).astype(bool), sp)
    finally:
        stop.set()
        thread.join(5)


def _upload(slot: int, samples: list[tuple[int, int, bytes]], steps: int, rows: int) -> bytes:
    """An UPLOAD_SPIKES payload from docs/protocol.md: UPLOAD record, then per sample a SAMPLE
    record (encoding u8, 3 pad bytes -- here all ``pad`` --, nbytes u32) and its data."""
    out = REF_UPLOAD.pack(slot, len(samples), steps, rows)
    for enc, pad, data in samples:
        out += struct.pack("<B3BI", enc, pad, pad, pad, len(data)) + data
    return out


def _dense(bits: np.ndarray) -> bytes:
    """Dense data of one sample (docs/protocol.md): steps x rows bits, LSB first, zero-padded."""
    flat = bits.reshape(-1).astype(np.uint8)
    flat = np.concatenate([flat, np.zeros(-len(flat) % 8, np.uint8)])
    return bytes(int(sum(int(b) << k for k, b in enumerate(flat[i:i + 8]))) for i in range(0, len(flat), 8))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), steps=st.integers(1, 9), rows=st.integers(1, 12),
       pad=st.integers(0, 255), odd=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_dense_uploads_decode_alike_whichever_path_their_headers_take(n, steps, rows, pad, odd, seed):
    """kills firmware_iface.spikes.decode_upload_packed's all-dense fast path decoding other
    bits than the per-sample path (wrong offset or stride, pad bits kept) or taking headers it
    must not (a pad byte set, one sample AER): the spikes come back as sent either way."""
    sp = np.random.default_rng(seed).random((n, steps, rows)) < 0.3
    odd %= n
    samples = [(0, pad if i == odd else 0, _dense(sp[i])) for i in range(n)]
    if steps * rows % 8:  # pad bits set in every sample's last byte: not spikes (docs/protocol.md)
        samples = [(e, p, d[:-1] + bytes([d[-1] | (0xFF << (steps * rows % 8)) & 0xFF])) for e, p, d in samples]
    slot, got, _ = decode_upload(_upload(11, samples, steps, rows))
    assert slot == 11 and np.array_equal(got, sp)
    _, packed, _, _, _ = decode_upload_packed(_upload(11, samples, steps, rows))
    assert not np.unpackbits(packed, axis=1, bitorder="little")[:, steps * rows:].any()  # pad bits 0: its contract
    words = sorted(s * 256 + r for s, r in zip(*np.nonzero(sp[odd])))
    samples[odd] = (1, 0, struct.pack(f"<{len(words)}I", *words))  # that sample as AER instead
    slot, got, encs = decode_upload(_upload(11, samples, steps, rows))
    assert np.array_equal(got, sp) and list(encs) == [int(i == odd) for i in range(n)]


def test_the_board_stores_an_upload_as_encode_upload_sent_it():
    """the shipped encoder and the board's decoder, all dense (the fast path), 300 x 128 bits:
    a bitmap view of the request per sample, equal to the spikes."""
    sp = np.random.default_rng(5).random((40, 300, 128)) < 0.05
    slot, got, encs = decode_upload(encode_upload(sp, slot=3, choose="dense"))
    assert slot == 3 and np.array_equal(got, sp) and not encs.any()


def test_headers_the_fast_path_must_not_take():
    """kills decode_upload_packed's fast path taken on the payload's size alone or on part of
    each header: an AER sample exactly as long as a dense one (4 x 8 bits = one 4-byte event)
    is read as AER, and two dense headers announcing dn + 1 and dn - 1 bytes (the same total)
    are refused as the per-sample path refuses them."""
    import pytest

    from firmware_iface.records import PayloadError

    sp = np.zeros((2, 4, 8), bool)
    sp[0, 2, 5] = True
    sp[1] = np.random.default_rng(1).random((4, 8)) < 0.5
    aer = [(1, 0, struct.pack("<I", 2 * 256 + 5)), (0, 0, _dense(sp[1]))]
    slot, got, encs = decode_upload(_upload(0, aer, 4, 8))
    assert np.array_equal(got, sp) and list(encs) == [1, 0]
    d0, d1 = _dense(sp[0]), _dense(sp[1])
    with pytest.raises(PayloadError, match="dense bitmap of 5 bytes, expected 4"):
        decode_upload(_upload(0, [(0, 0, d0 + b"\x00"), (0, 0, d1[:-1])], 4, 8))
