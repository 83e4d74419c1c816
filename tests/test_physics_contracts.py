"""Small physics contracts checked against hand-derived values or published figures: the
crossbar's IR drop, the discrete Gaussian noise table, chip parameter overrides, and the energy
calibration reproducing every frozen constant."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import norm

from sim_backend.physics import energy, fastpath
from sim_backend.physics.crossbar import column_currents
from sim_backend.physics.params import ChipParams

US = 1e-6


def test_column_currents_with_ir_drop_on_two_rows():
    """I = V G per row, the last row's conductance reduced by ir_drop_rel (linear in row index)."""
    g = np.array([[10 * US, 20 * US], [10 * US, 40 * US]])
    i = column_currents(np.array([1.0, 0.5]), g, ir_drop_rel=0.1)
    # row 0 unaffected; row 1 (the last) x 0.9
    assert i.tolist() == pytest.approx([10 * US + 0.5 * 9 * US, 20 * US + 0.5 * 36 * US], rel=1e-12)
    three = column_currents(np.ones(3), np.full((3, 1), 10 * US), ir_drop_rel=0.2)
    assert three.tolist() == pytest.approx([10 * US * (1 + 0.9 + 0.8)], rel=1e-12)
    assert column_currents(np.ones(2), g).tolist() == pytest.approx([20 * US, 60 * US], rel=1e-12)


def test_noise_table_is_a_unit_variance_discrete_gaussian():
    """2^12 inverse-normal quantiles at the bin midpoints, rescaled to unit variance."""
    t = fastpath._noise_table()
    n = 1 << fastpath.NOISE_TABLE_BITS
    assert t.shape == (4096,) and n == 4096
    q = norm.ppf((np.arange(n) + 0.5) / n)                 # scipy: a second implementation
    np.testing.assert_allclose(t, q / np.sqrt(np.mean(q ** 2)), rtol=1e-9, atol=1e-12)
    assert np.mean(t) == pytest.approx(0.0, abs=1e-12) and np.mean(t * t) == pytest.approx(1.0)
    assert 3.6 < t.max() < 3.7 and np.allclose(t, -t[::-1])   # ppf(1 - 1/8192) = 3.67 sigma
    np.testing.assert_array_equal(fastpath.NOISE_TABLE, t)


def test_chip_parameter_overrides_replace_and_are_checked():
    p = ChipParams.preset("typical")
    q = p.replace(read_noise_rel=0.05, n_levels=8)
    assert (q.read_noise_rel, q.n_levels) == (0.05, 8) and p.read_noise_rel == 0.01
    assert dataclasses.replace(q, read_noise_rel=0.01, n_levels=p.n_levels) == p
    with pytest.raises(ValueError, match="unknown chip parameter 'noise'"):
        p.replace(noise=1)
    with pytest.raises(ValueError, match="unknown chip parameter 'nope'"):
        ChipParams.preset("ideal", nope=1)
    ideal = ChipParams.preset("ideal", read_noise_rel=0.03)
    assert (ideal.name, ideal.read_noise_rel, ideal.stuck_on_frac) == ("ideal", 0.03, 0.0)
    assert ChipParams.preset("worst").e_scale == 1.1 and ChipParams.preset().name == "typical"
    with pytest.raises(ValueError, match=r"^unknown chip fidelity preset 'best'; choose one of \['ideal', 'typical', 'worst'\]$"):
        ChipParams.preset("best")
    with pytest.raises(ValueError, match="unknown chip fidelity preset 'best'"):
        ChipParams.preset("best")


def test_calibration_reproduces_every_frozen_constant():
    """calibrate() against the frozen CAL, field by field (CAL itself is checked against the
    published 43.83 mW / 1.94 uJ and breakdown in test_energy_model.py)."""
    cal = energy.calibrate(n_samples=512, seed=0)
    for f in dataclasses.fields(energy.EnergyCal):
        got, want = getattr(cal, f.name), getattr(energy.CAL, f.name)
        if f.name == "p_static_w":
            assert dict(got) == pytest.approx(dict(want), rel=1e-9)
        else:
            assert got == pytest.approx(want, rel=1e-9), f.name


def test_relaxation_spread_follows_the_published_fit():
    """sigma(1 s) = 1.8 uS (NeuRRAM fits: 1-2.5 uS after 1 s), ~4 uS after a day, 0 at t <= 0,
    logarithmic in between: sigma(t) = sigma_1s ln(1 + t/t0) / ln(1 + 1 s/t0), t0 = 100 us."""
    p = ChipParams.preset("typical")
    day = 86_400.0
    got = p.relax_sigma_s(np.array([-5.0, 0.0, 1.0, day, 1e-4]))
    want_day = 1.8e-6 * np.log(1 + day / 1e-4) / np.log(1 + 1e4)
    assert got.tolist() == pytest.approx([0.0, 0.0, 1.8e-6, want_day, 1.8e-6 * np.log(2) / np.log(1 + 1e4)],
                                         rel=1e-12, abs=1e-18)
    assert 3.9e-6 < want_day < 4.1e-6
    assert float(p.relax_sigma_s(1.0)) == pytest.approx(1.8e-6, rel=1e-12)
