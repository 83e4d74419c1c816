"""Issue 17 item 4 (link2): a bulk readout over socket:// reads each reply frame with a small
read (drivers.bulkmode.PEEK) so that the rest of its raw block is read by the kernel straight
into its place in the result, not through a 1 MiB read buffer and a second copy."""
from __future__ import annotations

import threading

import numpy as np

from drivers import bulkmode
from drivers.pechip import PEChip
from drivers.transport import Direct
from firmware_iface import messages as msg
from firmware_iface.spec import Opcode, PulseKind
from sim_backend.board import make_board
from sim_backend.link import LinkModel
from sim_backend.server import _Pump, serve_tcp


def test_a_readout_reads_its_blocks_in_place(monkeypatch):
    """kills the PEEK-sized reads of drivers.bulkmode._exchange_round / _take_in (a readout
    round reading 1 MiB at a time: most of each block then arrives with its frame and is
    copied out of the read buffer; measured: 50 of 1.4 MB in place): of a ~1.4 MB READ_OUTPUT
    reply, every byte but at most 4 KiB per request of the round is read straight into the result, and the result equals the bounded
    path's (STAGE / FETCH, 1 KiB frames) bit for bit."""
    fw = make_board(2, 0, "ideal")
    stop = threading.Event()
    url, thread = serve_tcp(_Pump(fw, LinkModel()), "127.0.0.1", 0, stop)
    into, copied = [], []
    real_into, real_read = Direct.read_into, Direct.read
    monkeypatch.setattr(Direct, "read_into", lambda self, view: into.append(real_into(self, view)) or into[-1])
    monkeypatch.setattr(Direct, "read", lambda self, size: copied.append(len(d := real_read(self, size))) or d)
    try:
        with PEChip(url, timeout_s=10) as chip:
            rows, cols = np.meshgrid(np.arange(128), np.arange(0, chip.info().columns, 2), indexing="ij")
            for _ in range(3):  # every G+ column high and a low threshold: many output spikes
                chip.pulse(PulseKind.SET, rows.ravel(), cols.ravel(), 2.0, 1.5, 0.0, 1e-6)
            chip.write_register("THRESHOLD", 0.1)
            spikes = np.random.default_rng(4).random((100, 300, 128)) < 0.05
            chip.upload_spikes(spikes)
            chip.run(100)
            cap = 12 + 100 * chip.info().neurons * (2 + 4 * 300)
            into.clear(), copied.clear()
            pieces0 = chip.stats.commands
            bulk = chip.call(Opcode.READ_OUTPUT, msg.encode_run(0, 100), reply_bytes=cap)
            pieces = chip.stats.commands - pieces0
            chip.use_bulk = False
            bounded = chip.call(Opcode.READ_OUTPUT, msg.encode_run(0, 100), reply_bytes=cap)
    finally:
        stop.set()
        thread.join(2)
    assert len(bulk) > 1_000_000 and bytes(bulk) == bytes(bounded)
    assert sum(into) >= len(bulk) - pieces * 4096, (sum(into), sum(copied), pieces)
