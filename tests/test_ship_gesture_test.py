"""The shipped test split's sample order (benchmarks/ship_gesture_test.py, decision 0020): round
robin over the test recordings, so the demo's first samples span every test subject."""
from __future__ import annotations

from types import SimpleNamespace

from benchmarks.ship_gesture_test import round_robin


def test_round_robin_takes_sample_k_of_every_recording_before_k_plus_1():
    """kills round_robin mutants that keep file order, skip a shorter recording's missing k, or
    reorder the recordings. Hand-derived: A has 3 samples, B 2, C 3 -> A0 B0 C0 A1 B1 C1 A2 C2."""
    samples = [SimpleNamespace(source=r, k=k) for r, n in (("A", 3), ("B", 2), ("C", 3)) for k in range(n)]
    got = [(s.source, s.k) for s in round_robin(samples)]
    assert got == [("A", 0), ("B", 0), ("C", 0), ("A", 1), ("B", 1), ("C", 1), ("A", 2), ("C", 2)]
    assert round_robin([]) == []
