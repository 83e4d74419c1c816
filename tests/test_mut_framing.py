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


def test_a_frame_of_another_version_carries_its_crc_for_the_echo():
    """A CRC-valid frame whose version byte is 9: VersionError names 9 and carries the frame's
    CRC-32 (what a reply echoes), computed here with zlib on the hand-built body."""
    import struct
    import zlib

    from cobs import cobs

    from firmware_iface.framing import VersionError, decode_body

    body = bytes([9, 0, 0, 0])
    crc = zlib.crc32(body)
    with pytest.raises(VersionError) as info:
        decode_body(cobs.encode(body + struct.pack("<I", crc)))
    assert info.value.version == 9 and info.value.crc == crc


def test_broken_cobs_stuffing_is_named():
    from firmware_iface.framing import FrameError, decode_body

    with pytest.raises(FrameError, match="^bad COBS stuffing: "):
        decode_body(b"\x05\x01")          # a code byte promising 4 data bytes, only 1 follows


def test_the_decoder_starts_clean_and_remembers_the_last_error():
    """A new decoder has no error and no foreign frame; after a frame with a wrong CRC (built
    with zlib + the cobs package) its last error says so."""
    import struct
    import zlib

    from cobs import cobs

    from firmware_iface.framing import FrameDecoder

    d = FrameDecoder()
    assert d.last_error == "" and d.foreign == 0
    body = bytes([2, 1, 2, 3, 4])
    d.feed(cobs.encode(body + struct.pack("<I", (zlib.crc32(body) + 1) & 0xFFFFFFFF)) + b"\x00")
    assert d.last_error == "CRC mismatch" and d.foreign == 0
