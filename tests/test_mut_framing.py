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
    assert str(info.value) == "protocol version 9, expected 2"     # kills VersionError.__init___1


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


# --- issue 18, after the link's in-place raw blocks (re-run of framing.py on merged main) ---

def _hand_frame(opcode: int, seq: int, payload: bytes = b"", rsv: int = 0) -> bytes:
    """A wire frame built by hand from docs/protocol.md's layout (header 20 bytes: version u8,
    opcode u8, flags u8, status u8, seq u16, _rsv u16, session u32, echo u32, length u32; then
    the payload, CRC-32 of all that, COBS stuffing, 0x00 delimiter), with zlib and cobs."""
    import struct
    import zlib

    from cobs import cobs

    body = struct.pack("<BBBBHHIII", 2, opcode, 0, 0, seq, rsv, 0, 0, len(payload)) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def _raw_decoder(blocks: dict[int, bytes]):
    """A bulk-mode decoder whose frames with seq in ``blocks`` announce that raw block
    (its size and zlib CRC-32)."""
    import zlib

    from firmware_iface.framing import FrameDecoder

    return FrameDecoder(raw=lambda f: (len(blocks[f.seq]), zlib.crc32(blocks[f.seq]))
                        if f.seq in blocks else None, raw_idle_s=1e9)


def test_short_body_and_reserved_field_errors_say_what_is_wrong():
    """Kills framing.decode_body mutants _7 and _40 (the messages replaced by None): a 3-byte
    body, and a CRC-valid frame whose reserved header field is 5."""
    from cobs import cobs

    from firmware_iface.framing import FrameError, decode_body

    with pytest.raises(FrameError, match=r"^frame of 3 bytes is shorter than a version byte \+ CRC$"):
        decode_body(cobs.encode(b"\x02\x01\x02"))
    with pytest.raises(FrameError, match="^reserved header field is 5, must be 0$"):
        decode_body(_hand_frame(0x01, 7, b"ab", rsv=5)[:-1])


def test_consecutive_raw_blocks_split_over_reads_arrive_whole():
    """Kills FrameDecoder._parse mutant _61 (after a block the byte count restarts at 1, not
    0): two raw blocks in a row, each arriving in two reads, both come out exact, and once
    they are out nothing is pending."""
    a, b = bytes(range(200)), bytes(range(255, 55, -1))
    dec = _raw_decoder({1: a, 2: b})
    wire = _hand_frame(0x30, 1) + a + _hand_frame(0x30, 2) + b
    cut = [0, len(_hand_frame(0x30, 1)) + 50, len(_hand_frame(0x30, 1)) + 200 + 30, len(wire)]
    got = []
    for i in range(3):
        got += dec.feed(wire[cut[i]:cut[i + 1]])
    assert [bytes(f.data) for f in got] == [a, b]
    assert dec.errors == 0 and dec.pending() == 0


def test_a_raw_block_goes_into_the_callers_view_of_the_right_size_only():
    """Kills FrameDecoder._parse mutants _127 (a sink of the wrong size accepted) and _130 (a
    sink of the right size refused): a right-sized view receives the block in place and is
    what raw_target() offers; a view 4 bytes too long is ignored (the decoder's own buffer)."""
    blk = bytes(range(100))
    dec = _raw_decoder({1: blk})
    mine = bytearray(100)
    dec.sink = lambda frame, n: memoryview(mine)
    assert dec.feed(_hand_frame(0x30, 1) + blk[:40]) == []
    target = dec.raw_target()
    assert target is not None and len(target) == 60          # the rest of the caller's view
    (f,) = dec.feed(blk[40:])
    assert bytes(f.data) == blk and bytes(mine) == blk        # collected in place

    dec = _raw_decoder({1: blk})
    long = bytearray(104)
    dec.sink = lambda frame, n: memoryview(long)
    assert dec.feed(_hand_frame(0x30, 1) + blk[:40]) == []
    (f,) = dec.feed(blk[40:])
    assert bytes(f.data) == blk and bytes(long) == bytes(104)


def test_detaching_the_sink_mid_block_keeps_what_arrived():
    """Kills FrameDecoder.detach_sink mutants _5 (no buffer of its own) and _9 (the bytes
    already collected dropped): detached after 30 of 80 bytes, the block still arrives exact
    and the caller's view gets nothing more."""
    blk = bytes(range(1, 81))
    dec = _raw_decoder({1: blk})
    mine = bytearray(80)
    dec.sink = lambda frame, n: memoryview(mine)
    assert dec.feed(_hand_frame(0x30, 1) + blk[:30]) == []
    dec.detach_sink()
    assert dec.sink is None
    (f,) = dec.feed(blk[30:])
    assert bytes(f.data) == blk
    assert bytes(mine) == blk[:30] + bytes(50)


def test_abandoning_a_raw_block_finds_the_frames_inside_it():
    """Kills FrameDecoder.abandon mutant _10 (the re-parse given no list to report into): a
    raw block of 500 bytes is announced but only a 30-byte frame follows; at the deadline the
    block fails (RawBlockError) and that frame is found again."""
    from firmware_iface.framing import Frame, RawBlockError

    dec = _raw_decoder({1: bytes(500)})
    ping = _hand_frame(0x01, 9, b"hello")
    assert dec.feed_events(_hand_frame(0x30, 1) + ping) == []
    out = dec.abandon()
    assert isinstance(out[0], RawBlockError)
    assert str(out[0]) == "raw block incomplete at the deadline"   # kills RawBlockError.__init___1
    assert [(f.opcode, f.seq, f.payload) for f in out[1:] if isinstance(f, Frame)] == [(0x01, 9, b"hello")]
    assert dec.abandon() == []                                  # nothing left to give up
