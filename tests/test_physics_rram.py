"""Issue 3: RRAM cell model - levels, pulse response, read noise, relaxation, stuck cells,
incremental-step write-verify convergence (statistics with fixed seeds)."""
import numpy as np
import pytest

from sim_backend.physics.params import ChipParams
from sim_backend.physics.rram import RRAMArray
from sim_backend.physics.testing import write_verify


def test_levels_quantisation():
    lv = ChipParams.preset("typical").levels_s
    assert lv.size == 16 and lv[0] == 0.0
    np.testing.assert_allclose(np.diff(lv[1:]), 10e-6, rtol=1e-12)
    assert lv[-1] == pytest.approx(150e-6) and lv[1] == pytest.approx(10e-6)
    assert ChipParams().g_stuck_off_s == 4e-6


def test_presets_and_overrides():
    p = ChipParams.preset("typical", read_noise_rel=0.02)
    assert p.read_noise_rel == 0.02 and p.name == "typical"
    assert ChipParams.preset("ideal").read_noise_rel == 0.0
    assert ChipParams.preset("worst").stuck_on_frac > ChipParams.preset("typical").stuck_on_frac
    assert not ChipParams.preset("ideal").noisy and ChipParams.preset("typical").noisy
    assert ChipParams.preset("ideal", read_noise_rel=0.01).noisy
    with pytest.raises(ValueError, match="not_a_field"):
        ChipParams.preset("typical", not_a_field=1)
    with pytest.raises(ValueError, match="bogus"):
        ChipParams.preset("bogus")


def _arr(name="typical", seed=0, **kw):
    return RRAMArray(ChipParams.preset(name, **kw), np.random.default_rng(seed))


def test_stuck_fraction_about_one_percent():
    fr = np.mean([_arr(seed=s).stuck.mean() for s in range(8)])
    assert 0.007 < fr < 0.013
    assert _arr("ideal").stuck.sum() == 0


def test_pulse_response_depends_on_voltage_width_and_wl():
    def dg(v=2.0, width=1e-6, v_wl=1.8, kind=1, g0=20e-6):
        a = _arr("ideal")
        a.set_conductance(np.full(a.shape, g0), 0.0)
        rng = np.random.default_rng(0)
        vbl, vsl = (v, 0.0) if kind > 0 else (0.0, v)
        a.pulse([kind], [5], [7], [vbl], [v_wl], [vsl], [width], [1e-6], rng)
        return a.g_prog[5, 7] - g0
    assert dg(v=1.2) == 0.0                       # below threshold
    assert 0 < dg(v=1.6) < dg(v=2.0) < dg(v=3.0)  # grows with voltage above threshold
    assert dg(width=0.5e-6) < dg(width=1e-6) < dg(width=4e-6)
    assert dg(v_wl=0.8, g0=80e-6) == 0.0          # compliance G_c = 75 uS < G: no SET
    assert 0 < dg(v=4.0, v_wl=0.9, g0=80e-6) <= 20e-6 + 1e-12   # capped at G_c = 100 uS
    assert dg(v_wl=1.0, g0=20e-6) < dg(v_wl=1.8, g0=20e-6)
    assert dg(kind=-1, g0=100e-6) < 0
    assert dg(kind=-1, g0=100e-6, v_wl=0.8) > dg(kind=-1, g0=100e-6, v_wl=2.0)


def test_cycle_to_cycle_and_device_to_device_variation():
    a = _arr("typical", seed=1)
    rng = np.random.default_rng(2)
    a.set_conductance(np.full(a.shape, 20e-6), 0.0)
    r, c = np.indices(a.shape)
    ok = ~a.stuck.ravel()
    a.pulse(np.ones(r.size, int), r.ravel(), c.ravel(), 2.2, 1.8, 0.0, 1e-6, 1e-3, rng)
    d1 = (a.g_prog.ravel() - 20e-6)[ok]
    assert d1.std() / d1.mean() > 0.2            # visible spread
    assert d1.mean() > 5e-6


def test_read_noise_about_one_percent_and_averaging():
    a = _arr("typical", seed=2)
    a.set_conductance(np.full(a.shape, 100e-6), 0.0)
    rng = np.random.default_rng(3)
    rows = np.zeros(20000, int)
    cols = np.full(20000, 1)
    g_true = a.conductance(0.0, [0], [1])[0]
    x1 = a.read(rows, cols, 0.2, 1, 0.0, rng)
    x16 = a.read(rows, cols, 0.2, 16, 0.0, rng)
    assert x1.mean() == pytest.approx(g_true, rel=1e-3)
    assert 0.008 < x1.std() / g_true < 0.012
    assert x16.std() == pytest.approx(x1.std() / 4, rel=0.05)
    assert np.array_equal(_arr("ideal").read([0, 1], [0, 0], 0.2, 1, 0.0, rng), np.zeros(2))


def test_relaxation_sigma_after_1s_and_1day():
    a = _arr("typical", seed=4)
    g0 = np.full(a.shape, 80e-6)
    rng = np.random.default_rng(5)
    r, c = np.indices(a.shape)
    a.set_conductance(g0, 0.0)
    # one programming pulse everywhere at t = 0 starts the relaxation clock
    a.pulse(np.ones(r.size, int), r.ravel(), c.ravel(), 1.5, 1.8, 0.0, 1e-6, 0.0, rng)
    ok = ~a.stuck
    gp = a.g_prog.copy()
    s1 = (a.conductance(1.0) - gp)[ok].std()
    sday = (a.conductance(86400.0) - gp)[ok].std()
    assert 1.0e-6 <= s1 <= 2.5e-6
    assert 3.0e-6 <= sday <= 5.0e-6
    # log-time drift: the mean shift grows with log(t) and is small
    m = [(a.conductance(t) - gp)[ok].mean() for t in (10.0, 1e3, 1e5)]
    assert m[0] > m[1] > m[2] and abs(m[2]) < 1e-6


def test_write_verify_convergence_typical():
    """NeuRRAM schedule: >= 99 % of non-stuck cells within +-5 uS, 0.2-1.4 % never converge."""
    fails, within = [], []
    for seed in range(3):
        a = _arr("typical", seed=seed)
        rng = np.random.default_rng(100 + seed)
        tgt = a.params.levels_s[rng.integers(0, 16, a.shape)]
        last, conv, pulses, t_end = write_verify(a, tgt, rng, tol_s=3e-6, max_pulses=200)
        g = a.conductance(t_end)
        ok = ~a.stuck
        within.append(np.mean(np.abs(g - tgt)[ok] <= 5e-6))
        fails.append(1 - conv.mean())
        assert pulses[ok & conv].max() <= 200
    assert min(within) >= 0.99
    assert 0.002 <= np.mean(fails) <= 0.014


def test_write_verify_ideal_is_exact_enough():
    a = _arr("ideal")
    rng = np.random.default_rng(1)
    tgt = a.params.levels_s[rng.integers(0, 16, a.shape)]
    _, conv, _, t_end = write_verify(a, tgt, rng, tol_s=2e-6)
    assert conv.all()
    assert np.abs(a.conductance(t_end) - tgt).max() <= 2e-6


def test_seeded_reproducibility():
    def go():
        a = _arr("typical", seed=9)
        rng = np.random.default_rng(10)
        tgt = a.params.levels_s[rng.integers(0, 16, a.shape)]
        last, *_ = write_verify(a, tgt, rng, max_pulses=50)
        return last.tobytes() + a.g_prog.tobytes()
    assert go() == go()
    b = RRAMArray(ChipParams.preset("typical"), np.random.default_rng(10))
    assert b.g_stuck.tobytes() != _arr("typical", seed=9).g_stuck.tobytes()
