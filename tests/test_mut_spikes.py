"""Spike payloads of firmware_iface/spikes.py against docs/protocol.md (issue 18).

Expected bytes are built here by a small independent encoder (loops + ``struct.pack``) from
docs/protocol.md: "Records" (UPLOAD, SAMPLE, OUTPUT) and "Spike uploads" (dense = steps x rows
bits, step-major, least-significant bit first; AER = sorted u32 ``step << 8 | row``; output =
OUTPUT record, n x neurons u16 counts, then u32 ``step << 8 | neuron`` grouped by sample).
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_iface.records import PayloadError
from firmware_iface.spikes import (decode_output, decode_upload, decode_upload_packed, encode_output,
                                   encode_upload)

UPLOAD = "<IIHH"       # slot, n, steps, rows (12 bytes)
SAMPLE = "<B3xI"       # encoding, _pad[3], nbytes (8 bytes)
OUTPUT = "<IHHI"       # n, neurons, steps, events (12 bytes)
DENSE, AER = 0, 1


def dense_bytes(sample: np.ndarray) -> bytes:
    """Spike uploads: steps x rows bits, step-major, LSB first, padded to whole bytes."""
    steps, rows = sample.shape
    out = bytearray((steps * rows + 7) // 8)
    for t in range(steps):
        for r in range(rows):
            if sample[t, r]:
                bit = t * rows + r
                out[bit // 8] |= 1 << (bit % 8)
    return bytes(out)


def aer_bytes(sample: np.ndarray) -> bytes:
    """Spike uploads: u32 words step << 8 | row, sorted by step then row."""
    steps, rows = sample.shape
    return b"".join(struct.pack("<I", t << 8 | r) for t in range(steps) for r in range(rows) if sample[t, r])


def upload_bytes(spikes: np.ndarray, slot: int, encodings: list[int]) -> bytes:
    n, steps, rows = spikes.shape
    out = struct.pack(UPLOAD, slot, n, steps, rows)
    for s, e in zip(spikes, encodings):
        data = dense_bytes(s) if e == DENSE else aer_bytes(s)
        out += struct.pack(SAMPLE, e, len(data)) + data
    return out


def test_hand_formats_have_the_documented_sizes():
    assert [struct.calcsize(f) for f in (UPLOAD, SAMPLE, OUTPUT)] == [12, 8, 12]


def _mixed() -> np.ndarray:
    """Sample 0 busy (dense is smaller), sample 1 a single spike (AER is smaller), 5 x 7 bits."""
    rng = np.random.default_rng(3)
    s = np.zeros((2, 5, 7), bool)
    s[0] = rng.random((5, 7)) < 0.5
    s[1, 3, 6] = True
    return s


def test_auto_upload_picks_the_smaller_encoding_per_sample():
    """kills spikes.encode_upload mutants (choice rule, SAMPLE header fields, AER word layout,
    dense bit order): dense 5 bytes vs AER 4 bytes per spike."""
    s = _mixed()
    assert encode_upload(s, slot=9) == upload_bytes(s, 9, [DENSE, AER])


def test_forced_encodings_match_the_hand_encoder():
    """kills spikes.encode_upload mutants on choose="dense" / "aer"."""
    s = _mixed()
    assert encode_upload(s, slot=1, choose="dense") == upload_bytes(s, 1, [DENSE, DENSE])
    assert encode_upload(s, slot=2, choose="aer") == upload_bytes(s, 2, [AER, AER])


def test_a_tie_goes_to_dense():
    """Spike uploads: 'The host picks the smaller encoding per sample' and the module's tie rule
    (ties: dense): 4 x 8 bits = 4 bytes dense, one spike = 4 bytes AER -> dense."""
    s = np.zeros((1, 4, 8), bool)
    s[0, 2, 5] = True
    assert encode_upload(s) == upload_bytes(s, 0, [DENSE])
    s2 = np.zeros((1, 9, 8), bool)       # 9 bytes dense vs 8 bytes for two spikes: AER
    s2[0, 0, 0] = s2[0, 8, 7] = True
    assert encode_upload(s2) == upload_bytes(s2, 0, [AER])


def test_encode_upload_refuses_bad_shapes_and_choices():
    with pytest.raises(ValueError, match="shape"):
        encode_upload(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="encoding limits"):
        encode_upload(np.zeros((1, 2, 257), bool))
    with pytest.raises(ValueError, match="unknown encoding choice"):
        encode_upload(np.zeros((1, 2, 2), bool), choose="rle")


def test_decode_upload_of_hand_built_mixed_payload():
    """kills spikes.decode_upload_packed mutants: SAMPLE parsing, AER expansion, the dense path
    and the slot / encodings returned."""
    s = _mixed()
    slot, got, encs = decode_upload(upload_bytes(s, 42, [DENSE, AER]))
    assert slot == 42 and encs.tolist() == [DENSE, AER]
    assert np.array_equal(got, s)


def test_decode_upload_all_dense_clears_the_pad_bits():
    """kills spikes.decode_upload_packed mutants on the pad mask: 3 x 3 = 9 bits, the 7 pad bits
    of the last byte are set on the wire and must be ignored."""
    s = np.zeros((2, 3, 3), bool)
    s[0, 2, 2] = True         # bit 8: the last byte's bit 0
    s[1, 0, 1] = True
    raw = bytearray(upload_bytes(s, 0, [DENSE, DENSE]))
    # pad bits: byte 1 of each sample's data
    raw[12 + 8 + 1] |= 0xFE
    raw[12 + 8 + 2 + 8 + 1] |= 0xFE
    slot, packed, steps, rows, encs = decode_upload_packed(bytes(raw))
    assert (slot, steps, rows) == (0, 3, 3) and encs.tolist() == [0, 0]
    assert packed.tolist() == [[0, 1], [2, 0]]
    assert np.array_equal(decode_upload(bytes(raw))[1], s)


def test_decode_upload_mixed_dense_clears_the_pad_bits():
    """kills spikes.decode_upload_packed mutants on the pad mask in the per-sample path."""
    s = np.zeros((2, 3, 3), bool)
    s[0, 2, 2] = True
    s[1, 1, 1] = True
    raw = bytearray(upload_bytes(s, 0, [DENSE, AER]))
    raw[12 + 8 + 1] |= 0xFE
    slot, packed, steps, rows, encs = decode_upload_packed(bytes(raw))
    assert packed.tolist() == [[0, 1], [16, 0]] and encs.tolist() == [0, 1]


@pytest.mark.parametrize("bad, what", [
    (struct.pack(UPLOAD, 0, 1, 0, 4), "not valid"),                 # steps 0
    (struct.pack(UPLOAD, 0, 1, 4, 0), "not valid"),                 # rows 0
    (struct.pack(UPLOAD, 0, 1, 4, 257), "not valid"),               # rows > 256
    (struct.pack(UPLOAD, 0, 2, 4, 4) + struct.pack(SAMPLE, 0, 2) + b"\x00\x00", "samples announced"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 0, 3) + b"\x00\x00", "data bytes announced"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 0, 1) + b"\x00", "dense bitmap of 1 bytes"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 1, 3) + b"\x00" * 3, "not a multiple of 4"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 1, 4) + struct.pack("<I", 4 << 8), "outside"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 1, 4) + struct.pack("<I", 4), "outside"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 2, 0), "unknown encoding 2"),
    (struct.pack(UPLOAD, 0, 1, 4, 4) + struct.pack(SAMPLE, 0, 2) + b"\x00\x00\x00", "trailing"),
])
def test_decode_upload_refuses_bad_payloads(bad, what):
    """kills spikes.decode_upload_packed mutants on each size / encoding check ([op.upload_spikes]
    refusals: bad SAMPLE encoding, AER event outside the sample, n larger than the payload)."""
    with pytest.raises(PayloadError, match=what):
        decode_upload_packed(bad)


def test_decode_upload_max_bits_is_inclusive():
    """kills spikes.decode_upload_packed mutants on `n * steps * rows > max_bits`."""
    s = np.zeros((2, 4, 4), bool)
    raw = upload_bytes(s, 0, [DENSE, DENSE])
    assert decode_upload_packed(raw, max_bits=32)[1].shape == (2, 2)
    with pytest.raises(PayloadError, match="exceeds 31"):
        decode_upload_packed(raw, max_bits=31)


def output_bytes(spikes: np.ndarray) -> bytes:
    """READ_OUTPUT reply by hand: OUTPUT, n x neurons u16 counts, u32 step << 8 | neuron grouped
    by sample, within a sample ordered by step then neuron."""
    n, steps, neurons = spikes.shape
    counts = b"".join(struct.pack("<H", int(spikes[i, :, k].sum())) for i in range(n) for k in range(neurons))
    ev = [t << 8 | k for i in range(n) for t in range(steps) for k in range(neurons) if spikes[i, t, k]]
    return struct.pack(OUTPUT, n, neurons, steps, len(ev)) + counts + b"".join(struct.pack("<I", w) for w in ev)


def _out() -> np.ndarray:
    s = np.zeros((2, 6, 3), bool)
    s[0, 0, 2] = s[0, 5, 0] = s[0, 5, 2] = True
    s[1, 3, 1] = True
    return s


def test_encode_output_matches_the_hand_layout():
    """kills spikes.encode_output mutants (header fields, count dtype/order, event words)."""
    assert encode_output(_out()) == output_bytes(_out())


def test_decode_output_of_hand_built_payload():
    """kills spikes.decode_output mutants: counts (n, neurons) and spikes rebuilt per sample."""
    counts, spikes = decode_output(output_bytes(_out()), n_expected=2)
    assert counts.tolist() == [[1, 0, 2], [0, 1, 0]]
    assert np.array_equal(spikes, _out())
    c0, s0 = decode_output(struct.pack(OUTPUT, 0, 0, 100, 0))
    assert c0.shape == (0, 0) and s0.shape == (0, 100, 0)


@pytest.mark.parametrize("bad, kw, what", [
    (output_bytes(_out()), {"n_expected": 3}, "3 were asked for"),
    (output_bytes(_out()), {"max_steps": 5}, "outside 5 x 1..256"),
    (output_bytes(_out()), {"max_neurons": 2}, "outside 4096 x 1..2"),
    (struct.pack(OUTPUT, 1, 0, 6, 0), {}, "outside"),                          # n > 0, no neurons
    (struct.pack(OUTPUT, 5, 3, 6, 0) + b"\x00" * 6, {}, "claims 5 samples"),
    (output_bytes(_out()) + b"\x00", {}, "expected"),
    (output_bytes(_out())[:-1], {}, "expected"),
])
def test_decode_output_refuses_inconsistent_payloads(bad, kw, what):
    """kills spikes.decode_output mutants on the size checks ([op.read_output])."""
    with pytest.raises(PayloadError, match=what):
        decode_output(bad, **kw)


def test_decode_output_limits_are_inclusive():
    """kills spikes.decode_output mutants `steps > max_steps` -> `>=` (and for neurons)."""
    counts, spikes = decode_output(output_bytes(_out()), max_steps=6, max_neurons=3)
    assert spikes.shape == (2, 6, 3)


def test_decode_output_checks_counts_against_events_and_event_range():
    """kills spikes.decode_output mutants: counts summing to another number than `events`, and an
    event outside steps x neurons, are refused."""
    s = _out()
    raw = bytearray(output_bytes(s))
    struct.pack_into("<H", raw, 12, 2)        # sample 0, neuron 0: count 2 instead of 1
    with pytest.raises(PayloadError, match="sum to 5, header says 4"):
        decode_output(bytes(raw))
    one = np.zeros((1, 4, 2), bool)
    one[0, 0, 0] = True
    raw = bytearray(output_bytes(one))
    struct.pack_into("<I", raw, len(raw) - 4, 4 << 8)          # step 4 of 4
    with pytest.raises(PayloadError, match="^output event outside steps x neurons$"):
        decode_output(bytes(raw))
    struct.pack_into("<I", raw, len(raw) - 4, 2)               # neuron 2 of 2
    with pytest.raises(PayloadError, match="^output event outside steps x neurons$"):
        decode_output(bytes(raw))


def test_decode_upload_mixed_masks_only_the_last_byte():
    """kills spikes.decode_upload_packed mutants on which byte gets the pad mask (index -1 ->
    +1 / -2) and on the mask itself: 5 x 4 = 20 bits = 3 bytes, pad bits = the top 4 bits of the
    third byte; bits in bytes 0 and 1 are kept."""
    s = np.zeros((2, 5, 4), bool)
    s[0, 1, 3] = s[0, 3, 0] = s[0, 4, 3] = True     # bits 7, 12, 19 -> bytes 0x80, 0x10, 0x08
    s[1, 0, 0] = True
    raw = bytearray(upload_bytes(s, 0, [DENSE, AER]))
    raw[12 + 8 + 2] |= 0xF0                           # pad bits of sample 0 set on the wire
    _, packed, _, _, encs = decode_upload_packed(bytes(raw))
    assert encs.tolist() == [0, 1]
    assert packed[0].tolist() == [0x80, 0x10, 0x08]
    assert packed[1].tolist() == [0x01, 0, 0]


def test_decode_upload_mixed_keeps_a_full_last_byte():
    """kills spikes.decode_upload_packed mutant `nbits % 8` -> `nbits / 8` in the pad mask: 4 x 4
    = 16 bits have no pad bits, so the last byte of a dense sample is kept whole."""
    s = np.zeros((2, 4, 4), bool)
    s[0, 3, :] = True                                 # bits 12..15: byte 1 = 0xF0
    s[0, 2, 1] = True                                 # bit 9: byte 1 |= 0x02
    s[1, 0, 2] = True
    _, packed, _, _, _ = decode_upload_packed(upload_bytes(s, 0, [DENSE, AER]))
    assert packed[0].tolist() == [0x00, 0xF2]
    slot, got, encs = decode_upload(upload_bytes(s, 0, [DENSE, AER]))
    assert np.array_equal(got, s)


def test_encode_output_counts_each_nonzero_entry_as_one_spike():
    """kills spikes.encode_output mutant (input not taken as bool): a uint8 mask with 0 / 255
    entries is the same readout as the bool array (counts 1 per spike, not 255)."""
    s = _out()
    assert encode_output(s.astype(np.uint8) * 255) == output_bytes(s)


def test_the_numpy_1_branch_chooses_the_same_encodings(monkeypatch):
    """kills spikes.encode_upload mutants in the numpy < 2 branch (pyproject allows numpy 1.26,
    which has no np.bitwise_count): with it hidden, the mixed upload is still the hand-built one."""
    monkeypatch.delattr(np, "bitwise_count")
    s = _mixed()
    assert encode_upload(s, slot=9) == upload_bytes(s, 9, [DENSE, AER])
