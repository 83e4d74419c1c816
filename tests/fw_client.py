"""A minimal protocol client talking to a VirtualFirmware object directly (bytes in, bytes
out), for tests that send frames the driver would never build."""
from __future__ import annotations

import time

from firmware_iface.framing import Frame, FrameDecoder, encode_frame
from firmware_iface.spec import Opcode, Status
from sim_backend.board import make_board


class RawClient:
    def __init__(self, fw=None, session: int = 0x1234) -> None:
        self.fw = fw or make_board(1, 0, "ideal")
        self.session = session
        self.seq = 0
        self.dec = FrameDecoder()
        assert self.send(Opcode.HELLO, b"", seq=0)[0] == Status.OK

    def send(self, opcode: int, payload: bytes = b"", seq: int | None = None) -> tuple[int, bytes, float]:
        """(status, reply payload, seconds the firmware took)."""
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF or 1
            seq = self.seq
        t0 = time.perf_counter()
        out = self.fw.feed(encode_frame(Frame(int(opcode), seq, payload, session=self.session)))
        dt = time.perf_counter() - t0
        frames = self.dec.feed(out)
        assert len(frames) == 1, f"expected one reply frame, got {len(frames)}"
        return frames[0].status, frames[0].payload, dt
