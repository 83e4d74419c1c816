"""A simulated world whose chip ran, read and pulsed at random moments: a rail timeline of
many segments of every kind, for tests that check sums over it against brute force."""
from __future__ import annotations

import numpy as np

from sim_backend.world import SimWorld


def busy_world(seed: int, events: int = 24, start_s: float = 0.0) -> SimWorld:
    """``events`` chip operations (RUN of 2 samples, READ of 5 cells, PULSE of 2 cells in
    turn), each followed by an idle gap drawn uniformly in [0, 50 us) with ``seed``; the chip
    clock first advanced to ``start_s`` (s) when given."""
    world = SimWorld(chip_seed=2, fidelity="typical")
    if start_s:
        world.advance_to(start_s)
    rng = np.random.default_rng(seed)
    spikes = rng.random((2, 300, 128)) < 0.05
    for i in range(events):
        if i % 3 == 0:
            world.chip.run(spikes)
        elif i % 3 == 1:
            world.chip.read(np.arange(5), np.arange(5), 0.2, 2)
        else:
            world.chip.pulse([1, -1], [1, 2], [3, 4], [2.0, 0.0], [1.8, 3.0], [0.0, 2.0], [1e-6, 1e-6])
        world.advance_to(world.clock_s() + rng.uniform(0, 5e-5))
    return world
