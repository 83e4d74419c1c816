"""Issue 16, item 6 (CI budget): fuzz the virtual firmware and the host parsers.

- hypothesis drives the firmware with sequences of arbitrary frames (a small example budget);
- a seeded 20,000-frame fuzz (benchmarks/fuzzframes.py: garbage, random, extreme-valued and
  mutated requests) checks no INTERNAL reply, no exception, no slow reply, the firmware's peak
  memory under its stated bound (LIMITS.memory_bytes), and STATUS after RESET;
- hypothesis feeds arbitrary bytes to every host-side decoder: only PayloadError / ValueError.
The long run (>= 1,000,000 frames) is benchmarks/bench_fuzz.py.
"""
from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzzframes import FrameFuzzer
from firmware_iface import bulk, messages as msg
from firmware_iface.framing import Frame, FrameDecoder, FrameError, decode_body, encode_frame
from firmware_iface.records import PayloadError
from firmware_iface.spec import Opcode, Status
from firmware_iface.spikes import decode_output, decode_upload
from sim_backend.board import make_board
from sim_backend.firmware import MEMORY_BYTES

SESSION = 0xABCD
SLOW_S = 2.0
"""No fuzz frame may take longer than this (a hang)."""


def _statuses(out: bytes, dec: FrameDecoder) -> list[int]:
    return [f.status for f in dec.feed(out)]


def _status_after_reset(fw, dec: FrameDecoder) -> dict:
    hello = encode_frame(Frame(int(Opcode.HELLO), 0, b"", session=SESSION))
    assert _statuses(fw.feed(hello), dec) == [Status.OK]
    assert _statuses(fw.feed(encode_frame(Frame(int(Opcode.RESET), 1, b"", session=SESSION))), dec) == [Status.OK]
    frames = dec.feed(fw.feed(encode_frame(Frame(int(Opcode.STATUS), 2, b"", session=SESSION))))
    assert [f.status for f in frames] == [Status.OK]
    return msg.decode_status(frames[0].payload)


@pytest.fixture(scope="module")
def board():
    return make_board(1, 0, "ideal")


frame_st = st.tuples(st.sampled_from([int(o) for o in Opcode] + [0, 0x7F, 0xFF]),
                     st.integers(0, 0xFFFF), st.binary(max_size=96))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(frame_st, max_size=12), st.binary(max_size=64))
def test_arbitrary_frames_never_internal_and_reset_recovers(board, frames, garbage):
    fw, dec = board, FrameDecoder()
    fw.feed(encode_frame(Frame(int(Opcode.HELLO), 0, b"", session=SESSION)))
    for opcode, seq, payload in frames:
        t0 = time.perf_counter()
        out = fw.feed(encode_frame(Frame(opcode, seq, payload if opcode != Opcode.HELLO else b"", session=SESSION)))
        assert time.perf_counter() - t0 < SLOW_S
        assert Status.INTERNAL not in _statuses(out, dec), out
    fw.feed(garbage + b"\x00")
    s = _status_after_reset(fw, dec)
    assert s["samples_stored"] == 0 and s["last_error"] == 0


@pytest.mark.parametrize("n", [2_000, pytest.param(20_000, marks=pytest.mark.slow)])
def test_fuzz_frames_bounded_memory_no_internal_no_hang(n):
    fw, dec = make_board(2, 0, "typical"), FrameDecoder()
    fz = FrameFuzzer(seed=16)
    internal, slow = [], 0
    tracemalloc.start()
    try:
        fw.feed(fz.hello())
        for i in range(n):
            if i % 500 == 0:
                fw.feed(fz.hello())
            kind, data = fz.next()
            t0 = time.perf_counter()
            out = fw.feed(data)
            slow += time.perf_counter() - t0 > SLOW_S
            for f in dec.feed(out):
                if f.status == Status.INTERNAL:
                    internal.append((kind, f.opcode, f.payload[:80]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not internal, internal[:5]
    assert slow == 0
    assert peak < MEMORY_BYTES, f"peak {peak} bytes above the stated bound {MEMORY_BYTES}"
    assert fw.frames_rx > n // 2 and fw.decoder.errors > 0  # the fuzz reached both layers
    _status_after_reset(fw, dec)


HOST_DECODERS = [
    msg.decode_info, msg.decode_hello, msg.decode_status, msg.decode_conductances, msg.decode_cell_results,
    msg.decode_done, msg.decode_reg, msg.decode_read, msg.decode_pulses, msg.decode_write_verify,
    msg.decode_run, msg.decode_wait, bulk.decode_limits, bulk.decode_result, bulk.decode_stage,
    bulk.decode_commit, bulk.decode_fetch, lambda p: decode_output(p, n_expected=4),
    lambda p: decode_upload(p, max_bits=1 << 24),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256), st.integers(0, len(HOST_DECODERS) - 1))
def test_host_decoders_raise_only_payload_errors(data, which):
    try:
        HOST_DECODERS[which](data)
    except (PayloadError, ValueError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_frame_layer_raises_only_frame_errors(data):
    try:
        decode_body(data)
    except FrameError:
        pass
    FrameDecoder().feed_events(data)
