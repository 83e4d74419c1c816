"""Mutation-driven tests of bench.data.aedat (issue 18).

Files are built byte by byte here from the AEDAT 3.1 format (iniVation / libcaer): a text
header, then packets with a 28-byte little-endian header (int16 eventType, int16
eventSource, int32 eventSize, eventTSOffset, eventTSOverflow, eventCapacity, eventNumber,
eventValid); a polarity event is a uint32 data word (bit 0 valid, bit 1 polarity, bits 2..16
y, bits 17..31 x) and an int32 timestamp in microseconds at eventTSOffset; the full timestamp
is (eventTSOverflow << 31) | timestamp.  Expected events are written down by hand.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from bench.data.aedat import decode_aedat, encode_aedat, read_header
from bench.errors import DataFormatError

HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"


def word(x: int, y: int, p: int, valid: int = 1) -> int:
    return (x << 17) | (y << 2) | (p << 1) | valid


def packet(etype: int, events: list[tuple[int, int]], *, size: int = 8, tsoff: int = 4, overflow: int = 0,
           capacity: int | None = None, number: int | None = None) -> bytes:
    n = len(events)
    cap = n if capacity is None else capacity
    num = n if number is None else number
    out = bytearray(struct.pack("<hhiiiiii", etype, 1, size, tsoff, overflow, cap, num, num))
    for data, ts in events:
        ev = bytearray(size)
        struct.pack_into("<I", ev, 0, data)
        struct.pack_into("<i", ev, tsoff, ts)
        out += ev
    out += bytes(size * (cap - n))
    return bytes(out)


def rows(ev: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(int(e["x"]), int(e["y"]), int(e["p"]), int(e["t"])) for e in ev]


def test_twelve_byte_polarity_events_with_the_stamp_at_offset_4():
    """Kills decode_aedat_63 (12-byte events on the 4-byte grid sent down the 8-byte fast
    path): polarity packets whose events are 12 bytes (timestamp at offset 4, 4 spare bytes)
    decode event by event; a one-event packet is read too (decode_aedat_28)."""
    blob = HEADER + packet(1, [(word(5, 6, 1), 100)], size=12) \
        + packet(1, [(word(7, 8, 0), 200), (word(127, 0, 1), 300)], size=12)
    assert rows(decode_aedat(blob)) == [(5, 6, 1, 100), (7, 8, 0, 200), (127, 0, 1, 300)]


def test_one_event_packets_and_the_overflow_epoch():
    """Protects decode_aedat: packets of a single event are read (num > 0, not > 1); the
    epoch (eventTSOverflow << 31) is OR-ed onto each packet's 31-bit stamps, the stamps kept."""
    blob = HEADER + packet(1, [(word(1, 2, 1), 7)]) + packet(1, [(word(3, 4, 0), 9)], overflow=1) \
        + packet(1, [(word(5, 6, 1), 11), (word(7, 8, 1), 12)], overflow=3)
    assert rows(decode_aedat(blob)) == [(1, 2, 1, 7), (3, 4, 0, (1 << 31) | 9), (5, 6, 1, (3 << 31) | 11),
                                        (7, 8, 1, (3 << 31) | 12)]


def test_invalid_events_are_dropped_by_their_valid_bit_only():
    """Protects decode_aedat's validity mask: bit 0 decides (an OFF event, polarity bit 0, that
    is valid stays; an ON event with bit 0 clear goes)."""
    blob = HEADER + packet(1, [(word(1, 1, 0, valid=1), 1), (word(2, 2, 1, valid=0), 2),
                               (word(3, 3, 1, valid=1), 3), (word(4, 4, 0, valid=0), 4)])
    assert rows(decode_aedat(blob)) == [(1, 1, 0, 1), (3, 3, 1, 3)]


def test_an_out_of_range_address_names_the_byte_of_its_event():
    """Protects decode_aedat's sensor check: the FIRST event outside the sensor is named by
    its byte offset (header + 28-byte packet header + 8 bytes per event before it), with its
    x and y."""
    blob = HEADER + packet(1, [(word(1, 1, 0), 1), (word(2, 130, 0), 2), (word(200, 1, 0), 3)])
    off = len(HEADER) + 28 + 8
    with pytest.raises(DataFormatError, match=rf"event at byte {off} has x=2 y=130, outside the 128x128 sensor"):
        decode_aedat(blob)
    blob = HEADER + packet(1, [(word(1, 1, 0), 1)]) + packet(1, [(word(0, 0, 0), 2), (word(128, 0, 1), 3)])
    off = len(HEADER) + 28 + 8 + 28 + 8
    with pytest.raises(DataFormatError, match=rf"event at byte {off} has x=128 y=0"):
        decode_aedat(blob)


def test_a_short_polarity_event_size_is_named():
    """Protects decode_aedat: a polarity packet with eventSize < 8 is a corrupted header at
    that packet's offset."""
    good = packet(1, [(word(1, 1, 0), 1)])
    bad = struct.pack("<hhiiiiii", 1, 1, 4, 0, 0, 1, 1, 1) + bytes(4)
    with pytest.raises(DataFormatError, match=rf"corrupted packet header at byte {len(HEADER) + len(good)}: "
                                              r"polarity eventSize=4 < 8"):
        decode_aedat(HEADER + good + bad)


@pytest.mark.parametrize("fields, text", [
    ((1, 1, 0, 4, 0, 1, 1, 1), "eventSize=0"),
    ((1, 1, 8, 4, 0, 1, 2, 2), "eventCapacity=1 eventNumber=2"),
    ((1, 1, 8, 4, -1, 1, 1, 1), "eventTSOverflow=-1"),
    ((1, 1, 8, 6, 0, 1, 1, 1), "eventTSOffset=6"),
])
def test_corrupted_packet_header_fields_are_named_at_the_packets_offset(fields, text):
    """Protects _walk_packets' header checks: eventSize <= 0, eventNumber > eventCapacity,
    negative overflow, a timestamp offset past the event end; the message gives the packet's
    byte offset (not a field value) and the fields."""
    good = packet(1, [(word(1, 1, 0), 1)])
    bad = struct.pack("<hhiiiiii", *fields) + bytes(16)
    with pytest.raises(DataFormatError, match=rf"corrupted packet header at byte {len(HEADER) + len(good)}: "
                                              rf"eventType=1 .*{text}"):
        decode_aedat(HEADER + good + bad)


def test_a_full_packet_with_number_equal_to_capacity_is_fine():
    """Protects _walk_packets: eventNumber == eventCapacity is the normal case (not corrupt);
    number < capacity reads the first ``number`` events."""
    blob = HEADER + packet(1, [(word(9, 9, 1), 5), (word(8, 8, 0), 6)], capacity=3, number=2) \
        + packet(1, [(word(7, 7, 1), 7)])
    assert rows(decode_aedat(blob)) == [(9, 9, 1, 5), (8, 8, 0, 6), (7, 7, 1, 7)]


def test_truncation_messages_count_the_bytes_present():
    """Protects _walk_packets' truncation messages: the bytes present after the offset."""
    good = packet(1, [(word(1, 1, 0), 1)])
    n = len(HEADER) + len(good)
    with pytest.raises(DataFormatError, match=rf"truncated packet header at byte {n}: 10 of 28 bytes present "
                                              rf"\(file ends at byte {n + 10}\)"):
        decode_aedat(HEADER + good + bytes(10))
    head = struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 3, 3, 3)
    with pytest.raises(DataFormatError, match=rf"truncated packet at byte {n} \(eventType=1, 3 events of 8 bytes\): "
                                              rf"needs 24 body bytes, only 5 present \(file ends at byte {n + 33}\)"):
        decode_aedat(HEADER + good + head + bytes(5))


def test_header_lines_are_returned_and_a_non_text_line_is_named(tmp_path):
    """Protects read_header (the lines, not the offset) and parse_header's "not text" error."""
    p = tmp_path / "a.aedat"
    p.write_bytes(HEADER + packet(1, [(word(1, 1, 0), 1)]))
    assert read_header(p) == ["#!AER-DAT3.1", "#Format: RAW", "#!END-HEADER"]
    with pytest.raises(DataFormatError, match=r"corrupted header at byte 14: line is not text$"):
        decode_aedat(b"#!AER-DAT3.1\r\n#\xff\xfe\r\n#!END-HEADER\r\n")


def test_writer_packet_and_wrap_headers_follow_the_format():
    """Protects encode_aedat's packet headers: polarity (type 1, size 8, offset 4, overflow,
    capacity = number = valid = n) and one TIMESTAMP_WRAP special packet (type 0, one event,
    capacity 1) per overflow epoch entered; the header's extra lines and END-HEADER."""
    ev = np.zeros(3, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8")])
    ev["x"], ev["y"], ev["p"], ev["t"] = [1, 2, 3], [4, 5, 6], [1, 0, 1], [10, 20, (1 << 31) + 5]
    blob = encode_aedat(ev, header_extra=["Note: x"])
    text_end = blob.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    assert b"\r\n#Note: x\r\n" in blob[:text_end]
    body = blob[text_end:]
    assert struct.unpack_from("<hhiiiiii", body, 0) == (1, 0, 8, 4, 0, 2, 2, 2)
    assert struct.unpack_from("<IiIi", body, 28) == (word(1, 4, 1), 10, word(2, 5, 0), 20)
    o = 28 + 16
    assert struct.unpack_from("<hhiiiiii", body, o) == (0, 0, 8, 4, 1, 1, 1, 1)
    assert struct.unpack_from("<Ii", body, o + 28) == (1, 0)                  # wrap event, valid
    o += 36
    assert struct.unpack_from("<hhiiiiii", body, o) == (1, 0, 8, 4, 1, 1, 1, 1)
    assert struct.unpack_from("<Ii", body, o + 28) == (word(3, 6, 1), 5)
    assert len(body) == o + 36


def test_an_unsorted_single_pair_and_bool_polarity_are_written_sorted():
    """Protects encode_aedat's sort (two events out of order are swapped) and _fields_by_name's
    bool polarity (True is 1)."""
    ev = np.zeros(2, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "?"), ("t", "<i8")])
    ev["x"], ev["y"], ev["p"], ev["t"] = [1, 2], [3, 4], [True, False], [50, 40]
    assert rows(decode_aedat(encode_aedat(ev))) == [(2, 4, 0, 40), (1, 3, 1, 50)]


@pytest.mark.parametrize("field, values, text", [
    ("x", [0, 40000], "event field 'x' value 40000 outside 0..32767"),
    ("y", [-1, 3], "event field 'y' value -1 outside 0..32767"),
    ("t", [-5, 3], "event field 't' value -5 < 0 (timestamps are microseconds >= 0)"),
])
def test_out_of_range_fields_are_named(field, values, text):
    """Protects _fields_by_name's range checks (either end) and their messages."""
    ev = np.zeros(2, dtype=[("x", "<i4"), ("y", "<i4"), ("p", "u1"), ("t", "<i8")])
    ev[field] = values
    with pytest.raises(ValueError) as info:
        encode_aedat(ev)
    assert str(info.value) == text


def test_missing_fields_are_listed():
    """Protects _fields_by_name: the missing fields are named."""
    ev = np.zeros(1, dtype=[("x", "<u2"), ("t", "<i8")])
    with pytest.raises(ValueError, match=r"^events lack field\(s\) y, p: need x, y, p, t, got x, t$"):
        encode_aedat(ev)


def test_an_unterminated_header_line_is_named():
    """Kills parse_header_43: a header line without a line end (file cut inside the header)
    names its byte and the missing '#!END-HEADER' line, in the marker's own case."""
    with pytest.raises(DataFormatError) as info:
        decode_aedat(b"#!AER-DAT3.1\r\n#Format: RA")
    assert str(info.value) == ("<bytes>: corrupted header at byte 14: unterminated header line, "
                               "no '#!END-HEADER'")


def test_write_aedat_splits_packets_as_asked(tmp_path):
    """Kills write_aedat_13 (packet_events not passed on): 3 events with packet_events=2 are
    written as a packet of 2 and a packet of 1."""
    from bench.data.aedat import write_aedat

    ev = np.zeros(3, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8")])
    ev["t"] = [1, 2, 3]
    blob = write_aedat(tmp_path / "e.aedat", ev, packet_events=2).read_bytes()
    body = blob[blob.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n"):]
    assert struct.unpack_from("<hhiiiiii", body, 0)[5:] == (2, 2, 2)
    assert struct.unpack_from("<hhiiiiii", body, 28 + 16)[5:] == (1, 1, 1)
    assert len(body) == 28 + 16 + 28 + 8
