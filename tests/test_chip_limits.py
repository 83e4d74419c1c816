"""Station limits: a value passes only inside [low, limit] (both ends included); anything else,
NaN and inf too, is refused with one line naming the value, the limits and the limit's name."""
from __future__ import annotations

import math

import pytest

from drivers.errors import LimitError
from drivers.limits import ChipLimits

L = ChipLimits(v_read_max_v=0.5)


@pytest.mark.parametrize("value", [0.001, 0.25, 0.5])
def test_inside_and_on_the_edges_passes(value):
    L.check("read voltage", value, "v_read_max_v", low=0.001)


@pytest.mark.parametrize("value", [0.5000001, 0.0005, -1.0, math.nan, math.inf])
def test_outside_is_refused_with_one_line(value):
    with pytest.raises(LimitError) as e:
        L.check("read voltage", value, "v_read_max_v", low=0.001)
    want = f"read voltage = {value:g} is outside the station limit [0.001, 0.5] (v_read_max_v); nothing was sent"
    assert str(e.value) == want


def test_default_low_limit_is_zero():
    ChipLimits().check("width", 0.0, "pulse_width_max_s")
    with pytest.raises(LimitError, match=r"^width = -1e-09 is outside the station limit \[0, 0.0001\]"):
        ChipLimits().check("width", -1e-9, "pulse_width_max_s")


def test_arrays_are_checked_element_by_element_and_the_first_bad_one_is_named():
    lim = ChipLimits(v_set_max_v=3.0)
    lim.check_max("SET voltage", [], "v_set_max_v")
    lim.check_max("SET voltage", [0.0, 1.5, 3.0], "v_set_max_v")
    with pytest.raises(LimitError, match=r"^SET voltage = 3.5 is outside the station limit \[0, 3\] \(v_set_max_v\)"):
        lim.check_max("SET voltage", [1.0, 3.5, 4.0], "v_set_max_v")
    with pytest.raises(LimitError, match=r"^SET voltage = nan is outside"):
        lim.check_max("SET voltage", [1.0, math.nan], "v_set_max_v")
    with pytest.raises(LimitError, match=r"^SET voltage = 0.5 is outside the station limit \[1, 3\]"):
        lim.check_max("SET voltage", [2.0, 0.5], "v_set_max_v", low=1.0)
    lim.check_max("SET voltage", [1.0, 3.0], "v_set_max_v", low=1.0)


def test_a_single_number_or_a_2d_array_gets_the_same_limit_error():
    """A scalar over its limit used to raise IndexError (0-d indexing), a 2-D array one
    naming a whole row; both must be the LimitError naming the offending value."""
    lim = ChipLimits(v_set_max_v=3.0)
    lim.check_max("SET voltage", 2.5, "v_set_max_v")
    with pytest.raises(LimitError, match=r"^SET voltage = 3.5 is outside the station limit \[0, 3\]"):
        lim.check_max("SET voltage", 3.5, "v_set_max_v")
    with pytest.raises(LimitError, match=r"^SET voltage = 4 is outside the station limit \[0, 3\]"):
        lim.check_max("SET voltage", [[1.0, 2.0], [4.0, 0.5]], "v_set_max_v")
