"""Link-model details the mutation run found unchecked (issue 18): every fault counter counts
exactly the chunks the far end saw faulted.  Expected values are counted from what the
channel delivered (a chunk arriving twice, a chunk missing), not from the model's own
counters."""
from __future__ import annotations

import numpy as np
import pytest

from sim_backend.link import TO_BOARD, TO_HOST, LinkModel


def _chunks(n: int) -> list[bytes]:
    return [f"<chunk {i:04d}>".encode() for i in range(n)]


@pytest.mark.parametrize("direction", [TO_BOARD, TO_HOST])
def test_duplicated_counts_each_doubled_chunk_once(direction):
    """Kills link.corrupt mutant _53 (``duplicated += 2``): with only duplication on, every
    chunk arrives once or twice, and the counter is the number that arrived twice."""
    link = LinkModel(dup=0.3, seed=7)
    twice = 0
    for c in _chunks(400):
        out = link.corrupt(c, direction)
        assert out in (c, c + c)
        twice += out == c + c
    assert 80 < twice < 160                    # about 30 % of 400
    assert link.stats["duplicated"] == twice
    assert link.stats["dropped"] == link.stats["stalled"] == link.stats["reordered"] == 0


def test_zero_latency_is_a_valid_link():
    """Kills link.LinkModel.__post_init__ mutant _15 (latency 0 refused): the contract is
    "baud > 0 and latency >= 0", and a pty or loopback link has no turnaround.  At 1 Mbaud,
    8N1, a 40-byte command and a 60-byte reply take exactly 100 bytes x 10 bits / 1e6 = 1 ms."""
    link = LinkModel(baud=1e6, latency_s=0.0)
    assert link.round_trip_s(40, 60) == pytest.approx(1e-3, rel=1e-12)
    assert LinkModel.from_query("latency_ms=0").latency_s == 0.0
    with pytest.raises(ValueError, match="latency >= 0"):
        LinkModel(latency_s=-1e-9)


def _hamming(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def test_bit_errors_flip_exactly_the_counted_bits_anywhere_in_the_chunk():
    """Kills link.corrupt mutants _31 (positions drawn with replacement: a bit drawn twice
    flips back), _33 (``&=`` instead of ``^=``), _35 (byte index pos // 9), _42 (the counter
    overwritten instead of accumulated).  With only bit errors on, each chunk arrives with the
    same length; the Hamming distances summed over all chunks are the counter, and at a high
    BER every byte of the chunk is hit at some point."""
    link = LinkModel(ber=0.2, seed=11)
    chunk = bytes(range(16))
    flips, hit = 0, np.zeros(16, bool)
    for _ in range(300):
        out = link.corrupt(chunk, TO_HOST)
        assert len(out) == len(chunk)
        flips += _hamming(out, chunk)
        hit |= np.frombuffer(out, np.uint8) != np.frombuffer(chunk, np.uint8)
    assert link.stats["bit_errors"] == flips
    assert 0.15 < flips / (300 * 128) < 0.25
    assert hit.all()


def test_reordered_chunks_are_all_delivered_once():
    """Kills link.corrupt mutants _73 (``behind = data``: a second overtaken chunk replaces the
    first, which is lost) and _80 (junk left behind after a delivery).  With only reordering
    on, every chunk arrives exactly once, in some order; what is still held back at the end
    is the rest."""
    link = LinkModel(reorder=0.5, seed=4)
    sent = _chunks(300)
    got = b"".join(link.corrupt(c, TO_BOARD) for c in sent) + link.held(TO_BOARD)
    assert sorted(got[i:i + 12] for i in range(0, len(got), 12)) == sorted(sent)
    assert len(got) == 12 * 300
    assert link.stats["reordered"] > 100


def test_drops_are_counted_exactly():
    """Kills link.corrupt mutant _14 (a dropped chunk delivers 4 junk bytes instead of
    nothing).  With only drops on, a chunk arrives whole or not at all, and the counter is
    the number that did not arrive."""
    link = LinkModel(drop=0.25, seed=9)
    sent = _chunks(400)
    got = [link.corrupt(c, TO_HOST) for c in sent]
    assert all(g in (b"", c) for g, c in zip(got, sent, strict=True))
    lost = got.count(b"")
    assert link.stats["dropped"] == lost and 60 < lost < 140


def test_link_from_query_defaults_to_seed_0():
    """Kills link.LinkModel.from_query mutant _1 (default seed 1): a link built from a query
    without link_seed and without a seed argument is the seed-0 link, same faults as
    LinkModel(seed=0)."""
    a = LinkModel.from_query("drop=0.3&dup=0.3")
    b = LinkModel(drop=0.3, dup=0.3, seed=0)
    assert a.seed == 0
    sent = _chunks(50)
    assert [a.corrupt(c, TO_BOARD) for c in sent] == [b.corrupt(c, TO_BOARD) for c in sent]
