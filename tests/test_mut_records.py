"""Record packing helpers of firmware_iface/records.py (issue 18).

Layouts from docs/protocol.md "Records" (packed little-endian): CELL = row u8, col u8 (2 bytes).
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_iface.records import PayloadError, expect_end, pack_array


def test_pack_array_converts_to_the_record_layout():
    """kills records.pack_array mutants that drop the record dtype: an array of a convertible
    layout (row/col as u16) is packed as CELL records of u8 fields, 2 bytes each."""
    cells = np.array([(1, 2), (250, 7)], dtype=[("row", "<u2"), ("col", "<u2")])
    assert pack_array("CELL", cells) == struct.pack("<BB", 1, 2) + struct.pack("<BB", 250, 7)


def test_expect_end_names_the_payload_and_the_number_of_extra_bytes():
    """kills records.expect_end message mutants: 6 bytes read up to offset 4 leave 2 trailing."""
    with pytest.raises(PayloadError, match=r"^REG: 2 unexpected trailing bytes$"):
        expect_end(b"abcdef", 4, "REG")
    expect_end(b"abcdef", 6, "REG")


def test_unpack_names_what_is_missing():
    """kills records.unpack message mutants: REG (8 bytes) at offset 2 of a 7-byte payload has
    5 bytes left."""
    from firmware_iface.records import unpack

    with pytest.raises(PayloadError, match=r"^REG record needs 8 bytes at offset 2, payload has 5$"):
        unpack("REG", b"\x00" * 7, 2)


def test_unpack_array_defaults_and_bounds():
    """kills records.unpack_array mutants: offset defaults to 0, zero records is a valid (empty)
    request, a negative count is refused, and the message names count, size, offset and what is
    left (CELL = 2 bytes: 3 records need 6 bytes)."""
    from firmware_iface.records import unpack_array

    arr, off = unpack_array("CELL", bytes([4, 5, 6, 7]), 2)
    assert off == 4 and arr["row"].tolist() == [4, 6] and arr["col"].tolist() == [5, 7]
    empty, off = unpack_array("CELL", b"", 0)
    assert empty.size == 0 and off == 0
    with pytest.raises(PayloadError):
        unpack_array("CELL", b"\x00" * 4, -1)
    with pytest.raises(PayloadError, match=r"^3 CELL records need 6 bytes at offset 1, payload has 4$"):
        unpack_array("CELL", b"\x00" * 5, 3, 1)


def test_unpack_exact_names_both_sizes():
    """kills records.unpack_exact message mutant: FETCH is 12 bytes."""
    from firmware_iface.records import unpack_exact

    with pytest.raises(PayloadError, match=r"^FETCH record is 12 bytes, payload has 11$"):
        unpack_exact("FETCH", b"\x00" * 11)
