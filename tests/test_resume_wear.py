"""Issue 16, item 4: resume without extra wear.

``chip program`` talks to a simulator process through a TCP relay.  The relay lets the
board's reply to the second batch's WRITE_VERIFY pass to nobody: it SIGKILLs the host the moment that
reply arrives, so the batch finished on the board but was never recorded — the worst case
for wear.  ``--resume`` then runs directly against the same simulator.  The simulator's own
per-cell pulse counters (SIM_QUERY ``pulse_counts``, the die's ground truth) show which cells
the resumed session pulsed: none of the cells that were already within tolerance.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from drivers.pechip import PEChip
from firmware_iface.framing import FrameDecoder
from firmware_iface.bulk import decode_commit, decode_result
from firmware_iface.messages import decode_cell_results
from firmware_iface.spec import Opcode

TOL_S = 5e-6
MARGIN_S = 1.5e-6
"""Cells this far inside the tolerance are within it by any averaged read (noise ~0.5 uS)."""


@pytest.fixture
def simulator():
    p = subprocess.Popen([sys.executable, "-m", "sim_backend", "serve", "--no-instruments", "--lifeline"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield json.loads(p.stdout.readline())["chip"]
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()


class KillingRelay:
    """TCP relay host <-> board that SIGKILLs the host when the board's reply to the
    ``nth`` WRITE_VERIFY of at least ``min_cells`` cells arrives, and drops that reply.
    (Smaller ones are the stuck-cell probes, which move cells away from their targets.)"""

    def __init__(self, upstream: str, nth: int, min_cells: int) -> None:
        self.min_cells = min_cells
        self.commits: dict[int, int] = {}
        host, port = upstream.removeprefix("socket://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.nth, self.seen = nth, 0
        self.victim: subprocess.Popen | None = None
        self.killed = threading.Event()
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        up = socket.create_connection(self.upstream)
        threading.Thread(target=self._pipe, args=(conn, up, self._note), daemon=True).start()
        buf = bytearray()
        dec = FrameDecoder()
        try:
            while not self.killed.is_set():
                data = up.recv(1 << 16)
                if not data:
                    return
                buf += data
                while (end := buf.find(0)) >= 0:
                    frame_bytes = bytes(buf[:end + 1])
                    del buf[:end + 1]
                    frames = dec.feed(frame_bytes)
                    if any(self._is_big_write_verify(f) for f in frames):
                        self.seen += 1
                        if self.seen == self.nth:
                            self.victim.send_signal(signal.SIGKILL)
                            self.killed.set()
                            return
                    conn.sendall(frame_bytes)
        except OSError:
            return
        finally:
            conn.close()
            up.close()

    def _note(self, frames) -> None:
        """Requests going to the board: which opcode each COMMIT (bounded transfer) runs."""
        for f in frames:
            if not f.is_response and f.opcode == Opcode.COMMIT:
                self.commits[f.seq] = decode_commit(f.payload)[1]

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, note) -> None:
        dec = FrameDecoder()
        try:
            while data := src.recv(1 << 16):
                note(dec.feed(data))
                dst.sendall(data)
        except OSError:
            pass

    def _is_big_write_verify(self, f) -> bool:
        if not f.is_response:
            return False
        if f.opcode == Opcode.WRITE_VERIFY:
            return decode_cell_results(f.payload)[0].size >= self.min_cells
        if f.opcode == Opcode.COMMIT and self.commits.get(f.seq) == Opcode.WRITE_VERIFY:
            return decode_result(f.payload)[2] >= 16 + 12 * self.min_cells   # DONE + CELL_RESULTs
        return False


def _board_state(url: str) -> tuple[np.ndarray, np.ndarray]:
    """(pulse counts, true conductances in S) of every cell, from the simulator itself."""
    with PEChip(url) as chip:
        return np.array(chip.sim_query("pulse_counts")), np.array(chip.sim_query("conductances"))


def test_resume_after_kill_mid_batch_pulses_no_cell_within_tolerance(tmp_path, simulator):
    levels = np.random.default_rng(3).integers(0, 16, (128, 24))
    np.save(tmp_path / "L.npy", levels)
    out = tmp_path / "p.h5"
    relay = KillingRelay(simulator, nth=2, min_cells=400)
    argv = [sys.executable, "-m", "bench", "chip", "program", "--levels", str(tmp_path / "L.npy"),
            "--out", str(out), "--batch", "512", "--json"]
    relay.victim = subprocess.Popen(argv + ["--chip", relay.url], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
    relay.victim.communicate(timeout=300)
    assert relay.killed.is_set() and relay.victim.returncode == -signal.SIGKILL, "the host was not killed mid-batch"

    with h5py.File(out, "r") as f:
        recorded = f["cells"]["index"][()]
        inflight = f["journal/inflight"][()]
        targets = f["targets/target_s"][()]
        rows, cols = f["targets/row"][()].astype(int), f["targets/col"][()].astype(int)
    assert inflight.size > 0 and not np.isin(inflight, recorded).any(), "no batch journalled as in flight"

    before, g_true = _board_state(simulator)
    g = g_true[rows, cols]
    touched = before[rows, cols] > 0
    within = np.abs(g - targets) <= TOL_S - MARGIN_S
    inflight_done = np.zeros(targets.size, bool)
    inflight_done[inflight] = True
    inflight_done &= within
    assert inflight_done.sum() > 100, "the killed batch should have finished on the board"

    p = subprocess.run(argv + ["--chip", simulator, "--resume"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(p.stdout)
    after, _ = _board_state(simulator)
    extra = (after - before)[rows, cols]

    guarded = touched & within
    assert extra[guarded].sum() == 0, (
        f"{int((extra[guarded] > 0).sum())} cells already within tolerance were pulsed again "
        f"(+{int(extra[guarded].sum())} pulses)")
    assert summary["recovered_inflight_cells"] >= inflight_done.sum()
    assert extra[~touched].sum() > 0, "the resumed session should program the cells never reached"
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"]
        idx = np.sort(f["cells"]["index"][()])
        assert np.array_equal(idx, np.arange(targets.size)), "every cell recorded exactly once"
        assert f["journal/inflight"].shape == (0,)
