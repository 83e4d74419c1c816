"""Issue 17 item 4 (link2): the board receives a BULK_PUT raw block straight into its place in
the transfer's staging buffer (VirtualFirmware._raw_sink / raw_target / received_parts, and
sim serve's reads into it), without ever letting a block overwrite bytes already acknowledged
or already given to a command (decision 0016).  Every byte the board is fed is built from
docs/protocol.md with the independent encoder of tests/wire_ref.py; expected results are the
bytes sent (PING echoes its payload; UPLOAD_SPIKES stores dense samples as sent)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from firmware_iface.spec import Opcode, PulseKind, Status
from sim_backend.board import make_board
from sim_backend.firmware import VirtualFirmware, _Ranges
from tests.wire_ref import read_frames, reference_frame

SESSION = 0x5EED
REF_BULK = struct.Struct("<IB3xIIII")   # id, opcode, pad, total, offset, nbytes, crc
REF_STAGE = struct.Struct("<IB3xII")    # id, opcode, pad, total, offset
REF_COMMIT = struct.Struct("<IB3xI")    # id, opcode, pad, total
REF_RESULT = struct.Struct("<IB3xI")    # id, status, pad, length
REF_FETCH = struct.Struct("<III")       # id, offset, length
PAYLOAD = bytes([0, 3, 0, 0, 200, 0, 17, 0]) * 30  # 240 bytes (PING takes <= 256), many 0x00


def _board() -> VirtualFirmware:
    fw = make_board(1, 0, "ideal")
    assert read_frames(fw.feed(reference_frame(Opcode.HELLO, 0, session=SESSION)))[0]["status"] == Status.OK
    return fw


def _frame_put(seq: int, tid: int, offset: int, data: bytes, total: int = len(PAYLOAD),
               target: int = Opcode.PING, session: int = SESSION) -> bytes:
    record = REF_BULK.pack(tid, target, total, offset, len(data), zlib.crc32(data))
    return reference_frame(Opcode.BULK_PUT, seq, record, session=session)


def _put(seq: int, tid: int, offset: int, data: bytes, **kw) -> bytes:
    return _frame_put(seq, tid, offset, data, **kw) + data + b"\x00"


def _commit(seq: int, tid: int, total: int = len(PAYLOAD), target: int = Opcode.PING) -> bytes:
    return reference_frame(Opcode.COMMIT, seq, REF_COMMIT.pack(tid, target, total), session=SESSION)


def _fetch(fw: VirtualFirmware, seq: int, tid: int, n: int = len(PAYLOAD)) -> bytes:
    (f,) = read_frames(fw.feed(reference_frame(Opcode.FETCH, seq, REF_FETCH.pack(tid, 0, n), session=SESSION)))
    assert f["status"] == Status.OK
    return f["payload"]


def _statuses(stream: bytes) -> list[tuple[int, int]]:
    return [(f["opcode"], f["status"]) for f in read_frames(stream)]


def _result(frame: dict) -> tuple[int, int, int, bytes]:
    rid, status, length = REF_RESULT.unpack_from(frame["payload"])
    return rid, status, length, frame["payload"][REF_RESULT.size:]


def test_a_block_is_received_in_place_and_kept_without_a_copy():
    """kills VirtualFirmware._raw_sink / _put's in-place path (raw_target None, or the block
    copied again): the bytes written into raw_target() are the bytes the command keeps."""
    fw = _board()
    frame = _frame_put(1, 0xA1, 0, PAYLOAD)
    assert fw.feed_parts(frame + PAYLOAD[:10]) == []  # the frame and the block's first bytes
    target = fw.raw_target()
    assert target is not None and len(target) == len(PAYLOAD) - 10
    target[:] = PAYLOAD[10:]  # as recv_into would
    assert _statuses(b"".join(fw.received_parts(len(PAYLOAD) - 10))) == [(Opcode.BULK_PUT, Status.OK)]
    assert fw.raw_target() is None  # the block is complete: the closing 0x00 and the next frame follow
    commit = read_frames(fw.feed(b"\x00" + _commit(2, 0xA1)))
    assert [(f["opcode"], f["status"]) for f in commit] == [(Opcode.COMMIT, Status.OK)]
    assert _result(commit[0]) == (0xA1, Status.OK, len(PAYLOAD), PAYLOAD)
    kept = fw._kept[2]  # PING keeps its request: the very buffer the block was received into
    assert np.shares_memory(np.asarray(kept), np.asarray(target)) and bytes(kept) == PAYLOAD


def test_a_corrupted_duplicate_never_overwrites_acknowledged_bytes():
    """kills the `st[3].overlaps` check of VirtualFirmware._place: a late duplicate of a piece
    already answered COUNT, its raw bytes corrupted, fails its CRC -- had it been received in
    place, the acknowledged bytes would be gone and the COMMIT would run on garbage."""
    fw = _board()
    first = _put(1, 0xB2, 0, PAYLOAD[:100])
    assert _statuses(fw.feed(first)) == [(Opcode.BULK_PUT, Status.OK)]
    dup = bytearray(first)
    dup[-50] ^= 0xFF  # a raw byte of the duplicate
    rest = _put(3, 0xB2, 100, PAYLOAD[100:])
    got = _statuses(fw.feed(bytes(dup) + rest + _commit(4, 0xB2)))
    assert got == [(Opcode.BULK_PUT, Status.DATA_CRC), (Opcode.BULK_PUT, Status.OK), (Opcode.COMMIT, Status.OK)]
    assert _fetch(fw, 5, 0xB2) == PAYLOAD
    assert fw._claims == []  # the failed block's claim went with its DATA_CRC answer


def test_a_corrupted_duplicate_in_the_same_burst_never_overwrites_the_first():
    """kills the claims check of VirtualFirmware._place: piece and corrupted duplicate arrive
    in one read, so the first is not handled (not yet acknowledged) when the duplicate's frame
    is decoded -- the duplicate must not be received over the bytes the first one brought."""
    fw = _board()
    first = _put(1, 0xC3, 0, PAYLOAD)
    dup = bytearray(first)
    dup[-7] ^= 0x10
    got = _statuses(fw.feed(first + bytes(dup) + _commit(3, 0xC3)))
    assert got == [(Opcode.BULK_PUT, Status.OK), (Opcode.BULK_PUT, Status.DATA_CRC), (Opcode.COMMIT, Status.OK)]
    assert _fetch(fw, 4, 0xC3) == PAYLOAD


def test_a_block_decoded_after_a_stage_piece_of_its_range_is_not_received_over_it():
    """kills the STAGE claims of VirtualFirmware._raw_rule: a STAGE piece, the COMMIT and a
    BULK_PUT of the same range (other bytes) arrive in one read, the BULK_PUT's block still
    arriving.  Received in place, the block would share its buffer with the STAGE piece
    (stored when handled, after the block's first bytes came): its CRC would fail, and what
    the COMMIT kept (PING keeps its request) could change under it."""
    fw = _board()
    tid, other = 0xD4, bytes(len(PAYLOAD))
    stage = reference_frame(Opcode.STAGE, 1, REF_STAGE.pack(tid, Opcode.PING, len(PAYLOAD), 0) + PAYLOAD,
                            session=SESSION)
    late = _put(3, tid, 0, other)
    cut = len(late) - 100
    got = _statuses(b"".join(fw.feed_parts(stage + _commit(2, tid) + late[:cut])))
    assert got == [(Opcode.STAGE, Status.OK), (Opcode.COMMIT, Status.OK)]
    assert _statuses(b"".join(fw.feed_parts(late[cut:]))) == [(Opcode.BULK_PUT, Status.OK)]
    assert _fetch(fw, 4, tid) == PAYLOAD


def test_pieces_of_two_transfers_and_their_commits_in_one_read():
    """kills a _raw_sink that makes a new transfer's staging buffer current when its first
    frame is decoded (the previous transfer's COMMIT, decoded before it but not yet run, would
    find its buffer gone): the new transfer's first block goes to a prepared buffer instead."""
    fw = _board()
    p2 = PAYLOAD[::-1]
    stream = (_put(1, 0xE1, 0, PAYLOAD[:128]) + _put(2, 0xE1, 128, PAYLOAD[128:]) + _commit(3, 0xE1)
              + _put(4, 0xE2, 0, p2[:200]) + _put(5, 0xE2, 200, p2[200:]) + _commit(6, 0xE2))
    frames = read_frames(fw.feed(stream))
    assert [(f["opcode"], f["status"]) for f in frames] == [(Opcode.BULK_PUT, Status.OK)] * 2 + [
        (Opcode.COMMIT, Status.OK)] + [(Opcode.BULK_PUT, Status.OK)] * 2 + [(Opcode.COMMIT, Status.OK)]
    assert _result(frames[2])[3] == PAYLOAD and _result(frames[5])[3] == p2


def test_a_block_the_board_will_refuse_is_not_received_into_a_staging_buffer():
    """kills the session and piece checks of VirtualFirmware._place: a BULK_PUT of another
    session (answered NO_SESSION) or past its transfer's end (OUT_OF_RANGE) is collected in the
    decoder's own buffer, never written into a transfer's (none is even made for it)."""
    fw = _board()
    for frame, status in ((_frame_put(1, 0xF1, 0, PAYLOAD, session=SESSION + 1), Status.NO_SESSION),
                          (_frame_put(2, 0xF1, 100, PAYLOAD), Status.OUT_OF_RANGE),
                          (_frame_put(3, 0, 0, PAYLOAD), Status.OUT_OF_RANGE)):
        assert fw.feed_parts(frame + PAYLOAD[:5]) == []
        assert fw._prepared is None and fw._staging is None  # no transfer buffer was given out
        assert _statuses(fw.feed(PAYLOAD[5:] + b"\x00")) == [(Opcode.BULK_PUT, status)]
    assert fw._staging is None and fw._prepared is None


def test_a_rebooted_board_forgets_the_blocks_in_flight():
    """kills VirtualFirmware.reboot keeping the old decoder's sink or claims: after a reboot a
    new session's transfer is received in place again and completes."""
    fw = _board()
    fw.feed_parts(_frame_put(1, 0x11, 0, PAYLOAD) + PAYLOAD[:50])
    fw.reboot()
    assert read_frames(fw.feed(reference_frame(Opcode.HELLO, 0, session=SESSION)))[0]["status"] == Status.OK
    fw.feed_parts(_frame_put(1, 0x12, 0, PAYLOAD) + PAYLOAD[:50])
    target = fw.raw_target()
    assert target is not None
    target[:] = PAYLOAD[50:]
    assert _statuses(b"".join(fw.received_parts(len(PAYLOAD) - 50))) == [(Opcode.BULK_PUT, Status.OK)]
    assert fw._claims == []  # its event was handled: nothing claimed any more


@pytest.mark.parametrize(("ranges", "probe", "want"), [
    ([], (0, 10), False),
    ([(10, 20)], (0, 10), False),    # ends where the range starts: touching, not overlapping
    ([(10, 20)], (20, 30), False),   # starts where it ends
    ([(10, 20)], (19, 30), True),    # one byte in common
    ([(10, 20)], (0, 11), True),
    ([(10, 20)], (12, 15), True),    # inside
    ([(10, 20)], (5, 25), True),     # around
    ([(0, 5), (10, 20)], (5, 10), False),  # the gap between two ranges
    ([(0, 5), (10, 20)], (4, 6), True),
    ([(10, 20)], (15, 15), False),   # an empty probe covers nothing
])
def test_ranges_overlap_hand_cases(ranges, probe, want):
    """kills _Ranges.overlaps mutants (bisect side, < for <=, the empty-range guard); the
    expected answers are worked out by hand from half-open intervals."""
    r = _Ranges()
    for a, b in ranges:
        r.add(a, b)
    assert r.overlaps(*probe) is want


@pytest.mark.parametrize("kind", ["tcp", "pty"])
def test_an_upload_through_sim_serve_is_received_in_place(kind, monkeypatch):
    """kills the in-place reads of sim_backend.server.serve_tcp / serve_pty (recv_into / readv
    into the raw target): a 1.9 MB upload arrives bit-identical, most of its bytes read
    straight into the staging buffer."""
    import os
    import threading

    from drivers.pechip import PEChip
    from sim_backend.link import LinkModel
    from sim_backend.server import _Pump, serve_pty, serve_tcp

    direct = []
    real = VirtualFirmware.received_parts
    monkeypatch.setattr(VirtualFirmware, "received_parts", lambda self, n: direct.append(n) or real(self, n))
    fw = make_board(1, 0, "ideal")
    stop = threading.Event()
    pump = _Pump(fw, LinkModel())
    url, thread = serve_tcp(pump, "127.0.0.1", 0, stop) if kind == "tcp" else serve_pty(pump, stop)
    spikes = np.random.default_rng(11).random((400, 300, 128)) < 0.05
    try:
        with PEChip(url, timeout_s=10) as chip:
            chip.upload_spikes(spikes)
    finally:
        stop.set()
        thread.join(2)
        for fd in getattr(thread, "fds", ()):
            os.close(fd)
    for i, sample in enumerate(spikes):
        assert np.array_equal(fw.inputs[i][0], np.packbits(sample.ravel(), bitorder="little"))
    assert sum(direct) > 0.9 * spikes.shape[0] * 4800


def test_every_command_committed_from_a_staging_buffer_answers_as_sent_in_one_frame(monkeypatch):
    """kills a staging buffer a handler cannot read (the board commits a transfer as a view of
    an uninitialised numpy buffer, not a bytearray: e.g. SIM_QUERY's `p.decode`): the same
    session of commands on two boards of the same seed, one with every request and reply of
    more than one byte moved by BULK_PUT / COMMIT / BULK_GET, one with plain frames only,
    gives identical results (the plain frames are the reference)."""
    from drivers.pechip import PEChip
    from firmware_iface.write_verify import PulseSchedule

    def session(chip: PEChip) -> list:
        out = []
        rows, cols = np.arange(0, 128, 3), np.arange(0, 128, 3) % chip.info().columns
        out.append(chip.pulse(PulseKind.SET, rows, cols, 2.0, 1.5, 0.0, 1e-6))
        out.append(chip.read_array())
        res = chip.write_verify(rows[:20], cols[:20], np.full(20, 40e-6), PulseSchedule())
        out.append((res.g_s.tolist(), res.pulses.tolist(), res.success.tolist()))
        spikes = np.random.default_rng(9).random((6, 50, 128)) < 0.1
        out.append(chip.upload_spikes(spikes))
        chip.run(6)
        out.append([a.tolist() for a in chip.read_outputs(6)])
        out.append(chip.sim_query("executed"))
        return out

    with PEChip("pesim://?seed=4&fidelity=ideal") as plain:
        monkeypatch.setattr(PEChip, "chunk_bytes", lambda self: None)  # no transfers at all
        want = session(plain)
    monkeypatch.setattr(PEChip, "chunk_bytes", lambda self: 1)  # every request / reply > 1 byte
    with PEChip("pesim://?seed=4&fidelity=ideal") as staged:
        got = session(staged)
        assert staged.stats.transfers >= 6
    for a, b in zip(got, want):
        assert str(a) == str(b)
