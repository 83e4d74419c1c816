"""ChipParams details the mutation run found unchecked (issue 18): the relaxation spread is
computed in double precision whatever the dtype of the times given.  Expected value from
the model's definition (params.py, docs/chip_model.md): sigma(t) = sigma_1s ln(1 + t/t0) /
ln(1 + 1 s/t0), so sigma(1 s) = sigma_1s = 1.8 uS exactly, and sigma(0) = 0."""
from __future__ import annotations

import numpy as np
import pytest

from sim_backend.physics.params import ChipParams


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_relaxation_spread_in_double_precision_for_any_time_dtype(dtype):
    """Kills params.ChipParams.relax_sigma_s mutants _7/_9 (times kept in their own dtype:
    float32 chip times then give a float32 spread, ~1e-7 off).  1 s and 0 s are exact in
    every dtype; a negative age counts as 0."""
    p = ChipParams()
    s = p.relax_sigma_s(np.array([1, 0, -2], dtype=dtype))
    assert s.dtype == np.float64
    assert s[0] == pytest.approx(1.8e-6, rel=1e-14, abs=0)
    assert s[1] == 0.0 and s[2] == 0.0
