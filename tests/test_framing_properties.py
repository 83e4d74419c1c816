"""Property tests of the frame layer (hypothesis)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_iface.framing import FLAG_RESPONSE, Frame, FrameDecoder, decode_body, encode_frame
from firmware_iface.spikes import decode_output, decode_upload, encode_output, encode_upload

frames = st.builds(
    Frame,
    opcode=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=600),
    flags=st.sampled_from([0, FLAG_RESPONSE]),
    status=st.integers(0, 255),
)


@given(frames)
def test_encode_decode_identity(frame):
    wire = encode_frame(frame)
    assert wire.count(0) == 1 and wire.endswith(b"\x00")
    assert decode_body(wire[:-1]) == frame
    assert list(FrameDecoder().feed(wire)) == [frame]


@given(frames, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
def test_every_single_bit_flip_is_detected(frame, data):
    wire = bytearray(encode_frame(frame))
    pos = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[pos // 8] ^= 1 << (pos % 8)
    dec = FrameDecoder()
    got = list(dec.feed(bytes(wire) + b"\x00"))
    assert frame not in got or got.count(frame) == 0
    assert got == []  # no valid frame may come out of a corrupted one


def test_every_single_bit_flip_exhaustive_small_frame():
    frame = Frame(0x11, 42, bytes(range(1, 40)) + b"\x00\x00\x05")
    wire = encode_frame(frame)
    for pos in range(len(wire) * 8):
        bad = bytearray(wire)
        bad[pos // 8] ^= 1 << (pos % 8)
        assert list(FrameDecoder().feed(bytes(bad) + b"\x00")) == [], f"flip at bit {pos} undetected"


@given(st.lists(st.tuples(st.binary(max_size=80), frames), max_size=8), st.binary(max_size=80))
def test_garbage_between_frames_never_crashes_and_frames_survive(chunks, tail):
    dec = FrameDecoder()
    stream = b""
    expected = []
    for garbage, frame in chunks:
        stream += garbage + b"\x00" + encode_frame(frame)  # a delimiter ends any garbage run
        expected.append(frame)
    stream += tail
    got = []
    # feed in awkward pieces
    for i in range(0, len(stream), 7):
        got += list(dec.feed(stream[i:i + 7]))
    assert [f for f in got if f in expected] == expected


@given(st.integers(1, 6), st.integers(1, 40), st.integers(1, 128), st.floats(0, 1), st.integers(0, 2**31))
@settings(max_examples=60)
def test_spike_encodings_round_trip(n, steps, rows, rate, seed):
    rng = np.random.default_rng(seed)
    sp = rng.random((n, steps, rows)) < rate
    for choose in ("auto", "dense", "aer"):
        slot, back, _ = decode_upload(encode_upload(sp, slot=3, choose=choose))
        assert slot == 3 and np.array_equal(back, sp)
    out = rng.random((n, steps, 12)) < rate
    counts, back = decode_output(encode_output(out))
    assert np.array_equal(back, out) and np.array_equal(counts, out.sum(axis=1))
