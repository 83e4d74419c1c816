"""AEDAT 3.1 writer (issue 15 item 6): fields mapped by name, unsorted input, exact bytes.

Expected bytes and decoded events come from the AEDAT 3.1 specification (iniVation
"AEDAT 3.1" file-format page, sections "Event Header" (28-byte packet header:
int16 eventType, int16 eventSource, int32 eventSize, eventTSOffset, eventTSOverflow,
eventCapacity, eventNumber, eventValid) and "Polarity Event" (uint32 data: bit 0 valid,
bit 1 polarity, bits 2-16 y, bits 17-31 x; int32 timestamp); libcaer events/polarity.h),
through the small decoder below, not through bench.data.aedat.
"""
from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.aedat import EVENT_DTYPE, decode_aedat, encode_aedat

END = b"#!END-HEADER\r\n"


def spec_decode(blob: bytes):
    """(events as (x, y, p, t) tuples, packet types in file order), read per the spec."""
    off = blob.index(END) + len(END)
    out, types = [], []
    while off < len(blob):
        etype, _src, size, tsoff, ovf, cap, num, _valid = struct.unpack_from("<hhiiiiii", blob, off)
        types.append(etype)
        off += 28
        for i in range(num):
            (data,) = struct.unpack_from("<I", blob, off + i * size)
            (ts,) = struct.unpack_from("<i", blob, off + i * size + tsoff)
            if etype == 1 and data & 1:
                out.append(((data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, (data >> 1) & 1, (ovf << 31) | ts))
        off += cap * size
    return out, types


def _structured(rows, order, dtypes):
    """A structured array of (x, y, p, t) rows with the fields in ``order`` and given dtypes."""
    dt = np.dtype([(f, dtypes[f]) for f in order])
    a = np.zeros(len(rows), dt)
    for k, f in enumerate("xypt"):
        a[f] = [r[k] for r in rows]
    return a


def test_exact_bytes_of_a_small_packet():
    """Two events, hand-encoded from the spec: x=1 y=2 ON t=100; x=127 y=0 OFF t=2^31-1."""
    ev = np.zeros(2, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = [1, 127], [2, 0], [1, 0], [100, 2**31 - 1]
    blob = encode_aedat(ev)
    body = blob[blob.index(END) + len(END):]
    expected = bytes.fromhex(
        "0100" "0000"  # eventType 1 (polarity), eventSource 0
        "08000000" "04000000"  # eventSize 8, eventTSOffset 4
        "00000000"  # eventTSOverflow 0
        "02000000" "02000000" "02000000"  # capacity, number, valid
        "0b000200" "64000000"  # data (1<<17)|(2<<2)|(1<<1)|1 = 0x0002000B, ts 100
        "0100fe00" "ffffff7f"  # data (127<<17)|1 = 0x00FE0001, ts 2^31-1
    )
    assert body == expected
    assert blob.startswith(b"#!AER-DAT3.1\r\n")


def test_fields_in_tonic_order_are_not_scrambled():
    rows = [(3, 70, 1, 10), (120, 5, 0, 20)]
    ev = _structured(rows, ["t", "x", "y", "p"], {"t": "<i8", "x": "<i2", "y": "<u2", "p": "<i1"})
    decoded, _ = spec_decode(encode_aedat(ev))
    assert decoded == rows


def test_one_wrap_packet_per_boundary_for_unsorted_input():
    """Unsorted input stepping back and forth across 2^31 and 2^32: one wrap per boundary."""
    t = [2**31 + 5, 3, 2**31 + 1, 7, 2**32 + 2, 1, 2**31 + 9, 2**32 + 1]
    rows = [(i, i + 1, i % 2, ti) for i, ti in enumerate(t)]
    blob = encode_aedat(_structured(rows, "xypt", dict.fromkeys("xypt", "<i8")), packet_events=3)
    decoded, types = spec_decode(blob)
    assert types.count(0) == 2  # epochs 1 and 2: two TIMESTAMP_WRAP packets, not one per step
    assert decoded == sorted(rows, key=lambda r: r[3])
    np.testing.assert_array_equal(decode_aedat(blob)["t"], sorted(t))


def test_equal_timestamps_keep_input_order():
    rows = [(5, 0, 1, 9), (1, 0, 0, 3), (6, 0, 1, 9), (2, 0, 0, 3), (7, 0, 0, 9)]
    decoded, _ = spec_decode(encode_aedat(_structured(rows, "pxty", dict.fromkeys("xypt", "<i8"))))
    assert decoded == [rows[1], rows[3], rows[0], rows[2], rows[4]]
    # long enough that an unstable sort (introsort) would reorder ties
    rng = np.random.default_rng(7)
    rows = [(int(i % 128), int(i // 128), int(i % 2), int(rng.integers(0, 4))) for i in range(500)]
    decoded, _ = spec_decode(encode_aedat(_structured(rows, "xypt", dict.fromkeys("xypt", "<i8"))))
    assert decoded == sorted(rows, key=lambda r: r[3])


_DTYPES = {"x": ["<u2", "<i4", "<i8", "<u8"], "y": ["<u2", "<i4", "<i8"], "p": ["u1", "<i2", "<i8", "?"],
           "t": ["<i8", "<u8"]}

_row = st.tuples(st.integers(0, 127), st.integers(0, 127), st.integers(0, 1), st.integers(0, 2**34))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(_row, max_size=40),
    order=st.permutations(["x", "y", "p", "t"]),
    dtypes=st.fixed_dictionaries({f: st.sampled_from(v) for f, v in _DTYPES.items()}),
    packet_events=st.integers(1, 7),
)
def test_roundtrip_any_field_order_and_dtype(rows, order, dtypes, packet_events):
    ev = _structured(rows, order, dtypes)
    blob = encode_aedat(ev, packet_events=packet_events)
    decoded, types = spec_decode(blob)
    expected = sorted(rows, key=lambda r: r[3])  # stable sort by time
    assert decoded == expected
    epochs = {r[3] >> 31 for r in rows}
    assert types.count(0) == len(epochs - {0})
    back = decode_aedat(blob)
    assert [tuple(int(v) for v in e) for e in back] == expected


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=40), seed=st.integers(0, 2**32 - 1))
def test_unsorted_events_read_back_as_the_same_multiset(rows, seed):
    rng = np.random.default_rng(seed)
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    back = decode_aedat(encode_aedat(_structured(shuffled, "txyp", dict.fromkeys("xypt", "<i8"))))
    assert Counter(tuple(int(v) for v in e) for e in back) == Counter(rows)
    assert np.all(np.diff(back["t"]) >= 0)


@pytest.mark.parametrize(
    "events, match",
    [
        (np.zeros((3, 4), np.int64), "structured array with fields x, y, p, t"),
        (np.zeros(2, [("x", "<u2"), ("y", "<u2"), ("polarity", "u1"), ("t", "<i8")]), r"lack field\(s\) p"),
        (_structured([(1, 1, 2, 5)], "xypt", dict.fromkeys("xypt", "<i8")), r"'p' value 2 outside 0\.\.1"),
        (_structured([(1, 1, -1, 5)], "xypt", dict.fromkeys("xypt", "<i8")), r"'p' value -1 outside 0\.\.1"),
        (_structured([(1, -3, 0, 5)], "xypt", dict.fromkeys("xypt", "<i8")), r"'y' value -3 outside"),
        (_structured([(1, 1, 0, -5)], "xypt", dict.fromkeys("xypt", "<i8")), r"'t' value -5 < 0"),
        (_structured([(1, 1, 0, 5)], "xypt", {"x": "<i8", "y": "<i8", "p": "<i8", "t": "<f8"}),
         "'t' must be integer"),
    ],
)
def test_bad_events_are_refused_naming_the_field(events, match):
    with pytest.raises(ValueError, match=match):
        encode_aedat(events)


def spec_encode_body(rows, packet_events):
    """Independent encoder of the packet stream (after the header), per the spec and libcaer's
    writing convention: events in time order; per overflow epoch (t >> 31) a special packet
    (type 0, size 8, ts offset 4) holding one TIMESTAMP_WRAP event (type 0 in bits 1-7, valid
    bit set, timestamp 0) when the epoch advances, then polarity packets of at most
    ``packet_events`` events with eventTSOverflow = epoch and capacity = number = valid."""
    out = bytearray()
    rows = sorted(rows, key=lambda r: r[3])
    epoch_prev = 0
    i = 0
    while i < len(rows):
        epoch = rows[i][3] >> 31
        j = i
        while j < len(rows) and rows[j][3] >> 31 == epoch:
            j += 1
        if epoch != epoch_prev:
            out += struct.pack("<hhiiiiii", 0, 0, 8, 4, epoch, 1, 1, 1) + struct.pack("<Ii", 1, 0)
            epoch_prev = epoch
        for k in range(i, j, packet_events):
            chunk = rows[k:min(j, k + packet_events)]
            out += struct.pack("<hhiiiiii", 1, 0, 8, 4, epoch, len(chunk), len(chunk), len(chunk))
            for x, y, p, t in chunk:
                out += struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | 1, t & 0x7FFFFFFF)
        i = j
    return bytes(out)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_row, max_size=30), packet_events=st.integers(1, 6))
def test_bytes_equal_an_independent_spec_encoder(rows, packet_events):
    blob = encode_aedat(_structured(rows, "yptx", dict.fromkeys("xypt", "<i8")), packet_events=packet_events)
    assert blob[blob.index(END) + len(END):] == spec_encode_body(rows, packet_events)
