"""Framing details the mutation run found unchecked (issue 18): an oversized payload is refused
before encoding, naming its size and the limit (docs/protocol.md: payload at most MAX_PAYLOAD)."""
from __future__ import annotations

import pytest

from firmware_iface.framing import MAX_PAYLOAD, Frame, encode_frame


def test_an_oversized_payload_is_refused_naming_size_and_limit():
    n = MAX_PAYLOAD + 1
    with pytest.raises(ValueError, match=f"^payload of {n} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}$"):
        encode_frame(Frame(0x01, 1, bytes(n)))


def test_a_corrupted_frame_is_refused_as_a_crc_mismatch():
    """A version byte + 4 payload bytes with a CRC-32 trailer that is off by one, COBS-stuffed by
    the cobs package (not the code under test): the decoder says exactly 'CRC mismatch'."""
    import struct
    import zlib

    from cobs import cobs

    from firmware_iface.framing import FrameError, decode_body

    body = bytes([2, 1, 2, 3, 4])
    bad = body + struct.pack("<I", (zlib.crc32(body) + 1) & 0xFFFFFFFF)
    with pytest.raises(FrameError, match="^CRC mismatch$"):
        decode_body(cobs.encode(bad))
