"""Framing details the mutation run found unchecked (issue 18): an oversized payload is refused
before encoding, naming its size and the limit (docs/protocol.md: payload at most MAX_PAYLOAD)."""
from __future__ import annotations

import pytest

from firmware_iface.framing import MAX_PAYLOAD, Frame, encode_frame


def test_an_oversized_payload_is_refused_naming_size_and_limit():
    n = MAX_PAYLOAD + 1
    with pytest.raises(ValueError, match=f"^payload of {n} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}$"):
        encode_frame(Frame(0x01, 1, bytes(n)))
