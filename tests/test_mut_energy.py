"""Energy-model details the mutation run found unchecked (issue 18).  Expected values come from
the documented contracts (the reference workload is seed 0 unless told otherwise; chunks are
bit-identical to the whole) or are worked out by hand from the model's equations."""
from __future__ import annotations

import numpy as np

from sim_backend.physics.energy import (REF_STEPS, REF_USED_ROWS, reference_spikes,
                                        reference_workload)


def test_reference_spikes_default_to_the_seed_0_workload():
    """Kills energy.reference_spikes mutant _1 (default seed 1): a chunk asked for without a
    seed is part of the documented seed-0 reference workload, the one ``reference_workload()``
    and the calibration use, and not another workload."""
    whole, _ = reference_workload(6)                     # documented default: seed 0
    assert np.array_equal(reference_spikes(2, 5), whole[2:5])
    assert np.array_equal(reference_spikes(0, 6, seed=0), whole)
    assert not np.array_equal(reference_spikes(0, 6, seed=1), whole)
    assert reference_spikes(2, 5).shape == (3, REF_STEPS, 128)
    assert not reference_spikes(0, 6)[:, :, REF_USED_ROWS:].any()     # rows 120-127 silent
