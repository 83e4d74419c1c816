"""Issue 17 item 4 (link3): what the ends of a bulk readout do before the first byte moves.

- A readout round's BULK_GET requests leave in one gathered write (not one per piece).
- The host makes (zero-fills) the result only once the round's requests went out, so the
  board is already preparing its first piece meanwhile.
- Replies taken in while a round is still being written are read in small pieces, so a
  readout's raw block is still read straight into the result.

Measured and rejected on this machine (docs/BENCHMARKS.md link3): the host sending each upload
piece as soon as it is built, the board writing each BULK_GET reply as soon as it is ready, and
the board holding its replies while a burst is still arriving -- slower or no better than
one gathered write, so not kept.
"""
from __future__ import annotations

import numpy as np

from sim_backend.board import make_board


def test_a_readout_rounds_requests_still_go_out_in_one_write(monkeypatch):
    """kills a drivers.bulkmode._send_parts that writes every part on its own: the BULK_GET
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

    def send_parts(self, parts, on_events):
        real_send_parts(self, parts, on_events)
        log.append("written")  # the round's write loop is over (its drain reads came before)

    real_read, real_into = Direct.read, Direct.read_into
    real_send_parts = bulkmode.BulkMode._send_parts
    monkeypatch.setattr(bulkmode.BulkMode, "_send_parts", send_parts)
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
    # round's requests, then the result made: as soon as the write loop is over, before the
    # reply loop's first read -- or, when the board answered while the loop was still looking
    # (its drain read a reply: CI saw that 1 run in ~30), at that reply
    i = log.index("alloc")
    j = [k for k, e in enumerate(log) if e == "send"][1]
    between = log[j + 1:i]
    assert log.count("alloc") == 1 and j < i, log
    assert between == ["written"] or "written" not in between, log


def test_replies_taken_in_while_writing_still_land_in_place(monkeypatch):
    """kills the 1 MiB read of drivers.bulkmode._send_parts' drain (replies taken in while the
    round is still being written): when the board answers before the host's write loop looks
    again -- forced here by a pause after each write, as a loaded machine does now and then
    (tests/test_link_readout_inplace.py failed 1 run in 6-10 on main so) -- a reply's raw block
    arrived with its frame in one big read and was copied; with small reads every byte of a
    1.4 MB readout but at most 4 KiB per piece is read straight into the result, and the
    result equals the bounded path's."""
    import time

    from drivers.pechip import PEChip
    from drivers.transport import Direct
    from firmware_iface import messages as msg
    from firmware_iface.spec import Opcode, PulseKind
    from tests.boards import tcp_board

    into: list[int] = []
    real_into, real_send = Direct.read_into, Direct.send_some
    monkeypatch.setattr(Direct, "read_into", lambda self, view: into.append(real_into(self, view)) or into[-1])

    def slow_send(self, views):
        n = real_send(self, views)
        time.sleep(0.05)  # the board answers meanwhile
        return n

    fw = make_board(2, 0, "ideal")
    with tcp_board(fw) as url, PEChip(url, timeout_s=10) as chip:
        rows, cols = np.meshgrid(np.arange(128), np.arange(0, chip.info().columns, 2), indexing="ij")
        for _ in range(3):  # every G+ column high and a low threshold: many output spikes
            chip.pulse(PulseKind.SET, rows.ravel(), cols.ravel(), 2.0, 1.5, 0.0, 1e-6)
        chip.write_register("THRESHOLD", 0.1)
        chip.upload_spikes(np.random.default_rng(4).random((100, 300, 128)) < 0.05)
        chip.run(100)
        cap = 12 + 100 * chip.info().neurons * (2 + 4 * 300)
        monkeypatch.setattr(Direct, "send_some", slow_send)
        into.clear()
        pieces0 = chip.stats.commands
        bulk = chip.call(Opcode.READ_OUTPUT, msg.encode_run(0, 100), reply_bytes=cap)
        pieces = chip.stats.commands - pieces0
        monkeypatch.setattr(Direct, "send_some", real_send)
        chip.use_bulk = False
        bounded = chip.call(Opcode.READ_OUTPUT, msg.encode_run(0, 100), reply_bytes=cap)
    assert len(bulk) > 1_000_000 and bytes(bulk) == bytes(bounded)
    assert sum(into) >= len(bulk) - pieces * 4096, (sum(into), pieces)
