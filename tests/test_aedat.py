"""AEDAT 3.1 reader/writer tests on bytes built here, independently of bench.data.aedat."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.aedat import EVENT_DTYPE, decode_aedat, encode_aedat, read_aedat, read_header, write_aedat
from bench.errors import DataFormatError

HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#Start-Time: 2017-01-01\r\n#!END-HEADER\r\n"


def pkt(etype, events, *, size=8, tsoff=4, overflow=0, source=1, capacity=None, number=None):
    """A packet from (data_word, timestamp) pairs, following libcaer's struct layout."""
    n = len(events)
    cap = n if capacity is None else capacity
    num = n if number is None else number
    head = struct.pack("<hhiiiiii", etype, source, size, tsoff, overflow, cap, num, num)
    body = b""
    for data, ts in events:
        ev = bytearray(size)
        struct.pack_into("<I", ev, 0, data)
        struct.pack_into("<i", ev, tsoff, ts)
        body += bytes(ev)
    return head + body


def pol(x, y, p, valid=1):
    return (x << 17) | (y << 2) | (p << 1) | valid


def test_polarity_overflow_special_and_other_packets(tmp_path):
    special = pkt(0, [((0 << 1) | 1, 0)])  # TIMESTAMP_WRAP special event: skipped
    frame_like = pkt(2, [(0xDEADBEEF, 5), (0x12345678, 6)], size=16, tsoff=12)  # other type: skipped
    blob = (
        HEADER
        + pkt(1, [(pol(1, 2, 1), 100), (pol(127, 127, 0), 2_147_483_647)])
        + special
        + frame_like
        + pkt(1, [(pol(5, 6, 1), 7), (pol(9, 9, 1, valid=0), 8), (pol(0, 3, 0), 2_000)], overflow=1)
        + pkt(1, [(pol(10, 20, 1), 1)], overflow=3)
    )
    f = tmp_path / "rec.aedat"
    f.write_bytes(blob)
    ev = read_aedat(f)
    assert ev.dtype == EVENT_DTYPE
    assert ev["x"].tolist() == [1, 127, 5, 0, 10]
    assert ev["y"].tolist() == [2, 127, 6, 3, 20]
    assert ev["p"].tolist() == [1, 0, 1, 0, 1]
    assert ev["t"].tolist() == [100, 2**31 - 1, 2**31 + 7, 2**31 + 2000, 3 * 2**31 + 1]
    assert read_header(f)[2] == "#Source 1: DVS128"


def test_nonstandard_event_layout_and_empty_file(tmp_path):
    blob = HEADER + pkt(1, [(pol(3, 4, 1), 11), (pol(5, 6, 0), 12)], size=12, tsoff=8)
    ev = decode_aedat(blob)
    assert ev["x"].tolist() == [3, 5] and ev["t"].tolist() == [11, 12]
    assert len(decode_aedat(HEADER)) == 0
    assert len(decode_aedat(HEADER + pkt(1, []))) == 0


def test_header_with_lf_line_ends():
    blob = b"#!AER-DAT3.1\n#x\n#!END-HEADER\n" + pkt(1, [(pol(1, 1, 1), 5)])
    assert decode_aedat(blob)["t"].tolist() == [5]


def test_truncated_last_packet_names_file_and_offset(tmp_path):
    first = pkt(1, [(pol(1, 1, 1), 1)] * 3)
    last = pkt(1, [(pol(2, 2, 0), 2)] * 4)
    f = tmp_path / "cut.aedat"
    f.write_bytes(HEADER + first + last[:-5])
    off = len(HEADER) + len(first)
    with pytest.raises(DataFormatError) as e:
        read_aedat(f)
    msg = str(e.value)
    assert str(f) in msg and f"byte {off}" in msg and "truncated" in msg


def test_truncated_packet_header(tmp_path):
    first = pkt(1, [(pol(1, 1, 1), 1)])
    f = tmp_path / "cut2.aedat"
    f.write_bytes(HEADER + first + pkt(1, [(pol(1, 1, 1), 1)])[:10])
    with pytest.raises(DataFormatError, match=rf"cut2\.aedat.*byte {len(HEADER) + len(first)}"):
        read_aedat(f)


@pytest.mark.parametrize(
    "blob, where",
    [
        (b"#!AER-DAT2.0\r\n#!END-HEADER\r\n", "byte 0"),
        (b"garbage", "byte 0"),
        (b"#!AER-DAT3.1\r\n#Format: RAW\r\nnot a comment\r\n#!END-HEADER\r\n", "byte 28"),
        (b"#!AER-DAT3.1\r\n#Format: RAW\r\n", "END-HEADER"),
    ],
)
def test_corrupted_header(tmp_path, blob, where):
    f = tmp_path / "bad.aedat"
    f.write_bytes(blob)
    with pytest.raises(DataFormatError) as e:
        read_aedat(f)
    assert "bad.aedat" in str(e.value) and where in str(e.value)


def test_corrupted_packet_header(tmp_path):
    f = tmp_path / "badpkt.aedat"
    f.write_bytes(HEADER + struct.pack("<hhiiiiii", 1, 1, -8, 4, 0, 1, 1, 1) + b"\0" * 8)
    with pytest.raises(DataFormatError, match=rf"badpkt\.aedat.*byte {len(HEADER)}"):
        read_aedat(f)


def test_wrong_sensor_size_names_file_and_event_offset(tmp_path):
    first = pkt(1, [(pol(1, 1, 1), 1), (pol(2, 2, 1), 2)])
    second = pkt(1, [(pol(3, 3, 1), 3), (pol(200, 5, 1), 4)])  # x=200 on a 128x128 sensor
    f = tmp_path / "big.aedat"
    f.write_bytes(HEADER + first + second)
    off = len(HEADER) + len(first) + 28 + 8
    with pytest.raises(DataFormatError) as e:
        read_aedat(f)
    assert "big.aedat" in str(e.value) and f"byte {off}" in str(e.value) and "x=200" in str(e.value)
    assert read_aedat(f, sensor=(256, 256))["x"].tolist() == [1, 2, 3, 200]
    assert len(read_aedat(f, sensor=None)) == 4


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="nope.aedat"):
        read_aedat(tmp_path / "nope.aedat")


def _independent_decode(blob: bytes):
    """Minimal decoder written from the spec, to check the writer's bytes."""
    end = blob.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    off, out, types = end, [], []
    while off < len(blob):
        etype, _s, size, tsoff, ovf, cap, num, _v = struct.unpack_from("<hhiiiiii", blob, off)
        types.append(etype)
        off += 28
        for i in range(num):
            data, = struct.unpack_from("<I", blob, off + i * size)
            ts, = struct.unpack_from("<i", blob, off + i * size + tsoff)
            if etype == 1 and data & 1:
                out.append(((data >> 17) & 0x1FFF, (data >> 2) & 0x1FFF, (data >> 1) & 1, (ovf << 31) | ts))
        off += cap * size
    return out, types


def test_writer_bytes_follow_the_spec():
    ev = np.zeros(5, EVENT_DTYPE)
    ev["x"] = [0, 1, 127, 64, 3]
    ev["y"] = [0, 127, 5, 64, 9]
    ev["p"] = [0, 1, 1, 0, 1]
    ev["t"] = [0, 10, 2**31 - 1, 2**31, 5 * 2**31 + 17]
    blob = encode_aedat(ev, packet_events=2)
    assert blob.startswith(b"#!AER-DAT3.1\r\n")
    decoded, types = _independent_decode(blob)
    assert decoded == [tuple(int(v) for v in e) for e in ev]
    assert types.count(0) == 2  # a timestamp-wrap packet per overflow change
    np.testing.assert_array_equal(decode_aedat(blob), ev)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 127), st.integers(0, 127), st.integers(0, 1), st.integers(0, 2**36)),
        max_size=60,
    ),
    st.integers(1, 9),
)
def test_roundtrip(rows, packet_events):
    ev = np.array(rows, dtype=EVENT_DTYPE) if rows else np.zeros(0, EVENT_DTYPE)
    ev = np.sort(ev, order="t")
    back = decode_aedat(encode_aedat(ev, packet_events=packet_events))
    np.testing.assert_array_equal(back, ev)


def test_write_and_read_file(tmp_path):
    rng = np.random.default_rng(1)
    ev = np.zeros(10_000, EVENT_DTYPE)
    ev["x"] = rng.integers(0, 128, len(ev))
    ev["y"] = rng.integers(0, 128, len(ev))
    ev["p"] = rng.integers(0, 2, len(ev))
    ev["t"] = np.sort(rng.integers(0, 10**7, len(ev)))
    f = write_aedat(tmp_path / "w.aedat", ev, packet_events=333)
    np.testing.assert_array_equal(read_aedat(f), ev)


def test_unaligned_other_packet_between_polarity_packets():
    odd = struct.pack("<hhiiiiii", 5, 1, 6, 0, 0, 3, 3, 3) + b"\x01" * 18  # 6-byte events (sample type)
    blob = (HEADER + pkt(1, [(pol(1, 2, 1), 10), (pol(3, 4, 0), 11)]) + odd
            + pkt(1, [(pol(5, 6, 1), 12)], overflow=2))
    ev = decode_aedat(blob)
    assert ev["x"].tolist() == [1, 3, 5] and ev["t"].tolist() == [10, 11, 2 * 2**31 + 12]


def test_many_small_packets_match_one_big_packet():
    rng = np.random.default_rng(3)
    ev = np.zeros(5000, EVENT_DTYPE)
    ev["x"] = rng.integers(0, 128, len(ev))
    ev["y"] = rng.integers(0, 128, len(ev))
    ev["p"] = rng.integers(0, 2, len(ev))
    ev["t"] = np.sort(rng.integers(2**31 - 10_000, 2**31 + 10_000, len(ev)))
    for pe in (1, 7, 100, 5000):
        np.testing.assert_array_equal(decode_aedat(encode_aedat(ev, packet_events=pe)), ev)
