"""Station safety limits (drivers/limits.py) at their edges (issue 18).

The contract (module and ``ChipLimits.check`` docstrings): a value passes when
``low <= value <= limit`` (both ends inclusive), NaN and infinities never pass, and the
LimitError names the quantity, the value, the interval and the limit's name and says that
nothing was sent.  The defaults are the documented station defaults (DESIGN.md section 2,
docs of ``ChipLimits``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.errors import LimitError
from drivers.limits import ChipLimits


def test_defaults_are_the_documented_station_limits():
    """kills drivers.limits.ChipLimits default mutants (a limit silently widened or narrowed)."""
    lim = ChipLimits()
    assert (lim.v_set_max_v, lim.v_reset_max_v, lim.v_wl_max_v) == (4.0, 4.0, 3.3)
    assert (lim.v_read_max_v, lim.v_spike_max_v) == (0.5, 0.5)
    assert (lim.pulse_width_min_s, lim.pulse_width_max_s) == (10e-9, 100e-6)
    assert (lim.dt_min_s, lim.dt_max_s) == (10e-9, 10e-3)
    assert lim.max_pulses_per_cell == 1000


def test_check_bounds_are_inclusive():
    """kills ChipLimits.check mutants `value < low` -> `<=` and `value > limit` -> `>=`."""
    lim = ChipLimits(v_read_max_v=0.3)
    lim.check("read voltage", 0.3, "v_read_max_v")
    lim.check("read voltage", 0.001, "v_read_max_v", low=0.001)
    lim.check("read voltage", 0.0, "v_read_max_v")


@pytest.mark.parametrize("value", [0.30000001, 1.0, -1e-12, math.nan, math.inf, -math.inf])
def test_check_refuses_outside_and_nan(value):
    """kills ChipLimits.check mutants that drop a comparison or the NaN test."""
    with pytest.raises(LimitError):
        ChipLimits(v_read_max_v=0.3).check("read voltage", value, "v_read_max_v")


def test_check_low_bound_is_used():
    """kills ChipLimits.check mutants that ignore ``low``."""
    with pytest.raises(LimitError):
        ChipLimits().check("time step", 5e-9, "dt_max_s", low=10e-9)


def test_check_message_names_value_interval_and_limit():
    """kills ChipLimits.check message mutants: the person reading it learns what, how much, the
    allowed interval, which station limit, and that nothing was sent."""
    with pytest.raises(LimitError) as e:
        ChipLimits().check("SET bit-line voltage", 4.5, "v_set_max_v", low=0.25)
    assert str(e.value) == ("SET bit-line voltage = 4.5 is outside the station limit [0.25, 4] "
                            "(v_set_max_v); nothing was sent")


def test_check_max_empty_passes_and_bounds_are_inclusive():
    """kills ChipLimits.check_max mutants on the empty case and the inclusive ends."""
    lim = ChipLimits()
    lim.check_max("pulse width", [], "pulse_width_max_s", low=10e-9)
    lim.check_max("pulse width", np.array([10e-9, 100e-6, 1e-6]), "pulse_width_max_s", low=10e-9)
    lim.check_max("word-line voltage", 3.3, "v_wl_max_v")


@pytest.mark.parametrize("values, bad", [
    ([1.0, 4.0, 4.25, 5.0], 4.25),          # the first value above the limit is named
    ([1.0, -0.5, 2.0], -0.5),               # below low
    ([1.0, math.inf], math.inf),
    ([math.nan, 1.0], math.nan),
])
def test_check_max_refuses_and_names_the_first_bad_value(values, bad):
    """kills ChipLimits.check_max mutants (isfinite test dropped, a comparison flipped, another
    element reported than the first offending one)."""
    with pytest.raises(LimitError, match=r"^SET = (\S+) is outside the station limit \[0, 4\] \(v_set_max_v\)") as e:
        ChipLimits().check_max("SET", values, "v_set_max_v")
    shown = str(e.value).split(" = ")[1].split(" ")[0]
    assert shown == f"{bad:g}"


def test_check_max_uses_low():
    """kills ChipLimits.check_max mutants that ignore ``low``."""
    with pytest.raises(LimitError, match=r"\[1e-08, 0.0001\]"):
        ChipLimits().check_max("pulse width", [1e-6, 5e-9], "pulse_width_max_s", low=10e-9)


def test_check_max_default_low_is_zero_and_one_value_is_checked():
    """kills ChipLimits.check_max mutants: default ``low`` 0 (values in [0, 1) pass), and a
    single offending value (size 1) is refused like any other."""
    lim = ChipLimits()
    lim.check_max("SET bit-line voltage", [0.0, 0.5], "v_set_max_v")
    with pytest.raises(LimitError, match=r"^word-line voltage = 3.4 is outside the station limit \[0, 3.3\]"):
        lim.check_max("word-line voltage", [3.4], "v_wl_max_v")


def test_check_max_reports_a_real_violation_behind_a_value_at_the_bound():
    """kills ChipLimits.check_max mutant `v < low` -> `v <= low`: a value exactly at ``low`` is
    allowed (inclusive), so the violation reported is the width above the maximum, and it is
    reported at all (the mutant picks the value at the bound, which check() lets pass)."""
    with pytest.raises(LimitError, match=r"^pulse width = 0.001 is outside"):
        ChipLimits().check_max("pulse width", [10e-9, 1e-3], "pulse_width_max_s", low=10e-9)


def test_check_max_refuses_a_missing_value_as_a_limit_violation():
    """kills ChipLimits.check_max mutants that drop ``dtype=float``: values are taken as floats,
    so a missing value (None -> NaN) is a LimitError like NaN, not a TypeError from numpy."""
    with pytest.raises(LimitError, match=r"^SET = nan is outside"):
        ChipLimits().check_max("SET", [1.0, None], "v_set_max_v")
