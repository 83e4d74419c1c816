"""Link-model details the mutation run found unchecked (issue 18): every fault counter counts
exactly the chunks the far end saw faulted.  Expected values are counted from what the
channel delivered (a chunk arriving twice, a chunk missing), not from the model's own
counters."""
from __future__ import annotations

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
