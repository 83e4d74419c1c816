"""The vectorised AEDAT 3.1 reader (issue 17 item 5) against a per-event decoder written from
the spec (tests.test_aedat_writer.spec_decode), on packet sequences built here byte by byte:
any packet sizes (one packet, many small ones, large ones), invalid events, overflow epochs,
other event types in between; plus the validation it does by whole-array reductions."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.aedat import decode_aedat
from bench.errors import DataFormatError
from tests.test_aedat_writer import spec_decode

HEADER = b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def packet(etype, words, *, overflow=0, size=8, tsoff=4):
    n = len(words)
    body = bytearray(n * size)
    for i, (data, ts) in enumerate(words):
        struct.pack_into("<I", body, i * size, data)
        struct.pack_into("<I", body, i * size + tsoff, ts)
    return struct.pack("<hhiiiiii", etype, 1, size, tsoff, overflow, n, n, n) + bytes(body)


def word(x, y, p, valid=1):
    return (x << 17) | (y << 2) | (p << 1) | valid


_event = st.tuples(st.integers(0, 127), st.integers(0, 127), st.integers(0, 1), st.integers(0, 2**31 - 1),
                   st.sampled_from([1, 1, 1, 0]))
_packet = st.one_of(
    st.tuples(st.just(1), st.lists(_event, min_size=1, max_size=2500), st.integers(0, 5)),
    st.tuples(st.just(0), st.lists(_event, min_size=1, max_size=3), st.integers(0, 5)),  # special events
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_packet, min_size=1, max_size=12))
def test_reader_matches_the_spec_decoder(packets):
    blob = HEADER + b"".join(
        packet(etype, [(word(x, y, p, v), ts) for x, y, p, ts, v in evs], overflow=ovf)
        for etype, evs, ovf in packets
    )
    expected, _ = spec_decode(blob)
    got = decode_aedat(blob)
    assert [tuple(int(v) for v in e) for e in got] == expected


def test_invalid_events_outside_the_sensor_are_ignored():
    blob = HEADER + packet(1, [(word(300, 5, 1, valid=0), 10), (word(3, 4, 0), 11)])
    ev = decode_aedat(blob)
    assert ev["x"].tolist() == [3] and ev["t"].tolist() == [11]


@pytest.mark.parametrize("sensor, bad", [((128, 128), (3, 128)), ((100, 60), (99, 60)), ((100, 60), (100, 0))])
def test_address_outside_the_sensor_names_the_event_byte(sensor, bad):
    ok = [(word(1, 2, 1), 5)] * 3
    first = packet(1, ok)
    blob = HEADER + first + packet(1, ok[:1] + [(word(*bad, 0), 9)])
    off = len(HEADER) + len(first) + 28 + 8  # second event of the second packet
    with pytest.raises(DataFormatError, match=rf"event at byte {off} has x={bad[0]} y={bad[1]}, "
                                              rf"outside the {sensor[0]}x{sensor[1]} sensor"):
        decode_aedat(blob, sensor=sensor)
    assert len(decode_aedat(blob, sensor=None)) == 5


def test_in_range_addresses_of_a_non_power_of_two_sensor_pass():
    blob = HEADER + packet(1, [(word(99, 59, 1), 5), (word(64, 32, 0), 6)])
    assert decode_aedat(blob, sensor=(100, 60))["x"].tolist() == [99, 64]


def test_negative_timestamp_names_the_event_byte():
    first = packet(1, [(word(1, 2, 1), 5)] * 4)
    blob = HEADER + first + packet(1, [(word(1, 2, 1), 7), (word(1, 2, 1), 0x80000001)])
    off = len(HEADER) + len(first) + 28 + 8
    with pytest.raises(DataFormatError, match=rf"corrupted event at byte {off}: negative 32-bit timestamp -2147483647"):
        decode_aedat(blob)


@pytest.mark.parametrize(
    "fields, shown",
    [
        ((2, 1, 8, 4, 0, 2, 3, 3), "eventCapacity=2 eventNumber=3"),  # number > capacity
        ((2, 1, 8, 4, -1, 1, 1, 1), "eventTSOverflow=-1"),
        ((2, 1, 8, 6, 0, 1, 1, 1), "eventSize=8 eventTSOffset=6"),  # timestamp past the event
        ((2, 1, 8, -2, 0, 1, 1, 1), "eventTSOffset=-2"),
        ((2, 1, 8, 4, 0, -1, 0, 0), "eventCapacity=-1"),
        ((2, 1, 0, 0, 0, 1, 1, 1), "eventSize=0"),
    ],
)
def test_corrupted_header_field_is_named_before_a_later_truncation(fields, shown):
    good = packet(1, [(word(1, 2, 1), 5)])
    bad = struct.pack("<hhiiiiii", *fields) + b"\0" * 8
    truncated = packet(1, [(word(1, 2, 1), 6)] * 4)[:-5]
    blob = HEADER + good + bad + truncated
    with pytest.raises(DataFormatError, match=rf"corrupted packet header at byte {len(HEADER) + len(good)}: "
                                              rf".*{shown}"):
        decode_aedat(blob)


def test_truncated_packet_after_good_ones_names_its_offset():
    good = packet(1, [(word(1, 2, 1), 5)] * 3)
    blob = HEADER + good + packet(1, [(word(1, 2, 1), 6)] * 4)[:-5]
    with pytest.raises(DataFormatError, match=rf"truncated packet at byte {len(HEADER) + len(good)} "
                                              r"\(eventType=1, 4 events of 8 bytes\): needs 32 body bytes, only 27"):
        decode_aedat(blob)
