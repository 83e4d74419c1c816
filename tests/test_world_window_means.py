"""SimWorld.mean_currents_a: a simulated SMU's whole trace in one vectorised call (issue 17).

A buffered trace of a few seconds of chip time at 200 us per point is ~57,000 windows; one
``mean_current_a`` call per window made each reading-count query of the simulated SMUs take
~0.2 s.  Expected values here come from a brute-force sum over the recorded segments (the
overlap of each segment with each window), not from ``_charge``.
"""
from __future__ import annotations

import numpy as np
import pytest

from sim_backend.instruments.channel import SimChannel
from sim_backend.world import SimWorld
from tests.busy_world import busy_world


def _brute_mean(world: SimWorld, k: int, a: float, b: float) -> float:
    idle = world._idle[k]
    q = idle * (b - a)
    for s0, s1, c in zip(world._t0, world._t1, world._cur):
        ov = min(s1, b) - max(s0, a)
        if ov > 0:
            q += (c[k] - idle) * ov
    return q / (b - a)


@pytest.mark.parametrize("start_s", [0.0, 1.0e5])
def test_vectorised_windows_match_brute_force_segment_sums(start_s):
    """kills SimWorld.mean_currents_a mutants (wrong segment index: side="left", partial part
    of the first or last segment dropped or not clipped to its segment, cum terms of the wrong
    segment, idle added twice): random windows over the whole timeline, before the first and
    after the last segment, inside single segments and across many, on a fresh clock and on a
    die whose clock reads 1e5 s."""
    world = busy_world(3, start_s=start_s)
    rng = np.random.default_rng(4)
    t_begin, t_end = world._t0[0], world.clock_s()
    span = t_end - t_begin
    a = np.concatenate([rng.uniform(t_begin - 0.1 * span, t_end + 0.1 * span, 300),
                        np.asarray(world._t0[:20]) + 1e-9,                 # inside one segment
                        [t_begin - 2e-6, t_end + 1e-6]])                    # all idle
    w = np.concatenate([rng.uniform(1e-7, 0.3 * span, 300), np.full(20, 1e-8), [1e-6, 1e-6]])
    b = a + w
    for k, rail in enumerate(world.rails):
        got = world.mean_currents_a(rail, a, b)
        assert got.shape == a.shape
        want = np.array([_brute_mean(world, k, x, y) for x, y in zip(a, b)])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
        # the last two windows lie where no segment is: exactly the idle current
        assert got[-1] == world._idle[k] and got[-2] == world._idle[k]


def test_empty_window_gives_the_current_at_its_start_and_unknown_rail_is_refused():
    """kills the mutant that divides an empty window by its width (nan/inf) instead of giving
    the instantaneous current, like the scalar mean_current_a."""
    world = busy_world(5)
    s0, s1, cur = world._t0[3], world._t1[3], world._cur[3]
    mid = 0.5 * (s0 + s1)
    after = world.clock_s() + 1.0
    for k, rail in enumerate(world.rails):
        got = world.mean_currents_a(rail, np.array([mid, after]), np.array([mid, after]))
        assert got[0] == pytest.approx(cur[k], rel=1e-12) and got[1] == world._idle[k]
    with pytest.raises(KeyError):
        world.mean_currents_a("VDDX", np.zeros(1), np.ones(1))


def test_no_segment_yet_is_idle_everywhere():
    """kills the mutant that indexes an empty timeline (IndexError on a fresh world)."""
    world = SimWorld(chip_seed=2, fidelity="ideal")
    world._t0.clear(), world._t1.clear(), world._cur.clear()
    del world._cum[1:]
    got = world.mean_currents_a("VDDA", np.array([0.0, 1.0]), np.array([1.0, 3.0]))
    assert np.array_equal(got, np.full(2, world._idle[world._names.index("VDDA")]))


def test_a_simulated_smu_trace_asks_the_world_once_not_once_per_point():
    """kills the removal of SimWorld.mean_currents_a (the channel then falls back to one
    ``mean_current_a`` per point, ~3.5 us each: ~0.2 s per 57,000-point trace inside one
    instrument query), and checks the trace's points are the brute-force window means."""
    world = busy_world(6)
    calls = {"scalar": 0}
    scalar = world.mean_current_a

    def counting(*args, **kwargs):
        calls["scalar"] += 1
        return scalar(*args, **kwargs)

    world.mean_current_a = counting  # type: ignore[method-assign]
    ch = SimChannel(world, "VDDA", max_voltage_v=3.6, max_current_a=0.2, output=True,
                    level_v=world.rails["VDDA"], limit_a=0.1, nplc=0.01)
    t_start = world._t0[0]
    world.chip.clock_s = t_start          # re-arm over the recorded history (the chip clock is a
    acq = ch.arm(2000, ch.measure_s)      # plain float attribute): 2,000 windows across it
    world.chip.clock_s = acq.end_s        # the world has reached the end of the trace
    values, _, comp = ch.buffer()
    assert calls["scalar"] == 0
    assert values.shape == (2000,) and not comp.any()
    starts = acq.starts_s()
    k = world._names.index("VDDA")
    want = np.array([_brute_mean(world, k, s, s + acq.aperture_s) for s in starts[::97]])
    np.testing.assert_allclose(values[::97], want, rtol=1e-9, atol=1e-15)
