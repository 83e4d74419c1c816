"""Energy-model details the mutation run found unchecked (issue 18).  Expected values come from
the documented contracts (the reference workload is seed 0 unless told otherwise; chunks are
bit-identical to the whole) or are worked out by hand from the model's equations."""
from __future__ import annotations

import numpy as np
import pytest

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


def test_per_rail_sums_each_rails_components():
    """Kills energy.per_rail mutants _1/_2 (no result / every rail starting at 1 J).  Rails
    from the model's table: VDDA = tia + soma + array + other, VDDD = wl + bl + sl +
    controller, VDDIO = io; hand sums of distinct powers of ten."""
    from sim_backend.physics.energy import per_rail

    e = {"tia": 1e-9, "soma": 2e-9, "array": 3e-9, "other": 4e-9, "wl": 1e-8, "bl": 2e-8,
         "sl": 3e-8, "controller": 4e-8, "io": 1e-7}
    got = per_rail(e)
    assert set(got) == {"VDDA", "VDDD", "VDDIO"}
    assert got["VDDA"] == pytest.approx(1e-8, rel=1e-12)
    assert got["VDDD"] == pytest.approx(1e-7, rel=1e-12)
    assert got["VDDIO"] == pytest.approx(1e-7, rel=1e-12)
    assert per_rail({}) == {"VDDA": 0.0, "VDDD": 0.0, "VDDIO": 0.0}


def test_tsops_per_w_in_both_forms_against_hand_numbers():
    """Kills energy.tsops_per_w mutants _14 (rate form taken when only dt_s is given),
    _21 and _24 (dividing by 1e12 + 1 instead of 1e12) and sops_per_sample _14/_15 (the
    message's case).  Rate form, whole 800-480-120-11 network, 100 ns steps at 43.83 mW:
    442,920 SOP / 100 ns / 43.83 mW = 442920 / 4383 = 101.05 TSOPS/W (the published figure).
    Per-sample form, the 120 x 11 layer over 300 steps = 396,000 SOP at 1.94 uJ:
    396000 / 1.94e6 = 0.2041 TSOPS/W; given dt_s alone it stays the per-sample form."""
    from sim_backend.physics.energy import NETWORK_SYNAPSES, tsops_per_w

    rate = tsops_per_w("dense", 1.0, synapses=NETWORK_SYNAPSES, dt_s=100e-9, power_w=43.83e-3)
    assert rate == pytest.approx(442920 / 4383, rel=1e-13, abs=0)
    assert round(rate, 2) == 101.05
    per_sample = tsops_per_w("dense", 1.94e-6)
    assert per_sample == pytest.approx(396000 / 1.94e6, rel=1e-13, abs=0)
    assert tsops_per_w("dense", 1.94e-6, dt_s=100e-9) == pytest.approx(396000 / 1.94e6, rel=1e-13, abs=0)
    assert tsops_per_w("event", 1.94e-6, in_events=4000) == pytest.approx(44000 / 1.94e6, rel=1e-13, abs=0)
    with pytest.raises(ValueError, match=r"^the 'event' SOP definition needs in_events$"):
        tsops_per_w("event", 1.94e-6)
