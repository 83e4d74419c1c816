"""Weight -> conductance mapping (issue 4, bench/mapping.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench import mapping as M

LV = M.DEFAULT_LEVELS_S


def test_differential_layout_and_inverse():
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    m = M.map_weights(w, clamp=3.0, scale_s=50e-6)
    t = m.targets_s
    assert t.shape == (128, 24)
    assert t[0, 0] == pytest.approx(50e-6) and t[0, 1] == 0          # +1 on G+ of neuron 0
    assert t[0, 2] == 0 and t[0, 3] == pytest.approx(100e-6)         # -2 on G- of neuron 1
    assert t[1, 0] == 0 and t[1, 1] == 0
    assert t[1, 2] == pytest.approx(150e-6)
    assert np.all(t[2:] == 0) and np.all(t[:, 4:] == 0)
    np.testing.assert_allclose(m.quantised_weights, w)
    np.testing.assert_allclose(M.effective_weights(t, 50e-6)[:2, :2], w)
    assert m.quantisation_rms() == pytest.approx(0.0)


def test_scale_minimises_error_under_clamp():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.8, (120, 11))
    m = M.map_weights(w, clamp=3.0)
    naive = M.map_weights(w, clamp=3.0, scale_s=150e-6 / 3.0)   # clamp -> top level
    assert m.quantisation_rms() <= naive.quantisation_rms()
    assert m.scale_s >= 150e-6 / 3.0 * 0.999                   # never maps beyond the clamp
    assert m.as_attrs()["scale_s"] == m.scale_s
    # all targets are chip levels
    assert np.all(np.isin(m.targets_s, LV))


def test_clamp_applies():
    w = np.array([[10.0, -10.0]])
    m = M.map_weights(w, clamp=3.0)
    np.testing.assert_allclose(m.quantised_weights, [[3.0, -3.0]], rtol=0.06)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=60))
@example([2.2250738585e-313])        # found by hypothesis: a subnormal weight made the scale inf
def test_quantisation_error_within_half_level(vals):
    w = np.asarray(vals)[:, None]
    m = M.map_weights(w, clamp=3.0)
    half = (LV[2] - LV[1]) / 2 / m.scale_s
    # weights below the top level are within half a level; above saturate at the top
    top = LV[-1] / m.scale_s
    inside = np.abs(w) <= top
    err = np.abs(m.quantised_weights - w)
    assert np.all(err[inside] <= half + 1e-9)
    assert np.all(np.abs(m.quantised_weights[~inside]) == pytest.approx(top))


@pytest.mark.parametrize("bad", [np.zeros((129, 2)), np.zeros((4, 13)), np.zeros((2, 2, 2)),
                                 np.array([[np.nan]]), np.array([[np.inf, 1.0]]), np.zeros((0, 3)),
                                 np.array([["a"]])])
def test_bad_weights(bad):
    with pytest.raises(M.MappingError):
        M.map_weights(bad)


def test_levels_map_validation():
    ok = np.random.default_rng(1).integers(0, 16, (128, 24))
    m = M.map_levels(ok)
    np.testing.assert_allclose(m.targets_s, LV[ok])
    for bad in (ok[:, :23], np.where(ok == 0, -1, ok), np.where(ok == 0, 16, ok),
                ok.astype(float) + 0.5, np.full((128, 24), np.nan)):
        with pytest.raises(M.MappingError):
            M.map_levels(bad)


def test_route_around_compensates_stuck_devices():
    w = np.zeros((4, 2))
    w[0, 0] = 1.0      # G+ of (0, 0) stuck at 120 uS -> G- must carry 70 uS
    w[1, 0] = -1.0     # G- of (1, 0) stuck at 30 uS, -50 uS wanted: best reachable is G+ = 0
    w[2, 1] = 2.0      # idle G- of (2, 1) stuck-on at 40 uS -> G+ = 140 uS
    bad = np.full((128, 24), np.nan)
    bad[0, 0] = 120e-6
    bad[1, 1] = 30e-6
    bad[2, 3] = 40e-6
    m = M.map_weights(w, clamp=3.0, scale_s=50e-6, bad_cells_s=bad)
    g = m.targets_s.copy()
    g[np.isfinite(bad)] = bad[np.isfinite(bad)]        # what the chip will really hold
    eff = M.effective_weights(g, 50e-6)
    assert eff[0, 0] == pytest.approx(1.0, abs=0.1)
    assert eff[2, 1] == pytest.approx(2.0, abs=0.1)
    assert m.rerouted_pairs == 3
    assert m.uncorrectable_pairs == 1                  # (1, 0): |30 - 50| uS: G+ can only add
    assert eff[1, 0] == pytest.approx(-0.6, abs=0.01)  # closest reachable (G+ = 0)


def test_random_levels_range():
    lv = M.random_levels(3)
    assert lv.shape == (128, 24) and lv.min() >= 0 and lv.max() <= 15


def test_scale_bounds():
    w = np.random.default_rng(2).normal(0, 0.05, (50, 4))      # tiny weights want a huge scale
    free = M.map_weights(w, clamp=3.0)
    assert free.scale_s > 150e-6
    m = M.map_weights(w, clamp=3.0, scale_bounds_s=(1e-6, 150e-6))
    assert 1e-6 <= m.scale_s <= 150e-6
    assert m.quantisation_rms() >= free.quantisation_rms()
