"""Issue 17 item 4: an upload round closed by its COMMIT in the same burst as the pieces
(docs/protocol.md, Bulk mode "Upload"): the board answers in order, runs the COMMIT only
when every byte is staged and answers NOT_READY at once when one is missing; the host then
re-sends what was lost and a new COMMIT.  The board's bytes are built from the spec with the
independent encoder of tests/wire_ref.py."""
from __future__ import annotations

import struct
import zlib

import numpy as np

from drivers import bulkmode
from drivers.pechip import PEChip
from firmware_iface.spec import Opcode, Status
from sim_backend.board import make_board
from tests.wire_ref import crc_of, read_frames, reference_frame

SESSION = 0xC0FFEE
REF_BULK = struct.Struct("<IB3xIIII")  # id, opcode, pad, total, offset, nbytes, crc (docs/protocol.md)
REF_COMMIT = struct.Struct("<IB3xI")   # id, opcode, pad, total
REF_RESULT = struct.Struct("<IB3xI")   # id, status, pad, length
PAYLOAD = bytes([0, 7, 0, 0, 255, 0]) * 20  # 120 bytes with many 0x00: PING echoes them


def put(seq: int, tid: int, offset: int, data: bytes) -> bytes:
    record = REF_BULK.pack(tid, Opcode.PING, len(PAYLOAD), offset, len(data), zlib.crc32(data))
    return reference_frame(Opcode.BULK_PUT, seq, record, session=SESSION) + data + b"\x00"


def commit(seq: int, tid: int) -> bytes:
    return reference_frame(Opcode.COMMIT, seq, REF_COMMIT.pack(tid, Opcode.PING, len(PAYLOAD)), session=SESSION)


def test_board_answers_a_burst_commit_not_ready_then_runs_it_when_complete():
    """kills VirtualFirmware._commit running (or waiting) with bytes missing, and the in-order
    answers a burst relies on (the COMMIT's reply after every piece's)."""
    fw = make_board(2, 0, "ideal")
    hello = read_frames(fw.feed(reference_frame(Opcode.HELLO, 0, session=SESSION)))
    assert hello[0]["status"] == Status.OK
    tid = 0x7A11
    first, lost, last = put(1, tid, 0, PAYLOAD[:50]), put(2, tid, 50, PAYLOAD[50:90]), put(3, tid, 90, PAYLOAD[90:])
    c1 = commit(4, tid)
    got = read_frames(fw.feed(first + last + c1))  # the piece of bytes 50..89 is lost on the way
    assert [(f["opcode"], f["status"], f["seq"]) for f in got] == [
        (Opcode.BULK_PUT, Status.OK, 1), (Opcode.BULK_PUT, Status.OK, 3), (Opcode.COMMIT, Status.NOT_READY, 4)]
    assert [struct.unpack("<I", f["payload"])[0] for f in got[:2]] == [50, 80]  # COUNT: bytes so far
    assert got[2]["echo"] == crc_of(c1)
    c2 = commit(5, tid)
    again = put(6, tid, 50, PAYLOAD[50:90])  # re-sent (under any seq: BULK_PUT is unsequenced)
    got = read_frames(fw.feed(again + c2))
    assert [(f["opcode"], f["status"]) for f in got] == [(Opcode.BULK_PUT, Status.OK), (Opcode.COMMIT, Status.OK)]
    assert struct.unpack("<I", got[0]["payload"])[0] == 120
    rid, status, length = REF_RESULT.unpack_from(got[1]["payload"])
    assert (rid, status, length) == (tid, Status.OK, 120) and got[1]["payload"][REF_RESULT.size:] == PAYLOAD


SPIKES = np.random.default_rng(23).random((300, 300, 128)) < 0.05  # 1.4 MB: two 1 MiB pieces (PIECE below)
PIECE = 1 << 20


def test_a_clean_upload_is_one_round_trip_closed_by_its_commit():
    """kills drivers.bulkmode._Put.closing / closed (an upload round closed by STATUS, then a
    COMMIT of its own: two round trips)."""
    with PEChip("pesim://?seed=3&fidelity=ideal") as chip:
        chip.info(), chip.board_limits()
        fw = chip._port.firmware
        before, status_before = chip.stats.round_trips, fw.status_served
        chip.upload_spikes(SPIKES)
        assert chip.stats.round_trips - before == 1
        assert chip.stats.commit_rounds == 1 and fw.status_served == status_before
        assert all(np.array_equal(fw.inputs[i][0], np.packbits(s.ravel(), bitorder="little"))
                   for i, s in enumerate(SPIKES))


def test_a_piece_lost_in_the_burst_is_resent_with_a_new_commit(monkeypatch):
    """kills the NOT_READY path of drivers.bulkmode (a burst COMMIT answered NOT_READY taken as
    done, or the lost piece not re-sent): the first round's second piece goes out with a wrong
    CRC, the board answers it DATA_CRC and the COMMIT NOT_READY; the next round re-sends it."""
    real = bulkmode._Put.unit
    spoiled: list[int] = []

    def unit(self, seq, session, off, n):
        parts, crc = real(self, seq, session, off, n)
        if off > 0 and not spoiled:  # the raw block's first byte flipped on the way
            spoiled.append(off)
            parts = (parts[0], bytes([parts[1][0] ^ 0x40]) + bytes(parts[1][1:]), parts[2])
        return parts, crc

    monkeypatch.setattr(bulkmode._Put, "unit", unit)
    with PEChip("pesim://?seed=3&fidelity=ideal") as chip:
        chip.info(), chip.board_limits()
        chip.bulk_piece = PIECE
        fw = chip._port.firmware
        executed = fw.executed
        chip.upload_spikes(SPIKES)
        assert spoiled and chip.stats.commit_rounds == 2 and chip.stats.retries == 1
        assert fw.executed - executed == 1  # the COMMIT ran once: the NOT_READY one ran nothing
        assert fw.last_error == Status.NOT_READY
        assert all(np.array_equal(fw.inputs[i][0], np.packbits(s.ravel(), bitorder="little"))
                   for i, s in enumerate(SPIKES))
