"""Stuck cells in the hardware-aware training noise model (issue 15, next steps).

Expected values come from the device model's documented statistics (docs/chip_model.md: 0.5 %
stuck-on at 160-200 uS and 0.5 % stuck-off below 3.6 uS at `typical`), hand-derived pairs at
50 uS per unit on the 10 uS grid, and a second implementation written differently: the bench's
mapper routing around a bad-cell map (bench.mapping.route_around, an exhaustive search over
level pairs).
"""
from __future__ import annotations

import numpy as np
import pytest

from bench import mapping as M
from bench.network import hwaware as H

US = 1e-6
NAN = np.nan


def test_chip_defaults_take_the_presets_stuck_cell_statistics():
    """Protects chip_defaults: the fractions and ranges are the device model's (typical: 0.5 %
    + 0.5 %, stuck-on 160-200 uS, stuck-off 0.3-3.6 uS; worst: 1 % + 1 %; ideal: none)."""
    t = H.chip_defaults("typical")
    assert (t.stuck_on_frac, t.stuck_off_frac) == (0.005, 0.005)
    assert (t.g_stuck_on_lo_s, t.g_stuck_on_hi_s) == pytest.approx((160 * US, 200 * US), rel=1e-12)
    assert t.g_min_s == pytest.approx(0.3 * US) and t.g_stuck_off_hi_s == pytest.approx(3.6 * US)
    assert (H.chip_defaults("worst").stuck_on_frac, H.chip_defaults("worst").stuck_off_frac) == (0.01, 0.01)
    assert (H.chip_defaults("ideal").stuck_on_frac, H.chip_defaults("ideal").stuck_off_frac) == (0.0, 0.0)
    assert H.HWAwareConfig().stuck_on_frac == 0.0      # off unless asked for
    assert t.route_stuck                              # the bench's default flow routes


def test_chip_defaults_keep_stuck_on_and_stuck_off_apart(monkeypatch):
    """Protects chip_defaults against swapping the two fractions (equal in both presets)."""
    from sim_backend.physics.params import ChipParams

    real = ChipParams.preset
    monkeypatch.setattr(ChipParams, "preset", staticmethod(
        lambda name, **kw: real("typical", stuck_on_frac=0.003, stuck_off_frac=0.007)))
    t = H.chip_defaults("typical")
    assert (t.stuck_on_frac, t.stuck_off_frac) == (0.003, 0.007)


def test_unquantised_partner_is_kept_in_range():
    """Without quantisation the routed partner is continuous but still within 0 .. 150 uS:
    +1.0 with G- stuck-on at 170 uS wants G+ = 220 uS -> 150 uS -> -0.4."""
    cfg = H.HWAwareConfig(quantize=False)
    out = H.stuck_weights(np.array([1.0]), np.array([1.0]), np.array([[NAN], [170 * US]]), cfg)
    assert out[0] == pytest.approx(-0.4, abs=1e-9)
    out = H.stuck_weights(np.array([1.03]), np.array([1.03]), np.array([[180 * US], [NAN]]), cfg)
    assert out[0] == pytest.approx(1.03, abs=1e-9)   # G- = 128.5 uS, off the grid


def test_draw_stuck_fractions_and_values_follow_the_device_model():
    """Protects draw_stuck: 2 devices x 200 x 300 weights at 0.5 % + 0.5 %: 600 +- 4 sigma
    (sigma = sqrt(120000 * 0.005 * 0.995) = 24.4) of each kind, values in their ranges."""
    cfg = H.chip_defaults("typical")
    g = H.draw_stuck((200, 300), cfg, np.random.default_rng(1))
    assert g.shape == (2, 200, 300)
    on = np.isfinite(g) & (g >= 100 * US)
    off = np.isfinite(g) & (g < 100 * US)
    for n in (on.sum(), off.sum()):
        assert abs(n - 600) < 4 * 24.4
    assert g[on].min() >= 160 * US and g[on].max() <= 200 * US
    assert g[off].min() >= 0.3 * US and g[off].max() <= 3.6 * US
    # spread over the whole range (uniform): both halves of each range are populated
    assert (g[on] < 180 * US).mean() == pytest.approx(0.5, abs=0.1)
    assert (g[off] < 1.95 * US).mean() == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("w, gp, gm, routed, unrouted", [
    # +1.4 (70 uS), G+ stuck-on 180: routed G- = 110 -> +1.4; unrouted G- stays 0 -> 180/50
    (1.4, 180 * US, NAN, 1.4, 3.6),
    # +1.0, G- stuck-on 170: routed G+ = min(150, 220) -> -0.4; unrouted G+ = 50 -> -2.4
    (1.0, NAN, 170 * US, -0.4, -2.4),
    # 0.0, G- stuck-on 190: routed G+ = 150 -> -0.8; unrouted -3.8
    (0.0, NAN, 190 * US, -0.8, -3.8),
    # +1.0, G+ stuck-off at 2 uS: nothing can make it positive: G- = 0 -> 0.04 either way
    (1.0, 2 * US, NAN, 0.04, 0.04),
    # -1.0, G+ stuck-off at 2 uS: harmless, G- = 52 -> 50 uS (routed) or 50 uS (unrouted)
    (-1.0, 2 * US, NAN, -0.96, -0.96),
    # both stuck: (180 - 2) / 50, nothing to route
    (0.6, 180 * US, 2 * US, 3.56, 3.56),
])
def test_stuck_pairs_hand_derived(w, gp, gm, routed, unrouted):
    """Protects stuck_weights: hand-derived pairs at 50 uS per unit on the 10 uS grid."""
    weight = np.array([w])
    w_eff = H.quantize(weight, H.HWAwareConfig())
    g = np.array([[gp], [gm]])
    for route, want in ((True, routed), (False, unrouted)):
        cfg = H.HWAwareConfig(route_stuck=route)
        assert H.stuck_weights(weight, w_eff, g, cfg)[0] == pytest.approx(want, abs=1e-9)


def test_healthy_pairs_are_untouched():
    cfg = H.chip_defaults("typical")
    weight = np.array([[0.37, -1.2], [2.5, 0.0]])
    w_eff = weight + 0.01
    out = H.stuck_weights(weight, w_eff, np.full((2, 2, 2), NAN), cfg)
    np.testing.assert_array_equal(out, w_eff)


def test_routed_stuck_weights_agree_with_the_bench_mapper():
    """Protects stuck_weights(route_stuck=True) against a second implementation: the mapper's
    exhaustive routing (bench.mapping.map_weights with a bad-cell map), with the stuck
    devices' real conductances put back in, on 120 x 11 random weights with ~10 % stuck
    devices (both kinds)."""
    rng = np.random.default_rng(7)
    weight = rng.normal(0, 1.2, size=(11, 120))            # (n_out, n_in) as a layer holds it
    cfg = H.HWAwareConfig(stuck_on_frac=0.05, stuck_off_frac=0.05, weight_noise_s=0.0)
    g = H.draw_stuck(weight.shape, cfg, rng)
    ours = H.stuck_weights(weight, H.quantize(weight, cfg), g, cfg)
    # the same stuck devices as the mapper's bad-cell map: array rows = inputs, pair k = 2k, 2k+1
    bad = np.full((128, 24), NAN)
    bad[:120, 0:22:2] = g[0].T
    bad[:120, 1:22:2] = g[1].T
    m = M.map_weights(weight.T, clamp=3.0, scale_s=cfg.g_unit_s, bad_cells_s=bad)
    real = m.targets_s.copy()
    real[np.isfinite(bad)] = bad[np.isfinite(bad)]
    theirs = M.effective_weights(real, cfg.g_unit_s)[:120, :11].T
    assert np.isfinite(g).sum() > 200
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_perturb_applies_stuck_cells_in_training():
    """Protects perturb: with every device stuck-on (fraction 1) every pair is both-stuck,
    (G+ - G-) / 50 uS with both in 160-200 uS -> within +-0.8, whatever the weight; with the
    fractions at 0 the stuck model is off (weights = quantised)."""
    w = np.full((30, 40), 2.0)
    all_on = H.HWAwareConfig(stuck_on_frac=1.0, weight_noise_s=0.0)
    p = H.perturb(w, all_on, np.random.default_rng(0))
    assert np.abs(p).max() <= 0.8 + 1e-12 and np.std(p) > 0.1
    off = H.HWAwareConfig(weight_noise_s=0.0)
    np.testing.assert_array_equal(H.perturb(w, off, np.random.default_rng(0)), H.quantize(w, off))


@pytest.mark.parametrize("kw", [{"stuck_on_frac": -0.1}, {"stuck_off_frac": 1.5},
                                {"stuck_on_frac": 0.6, "stuck_off_frac": 0.6},
                                {"g_stuck_on_lo_s": 200e-6, "g_stuck_on_hi_s": 160e-6}])
def test_bad_stuck_config_is_refused(kw):
    with pytest.raises(ValueError):
        H.HWAwareConfig(**kw)
