"""DVS pixel model of the realistic gesture generator, against hand-derived cases.

A single pixel (1 x 1 sensor) under DC light: the number of events of a log-intensity ramp is
floor(change / threshold), their spacing is threshold / slope, the refractory period bounds the
rate, and the noise rates match their Poisson expectations.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.data.gesture.dvs import Lighting, PixelParams, Sensor

DARK = 0.01
EXACT = PixelParams(c_on=0.2, c_off=0.23, sigma_c=0.0, refractory_s=1e-6, tau_bright_s=1e-6, dark=DARK,
                    latency_bright_s=0.0)


def _pixel(params=EXACT, level=1.0):
    s = Sensor(params, Lighting("led", level), np.random.default_rng(0), (1, 1), 1000)
    s.set_background(np.zeros((1, 1)))
    return s


def _run(s: Sensor, intensity: np.ndarray, t0: int = 0):
    """Feed a per-step intensity sequence (steps of 1 ms) to a 1x1 sensor; return (t, on)."""
    s.start(np.array([[intensity[0]]], np.float32), t0)
    s.lref[:] = s.lf  # reference exactly at the starting level
    for i0 in range(1, len(intensity), 32):
        blk = intensity[i0:i0 + 32].astype(np.float32)[:, None, None]
        s.step_block(blk, (0, 1, 0, 1), t0 + i0 * 1000)
    t, g, on = s.drain()
    o = np.argsort(t, kind="stable")
    return t[o], on[o]


def _log_ramp(i1: float, i2: float, steps: int, hold: int = 50) -> np.ndarray:
    """Intensity whose ln(I + dark) goes linearly from ln(i1 + dark) to ln(i2 + dark)."""
    L = np.linspace(math.log(i1 + DARK), math.log(i2 + DARK), steps)
    return np.concatenate([np.full(hold, i1), np.exp(L) - DARK, np.full(hold, i2)])


def test_ramp_up_then_down_counts_floor_change_over_threshold():
    # ln((I2+d)/(I1+d)) = 1.3 = 6.5 ON thresholds (0.2): 6 ON events; back down the reference
    # is 1.2 above the start: floor(1.2 / 0.23) = 5 OFF events
    i1 = 0.1
    i2 = (i1 + DARK) * math.exp(1.3) - DARK
    up = _log_ramp(i1, i2, 100)
    down = _log_ramp(i2, i1, 100)[50:]
    t, on = _run(_pixel(), np.concatenate([up, down]))
    n_on_first = int(np.sum(on[t < 200_000]))
    assert n_on_first == 6
    assert int(np.sum(on)) == 6
    assert int(np.sum(~on)) == 5
    assert np.all(t[~on] > t[on].max())


def test_events_of_a_log_ramp_are_evenly_spaced_by_threshold_over_slope():
    # slope 1.3 per 100 ms -> one ON event every 0.2 / 0.013 ms = 15.38 ms
    i1 = 0.1
    i2 = (i1 + DARK) * math.exp(1.3) - DARK
    t, on = _run(_pixel(), _log_ramp(i1, i2, 101))
    gaps = np.diff(t[on])
    assert len(gaps) == 5
    assert np.allclose(gaps, 0.2 / 0.013 * 1000, atol=1000)  # within one render step
    # the first crossing: 15.4 ms into the ramp (it starts at 50 ms), lag of the photoreceptor < 1 step
    assert abs(t[on][0] - (50_000 + 0.2 / 0.013 * 1000)) <= 2000


def test_refractory_period_bounds_the_rate_and_resets_the_reference():
    p = PixelParams(c_on=0.2, c_off=0.23, sigma_c=0.0, refractory_s=400e-6, tau_bright_s=1e-6, dark=DARK,
                    latency_bright_s=0.0)
    # a step of ln(101/1.01) = 4.6 (23 thresholds) in one 1 ms step: at most 1 ms / 0.4 ms = 2 events
    x = np.concatenate([np.full(40, 1.0), np.full(40, 100.0)])
    t, on = _run(_pixel(p), x)
    assert 1 <= len(t) <= 2 and on.all()
    if len(t) == 2:
        assert t[1] - t[0] >= 400
    # afterwards the reference sits at the new level: holding it gives no more events


def test_photoreceptor_lags_in_dim_light():
    slow = PixelParams(c_on=0.2, c_off=0.23, sigma_c=0.0, refractory_s=1e-6, tau_bright_s=0.5e-3, dark=DARK,
                       latency_bright_s=0.0)
    x = np.concatenate([np.full(40, 0.1), np.full(200, 0.4)])
    t_bright, _ = _run(_pixel(slow, level=1.0), x)
    t_dim, _ = _run(_pixel(slow, level=0.05), x)
    # lin-log: L = ln(level * I + dark); bright ln(0.41 / 0.11) = 1.32 -> 6 events,
    # dim ln(0.03 / 0.015) = 0.69 -> 3 events (the dark current eats the contrast)
    assert len(t_bright) == 6 and len(t_dim) == 3
    # tau = 0.5 ms / (level * I + dark): ~1.2 ms bright -> all within 3 ms of the step (at 39-40 ms);
    # ~17-33 ms dim -> the last crossing (87 % of the way) more than 20 ms after it
    assert t_bright[-1] < 43_000
    assert t_dim[-1] > 60_000


def test_noise_rates_match_their_poisson_expectation():
    p = PixelParams(ba_hz=0.1, leak_hz=0.05, hot_pixels=(0, 0))
    level = 0.5
    s = Sensor(p, Lighting("lab", level), np.random.default_rng(3), (128, 128), 1000)
    span = 20.0
    t, g, on = s.noise(0, int(span * 1e6))
    n_pix = 128 * 128
    exp_ba = p.ba_hz / level * n_pix * span  # 65,536
    exp_leak = p.leak_hz * level * n_pix * span  # 8,192
    assert abs(len(t) - (exp_ba + exp_leak)) < 5 * math.sqrt(exp_ba + exp_leak)
    exp_on = exp_ba / 2 + exp_leak
    assert abs(int(on.sum()) - exp_on) < 5 * math.sqrt(exp_ba)
    assert t.min() >= 0 and t.max() < span * 1e6 and g.max() < n_pix


def test_hot_pixels_fire_at_their_rate():
    p = PixelParams(ba_hz=0.0, leak_hz=0.0, hot_pixels=(3, 3), hot_hz=(100.0, 100.0))
    s = Sensor(p, Lighting("led", 1.0), np.random.default_rng(4), (128, 128), 1000)
    t, g, on = s.noise(0, 10_000_000)
    assert len(np.unique(g)) <= 3
    assert abs(len(t) - 3000) < 5 * math.sqrt(3000)


@pytest.mark.parametrize("name", ["fluorescent", "fluorescent_led", "lab", "led", "natural"])
def test_lightings(name):
    from bench.data.gesture.dvs import lighting

    L = lighting(name, np.random.default_rng(0))
    assert L.level > 0
    if name.startswith("fluorescent"):
        assert L.flicker_hz in (100.0, 120.0) and L.flicker_depth > 0  # twice the mains frequency
    if name == "led":
        assert L.flicker_depth == 0
    if name == "lab":
        assert L.level < 0.5  # the dim condition
