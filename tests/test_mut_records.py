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
