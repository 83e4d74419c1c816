"""Mapping details the mutation run found unchecked (issue 18): the conductance levels must be
strictly ascending and start at >= 0 S, integer levels become float siemens, and the
known-bad-cell map keeps the measured conductance only where a device is stuck.  Expected
values written out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from bench import mapping as M


@pytest.mark.parametrize("levels_s", [[1e-6, 1e-6, 2e-6], [2e-6, 1e-6, 3e-6], [-1e-6, 1e-6, 2e-6]],
                         ids=["repeated", "descending", "negative-first"])
def test_levels_must_ascend_strictly_from_zero_or_more(levels_s):
    with pytest.raises(M.MappingError, match="ascending conductances >= 0 S"):
        M.map_levels(np.zeros((2, 2), int), levels_s=levels_s, rows=2, columns=2)


def test_integer_levels_become_float_siemens():
    m = M.map_levels(np.array([[0, 2], [1, 0]]), levels_s=[0, 3, 6], rows=2, columns=2)
    assert m.levels_s.dtype == np.float64
    assert m.targets_s.dtype == np.float64 and m.targets_s.tolist() == [[0.0, 6.0], [3.0, 0.0]]


def test_bad_cells_map_keeps_the_stuck_devices_readback_only():
    stuck = np.array([[True, False], [False, True]])
    g = np.array([[1e-6, 2e-6], [3e-6, 4e-6]])
    out = M.bad_cells_map(stuck, g)
    assert out[0, 0] == 1e-6 and out[1, 1] == 4e-6
    assert np.isnan(out[0, 1]) and np.isnan(out[1, 0])
    with pytest.raises(M.MappingError, match=r"stuck map \(2, 2\) and conductance map \(1, 2\) differ"):
        M.bad_cells_map(stuck, g[:1])


def test_scale_bounds_from_zero_are_an_upper_bound_only():
    """scale_bounds_s=(0, 100 uS): no lower bound (no division by the zero bound); the scale
    found is within the upper bound."""
    w = np.array([[0.5, -1.0], [2.0, 0.25]])
    m = M.map_weights(w, scale_bounds_s=(0.0, 100e-6), rows=2, columns=4)
    assert 0.0 < m.scale_s <= 100e-6


def test_refusals_name_the_shape_and_dtype():
    with pytest.raises(M.MappingError, match=r"^weights must be real numbers, got dtype complex128$"):
        M.map_weights(np.array([[1 + 1j]]), rows=2, columns=4)
    with pytest.raises(M.MappingError, match=r"^level map must have shape \(2, 2\), got \(2, 3\)$"):
        M.map_levels(np.zeros((2, 3), int), rows=2, columns=2)


def test_float_level_maps_holding_whole_numbers_are_accepted_and_described():
    m = M.map_levels(np.array([[0.0, 2.0], [1.0, 0.0]]), levels_s=[0.0, 3e-6, 6e-6], rows=2, columns=2)
    assert m.target_levels.tolist() == [[0, 2], [1, 0]] and m.target_levels.dtype == np.int64
    assert m.shape == (2, 1)                      # 2 rows x (2 columns / 2) neurons
    assert m.meta == {"source": "levels"}
    with pytest.raises(M.MappingError, match="^level map must hold integer level indices$"):
        M.map_levels(np.array([[0.5, 0.0], [0.0, 0.0]]), rows=2, columns=2)


def test_a_level_map_of_text_is_refused_naming_its_dtype():
    with pytest.raises(M.MappingError, match="^level map must hold integers, got dtype <U1$"):
        M.map_levels(np.array([["a", "b"], ["c", "d"]]), rows=2, columns=2)
