"""Row-driver fault details the mutation run found unchecked (issue 18): the probability
bounds (loss = 1 and jitter = 1 are valid, 1.5 is not), the bool result for 0/1 input of any
dtype, and the jitter's per-spike, +-1-step draw.  Expected values from rowdrive.py's
docstring; the statistical ones are binomial with wide margins (fixed seeds)."""
from __future__ import annotations

import numpy as np
import pytest

from sim_backend.physics.rowdrive import drive_inputs


def _one_spike_per_row(rows: int = 2000) -> np.ndarray:
    x = np.zeros((1, 9, rows), dtype=bool)
    x[0, 4, :] = True                      # every row spikes at step 4 only
    return x


def test_loss_one_drops_every_spike():
    """Kills rowdrive.drive_inputs mutant _10 (loss = 1 refused): a probability of 1 is
    valid and no spike is driven."""
    out = drive_inputs(_one_spike_per_row(50), 1.0, 0.0, np.random.default_rng(0))
    assert out.shape == (1, 9, 50) and not out.any()


@pytest.mark.parametrize("loss, jitter", [(0.0, 1.5), (1.5, 0.0), (-0.1, 0.0), (0.0, -0.1)])
def test_probabilities_outside_0_1_are_refused_with_both_values(loss, jitter):
    """Kills rowdrive.drive_inputs mutants _15 (jitter up to 2 accepted) and _16 (the message
    replaced by None)."""
    with pytest.raises(ValueError, match=rf"probabilities, got {loss!r}, {jitter!r}"):
        drive_inputs(_one_spike_per_row(4), loss, jitter, np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float64])
def test_0_1_input_of_any_dtype_comes_back_as_bool(dtype):
    """Kills rowdrive.drive_inputs mutant _3 (the input not converted to bool: with no fault
    on, integer spikes came back as integers).  The docstring: bool (n, T, rows) out."""
    x = _one_spike_per_row(6).astype(dtype)
    out = drive_inputs(x, 0.0, 0.0, np.random.default_rng(0))
    assert out.dtype == bool and np.array_equal(out, x != 0)


def test_jitter_moves_each_spike_on_its_own_one_step_early_or_late():
    """Kills rowdrive.drive_inputs mutants _34 (one draw for all spikes: all move or none)
    and _37 (the direction fixed: always late).  2000 rows, one spike each at step 4:
    jitter 0.5 moves about half of them; jitter 1 moves all, half to step 3 and half to
    step 5 (binomial, 2000 draws: 0.5 +- 0.05 is > 4 sigma)."""
    half = drive_inputs(_one_spike_per_row(), 0.0, 0.5, np.random.default_rng(1))
    assert half.sum(axis=(0, 1)).tolist() == [1] * 2000      # nothing lost inside the window
    assert 0.45 < half[0, 4].mean() < 0.55
    allm = drive_inputs(_one_spike_per_row(), 0.0, 1.0, np.random.default_rng(2))
    assert not allm[0, 4].any()
    assert np.array_equal(allm[0, 3] | allm[0, 5], np.ones(2000, bool))
    assert 0.45 < allm[0, 3].mean() < 0.55
    assert not allm[0, [0, 1, 2, 6, 7, 8]].any()
