"""Issue 17 item 4 (link3): the two ends of a bulk transfer overlap instead of taking turns.

- Readout: the board writes each BULK_GET reply (frame, raw block, 0x00) as soon as it is
  ready (VirtualFirmware.flush, set by ``sim serve``'s loop), so the host receives piece k while
  the board prepares piece k+1 -- same bytes, same order as one write at the end.
- Upload: the host sends each BULK_PUT piece as soon as its frame is built, so the board
  receives piece k while the host computes piece k+1's CRC-32 (drivers/bulkmode.py).

No wire change: every check reads the bytes with the spec's layout (tests/wire_ref.py, the
BULK record of docs/protocol.md) and faults must still end in a resent piece or an error.
"""
from __future__ import annotations

import struct

import numpy as np
import zlib

from firmware_iface import bulk
from firmware_iface.spec import Opcode, Status
from sim_backend.board import make_board
from sim_backend.firmware import VirtualFirmware
from tests.test_bulk_mode import SESSION, _replies, ref_put
from tests.wire_ref import reference_frame

PAYLOAD = bytes([0, 3, 0, 0, 200, 1, 0]) * 36  # 252 bytes with many 0x00: PING echoes them (<= MAX_PING)
TID = 0x5EED


def _board_with_kept_reply() -> VirtualFirmware:
    """A board holding PAYLOAD as the kept reply of transfer TID (a PING staged by BULK_PUT)."""
    fw = make_board(1, 0, "ideal")
    assert _replies(fw.feed(reference_frame(Opcode.HELLO, 0, session=SESSION)))[0]["status"] == Status.OK
    fw.feed(ref_put(1, TID, Opcode.PING, len(PAYLOAD), 0, PAYLOAD))
    (commit,) = _replies(fw.feed(reference_frame(Opcode.COMMIT, 2, bulk.encode_commit(TID, Opcode.PING, len(PAYLOAD)),
                                                 session=SESSION)))
    assert commit["status"] == Status.OK
    return fw


def _gets(pieces: list[tuple[int, int]], first_seq: int = 10) -> bytes:
    """BULK_GET requests for ``pieces`` (offset, length), then STATUS: one readout round."""
    out = b"".join(reference_frame(Opcode.BULK_GET, first_seq + i, struct.pack("<III", TID, off, n), session=SESSION)
                   for i, (off, n) in enumerate(pieces))
    return out + reference_frame(Opcode.STATUS, first_seq + len(pieces), session=SESSION)


PIECES = [(0, 90), (90, 90), (180, 72)]


def test_board_writes_each_raw_reply_before_preparing_the_next():
    """kills the flush in VirtualFirmware._answer (replies held until every frame of the read was
    handled: the host then waits for the board's CRC-32 of every piece before its first byte):
    piece k's reply is written before piece k+1 is handled, and each written reply is the
    spec's unit for exactly that piece (offset, nbytes, CRC-32 of PAYLOAD's bytes)."""
    fw = _board_with_kept_reply()
    log: list = []
    handler = fw._handlers[Opcode.BULK_GET]
    fw._handlers[Opcode.BULK_GET] = lambda p: (log.append(("handle", struct.unpack("<III", p)[1])), handler(p))[1]
    fw.flush = lambda parts: log.append(("write", b"".join(bytes(memoryview(x).cast("B")) for x in parts)))
    rest = b"".join(bytes(memoryview(x).cast("B")) for x in fw.feed_parts(_gets(PIECES)))
    assert [e[0] if e[0] == "write" else e for e in log] == [("handle", 0), "write", ("handle", 90), "write",
                                                             ("handle", 180), "write"]
    for (kind, wrote), (off, n) in zip([e for e in log if e[0] == "write"], PIECES):
        (r,) = _replies(wrote)
        assert (r["status"], r["offset"], r["nbytes"], r["data"]) == (Status.OK, off, n, PAYLOAD[off:off + n])
        assert r["crc"] == zlib.crc32(PAYLOAD[off:off + n])
    assert [(r["opcode"], r["status"]) for r in _replies(rest)] == [(Opcode.STATUS, Status.OK)]


def test_streamed_replies_are_the_bytes_of_one_write():
    """kills a flush that drops, repeats or reorders parts (the host would see a frame twice, or
    a raw block without its frame): what is written early, then what is returned, is byte for
    byte what a board without a writer answers in one piece -- also when a piece is refused
    (beyond the result: OUT_OF_RANGE) between two good ones."""
    pieces = [(0, 100), (200, 100), (100, 100)]  # the middle one runs past the 252 bytes
    plain = _board_with_kept_reply().feed(_gets(pieces))
    fw = _board_with_kept_reply()
    wrote: list[bytes] = []
    fw.flush = lambda parts: wrote.append(b"".join(bytes(memoryview(x).cast("B")) for x in parts))
    rest = b"".join(bytes(memoryview(x).cast("B")) for x in fw.feed_parts(_gets(pieces)))
    assert b"".join(wrote) + rest == plain and len(wrote) == 2  # each OK piece, as it is ready
    r = _replies(plain)
    assert [(x["opcode"], x["status"]) for x in r] == [(Opcode.BULK_GET, Status.OK), (Opcode.BULK_GET, Status.OUT_OF_RANGE),
                                                       (Opcode.BULK_GET, Status.OK), (Opcode.STATUS, Status.OK)]


# --- the host: an upload's pieces go out as they are built ----------------------------------


def test_host_sends_each_upload_piece_before_building_the_next(monkeypatch):
    """kills drivers.bulkmode._send_units building every unit of a round before the first byte
    goes (the board then idles while the host computes every piece's CRC-32): of a 3-piece
    upload over socket://, piece k's CRC-32 is computed after piece k-1 was handed to the link
    (sendmsg), and the board stores the samples bit for bit (the spec's dense layout:
    numpy.packbits little-endian, step-major)."""
    import threading

    import numpy as np

    import firmware_iface.bulk as fbulk
    from drivers.pechip import PEChip
    from drivers.transport import Direct
    from tests.boards import tcp_board

    main = threading.get_ident()
    log: list[tuple[str, int]] = []
    real_crc, real_send = fbulk.crc32, Direct.send_some

    def crc(data, *a):
        if threading.get_ident() == main and len(data) >= 65536:
            log.append(("crc", len(data)))
        return real_crc(data, *a)

    def send(self, views):
        n = real_send(self, views)
        log.append(("send", n))
        return n

    monkeypatch.setattr(fbulk, "crc32", crc)
    monkeypatch.setattr(Direct, "send_some", send)
    spikes = np.random.default_rng(11).random((60, 300, 128)) < 0.05  # 60 x 4,816 B: ~289 KB
    fw = make_board(4, 0, "ideal")
    with tcp_board(fw) as url, PEChip(url, timeout_s=10) as chip:
        chip.info(), chip.board_limits()
        chip.bulk_piece = 100_000
        log.clear()
        chip.upload_spikes(spikes)
        for i, sample in enumerate(spikes):
            assert np.array_equal(fw.inputs[i][0], np.packbits(sample.ravel(), bitorder="little"))
    crcs = [k for k, (what, _) in enumerate(log) if what == "crc"]
    assert len(crcs) == 3, log
    for before, after in zip(crcs, crcs[1:]):  # a send of >= the piece between two CRCs
        assert any(what == "send" and n >= 100_000 for what, n in log[before + 1:after]), log


def test_a_readout_rounds_requests_still_go_out_in_one_write(monkeypatch):
    """kills a _send_units that writes every unit on its own (STREAM_MIN 0): the BULK_GET
    requests of a readout round are tiny, so they must leave together -- one system call per
    round, not one per piece -- and the result equals the bounded path's bit for bit."""
    from drivers.pechip import PEChip
    from drivers.transport import Direct
    from tests.boards import tcp_board

    sends: list[int] = []
    real_send = Direct.send_some
    monkeypatch.setattr(Direct, "send_some", lambda self, views: sends.append(len(views)) or real_send(self, views))
    fw = make_board(4, 0, "ideal")
    with tcp_board(fw) as url, PEChip(url, timeout_s=10) as chip:
        chip.info(), chip.board_limits()
        chip.bulk_piece = 1024
        rounds0, sends[:] = chip.stats.bulk_rounds, []
        bulk_g = chip.read_array()
        rounds = chip.stats.bulk_rounds - rounds0
        pieces = chip.stats.unsequenced
        chip.use_bulk = False
        assert np.array_equal(chip.read_array(), bulk_g)
    assert pieces >= 8 and len(sends) == rounds, (pieces, sends, rounds)


# --- the board: a burst's replies leave together --------------------------------------------


def test_board_holds_replies_while_the_burst_is_still_arriving(monkeypatch):
    """kills the reply hold of sim_backend.server.serve_tcp (each piece's COUNT written, and the
    host woken, as soon as the piece is stored): a burst of two BULK_PUT units and a COMMIT,
    all in the socket before the board reads it, is answered in one write -- the three
    replies in order (docs/protocol.md: the board answers in order), with the spec's fields."""
    import socket
    import threading

    import sim_backend.server as server
    from sim_backend.link import LinkModel

    writes: list[int] = []
    real = server._write_parts
    monkeypatch.setattr(server, "_write_parts", lambda w, parts, stop: (writes.append(1), real(w, parts, stop))[1])
    fw = make_board(1, 0, "ideal")
    stop = threading.Event()
    pump = server._Pump(fw, LinkModel())
    url, thread = server.serve_tcp(pump, "127.0.0.1", 0, stop)
    big = bytes(range(256)) * 6000  # 1.5 MB: more than one read of the board
    small = b"\x00\x01tail"
    total = len(big) + len(small)
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.sendall(reference_frame(Opcode.HELLO, 0, session=SESSION))
            assert _replies(_read_replies(sock, 1))[0]["status"] == Status.OK
            writes.clear()
            with pump.guard:  # the board waits until the whole burst is in its socket
                sock.sendall(ref_put(1, TID, Opcode.PING, total, 0, big) + ref_put(2, TID, Opcode.PING, total, len(big), small)
                             + reference_frame(Opcode.COMMIT, 3, bulk.encode_commit(TID, Opcode.PING, total),
                                               session=SESSION))
            got = _replies(_read_replies(sock, 3))
    finally:
        stop.set()
        thread.join(5)
    assert [(r["opcode"], r["seq"], r["status"]) for r in got] == [
        (Opcode.BULK_PUT, 1, Status.OK), (Opcode.BULK_PUT, 2, Status.OK), (Opcode.COMMIT, 3, Status.OK)]
    assert writes == [1], writes


def _read_replies(sock, n: int) -> bytes:
    """Bytes from ``sock`` until ``n`` frames (delimiters) arrived; replies here carry no raw block."""
    sock.settimeout(5)
    data = b""
    while data.count(b"\x00") < n or not data.endswith(b"\x00"):
        data += sock.recv(65536)
    return data


def test_readout_requests_leave_before_the_result_buffer_is_zero_filled(monkeypatch):
    """kills drivers.bulkmode._bulk_get making (zero-filling) the result before the round's
    BULK_GET requests are written (~30 us per MB the board then waits for its first request),
    and _exchange_round's job.sent() (made only once the first reply is read: then it delays
    taking in the first block): the result is allocated between the write that carries the
    requests and the first read of their replies, and the readout equals the bounded path's."""
    from drivers import bulkmode
    from drivers.pechip import PEChip
    from drivers.transport import Direct
    from tests.boards import tcp_board

    log: list[str] = []
    real_send = Direct.send_some

    def send(self, views):
        log.append("send")
        return real_send(self, views)

    def alloc(n=0):
        if isinstance(n, int) and n >= 4096:
            log.append("alloc")
        return bytearray(n)

    real_read, real_into = Direct.read, Direct.read_into
    monkeypatch.setattr(Direct, "send_some", send)
    monkeypatch.setattr(Direct, "read", lambda self, size: (log.append("read"), real_read(self, size))[1])
    monkeypatch.setattr(Direct, "read_into", lambda self, view: (log.append("read"), real_into(self, view))[1])
    monkeypatch.setattr(bulkmode, "bytearray", alloc, raising=False)
    fw = make_board(4, 0, "ideal")
    with tcp_board(fw) as url, PEChip(url, timeout_s=10) as chip:
        chip.info(), chip.board_limits()
        chip.bulk_piece = 2048
        log.clear()
        bulk_g = chip.read_array()
        chip.use_bulk = False
        assert np.array_equal(chip.read_array(), bulk_g)
    # the command's round (BULK_PUT of the request, COMMIT; its replies read), then the readout
    # round's requests, then the result made -- before the first read of that round's replies
    i = log.index("alloc")
    assert log.count("alloc") == 1 and log[:i].count("send") == 2 and log[i - 1] == "send" and log[i + 1] == "read", log
