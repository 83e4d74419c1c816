"""Issue 3: energy calibration, rails, SOP definitions, SimWorld rail timeline."""
import threading

import numpy as np
import pytest

from sim_backend.chip import VirtualChip
from sim_backend.physics import energy
from sim_backend.physics.params import COMPONENT_RAIL, RAILS
from sim_backend.world import SimWorld
from tests.busy_world import busy_world


@pytest.fixture(scope="module")
def ref_run():
    spikes, g = energy.reference_workload(128, seed=0)
    chip = VirtualChip(chip_seed=0, run_seed=0, fidelity="typical")
    chip.set_conductances(g)
    e0 = dict(chip.energy_j)
    t0 = chip.clock_s
    chip.run(spikes)
    comp = {k: chip.energy_j[k] - e0[k] for k in chip.energy_j}
    return chip, comp, chip.clock_s - t0, spikes


def test_reference_workload_shape_and_seed():
    s, g = energy.reference_workload(3, seed=4)
    assert s.shape == (3, 300, 128) and s.dtype == bool and g.shape == (128, 24)
    assert not s[:, :, 120:].any() and not g[:, 22:].any()
    s2, g2 = energy.reference_workload(3, seed=4)
    assert np.array_equal(s, s2) and np.array_equal(g, g2)
    # the measured gesture-layer statistics (energy.REF_*): ~11.5 % per step, ~18.9 uS per cell
    s, g = energy.reference_workload(256, seed=0)
    assert 0.105 < s[:, :, :120].mean() < 0.125
    assert 0.2 < (s[:, :, :120].sum(axis=1) == 0).mean() < 0.28
    assert 17e-6 < g[:120, :22].mean() < 21e-6
    assert set(np.unique(g)) <= set(VirtualChip().levels_s)           # on the chip's 16 levels
    assert not (g[:, 0::2] * g[:, 1::2]).any()          # one device of a pair carries the weight


@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_reference_chunks_are_bit_identical(chunk):
    spikes, _ = energy.reference_workload(20, seed=3)
    parts = list(energy.reference_chunks(20, seed=3, size=chunk))
    assert np.array_equal(np.concatenate(parts), spikes)
    assert np.array_equal(energy.reference_spikes(5, 9, seed=3), spikes[5:9])


def test_calibration_on_reference_workload(ref_run):
    chip, comp, dur, spikes = ref_run
    n = spikes.shape[0]
    total = sum(comp.values())
    assert dur / n == pytest.approx(44.31e-6, rel=1e-9)
    assert total / n == pytest.approx(1.94e-6, rel=0.05)
    assert total / dur == pytest.approx(43.83e-3, rel=0.05)
    for k, frac in energy.BREAKDOWN.items():
        got = comp[k] / total
        if frac == 0:
            assert got == 0
        else:
            assert got == pytest.approx(frac, rel=0.05), k
    neuron = (comp["tia"] + comp["soma"]) / total
    assert neuron == pytest.approx(0.6178, rel=0.05)


def test_calibration_holds_for_other_seeds_and_chips():
    spikes, g = energy.reference_workload(64, seed=9)
    chip = VirtualChip(chip_seed=4, run_seed=2, fidelity="typical")
    chip.set_conductances(g)
    chip.run(spikes)
    total = sum(chip.energy_j.values())
    assert total / 64 == pytest.approx(1.94e-6, rel=0.05)
    for k, frac in energy.BREAKDOWN.items():
        if frac:
            assert chip.energy_j[k] / total == pytest.approx(frac, rel=0.05), k


def test_frozen_calibration_is_reproducible():
    cal = energy.calibrate(n_samples=512, seed=0)
    assert cal.tia_j_per_c == pytest.approx(energy.CAL.tia_j_per_c, rel=1e-9)
    assert dict(cal.p_static_w) == pytest.approx(dict(energy.CAL.p_static_w), rel=1e-9)


def test_rails_and_component_mapping(ref_run):
    chip = ref_run[0]
    assert RAILS == {"VDDA": 1.8, "VDDD": 1.8, "VDDIO": 3.3}
    assert {c for c, r in COMPONENT_RAIL.items() if r == "VDDA"} == {"tia", "soma", "array", "other"}
    assert {c for c, r in COMPONENT_RAIL.items() if r == "VDDD"} == {"wl", "bl", "sl", "controller"}
    assert COMPONENT_RAIL["io"] == "VDDIO"
    assert sum(chip.rail_energy_j.values()) >= sum(chip.energy_j.values())


def test_sop_definitions_and_tsops():
    e = 1.94e-6
    dense = energy.tsops_per_w("dense", e)
    event = energy.tsops_per_w("event", e, in_events=1800)
    assert dense == pytest.approx(120 * 11 * 300 / e / 1e12)
    assert event == pytest.approx(1800 * 11 / e / 1e12)
    # dense over the whole 800-480-120-11 network, steps back to back, at 43.83 mW
    pub = energy.tsops_per_w("dense", e, synapses=energy.NETWORK_SYNAPSES, dt_s=100e-9, power_w=43.83e-3)
    assert energy.NETWORK_SYNAPSES == 442920
    assert pub == pytest.approx(101.05, rel=0.002)
    with pytest.raises(ValueError):
        energy.sops_per_sample("bogus")


def test_world_current_matches_energy_and_idle_is_small():
    spikes, g = energy.reference_workload(16, seed=1)
    world = SimWorld(chip_seed=0, run_seed=0, fidelity="typical")
    with world.lock:
        world.chip.set_conductances(g)
        world.advance_to(1e-3)
        t_a = world.clock_s()
        world.chip.run(spikes)
        t_b = world.clock_s()
        world.chip.read(np.arange(10), np.arange(10), 0.2, 4)
        world.advance_to(t_b + 1e-3)
    t_c = world.clock_s()
    for rail, v in world.rails.items():
        e_smu = world.mean_current_a(rail, 0.0, t_c) * v * t_c      # what an SMU integrates
        assert e_smu == pytest.approx(world.energy_j(rail), rel=0.02)
        assert world.energy_j(rail, 0.0, t_c) == pytest.approx(world.chip.rail_energy_j[rail], rel=1e-9)
    # during the run: tens of mA in total; idle: microamps
    i_run = sum(world.mean_current_a(r, t_a, t_b) * v for r, v in world.rails.items()) 
    assert i_run == pytest.approx(43.83e-3, rel=0.08)
    for r in world.rails:
        assert world.mean_current_a(r, 0.0, 0.9e-3) < 20e-6
        assert world.mean_current_a(r, t_b + 0.5e-3, t_b + 0.9e-3) < 20e-6
    assert world.mean_current_a("VDDA", t_a + 1e-6, t_a + 1e-6) > 1e-3   # instantaneous


def test_world_timeline_is_bounded_and_charge_preserving():
    world = SimWorld(chip_seed=0, fidelity="typical", max_segments=64)
    spikes = np.zeros((1, 300, 128), bool)
    spikes[0, ::3, :40] = True
    for i in range(500):
        world.chip.run(spikes)
        world.advance_to(world.clock_s() + 1e-5 * (i % 3))
    assert world.segments() <= 64
    t = world.clock_s()
    for rail in world.rails:
        assert world.energy_j(rail, 0.0, t) == pytest.approx(world.energy_j(rail), rel=1e-9)


def test_world_thread_safety_smoke():
    world = SimWorld(fidelity="typical")
    spikes = np.zeros((2, 300, 128), bool)
    spikes[:, ::2, :10] = True
    errors = []

    def fw():
        for _ in range(50):
            with world.lock:
                world.chip.run(spikes)

    def smu():
        try:
            for _ in range(200):
                t = world.clock_s()
                world.mean_current_a("VDDA", 0.0, max(t, 1e-9))
        except Exception as e:          # pragma: no cover
            errors.append(e)
    th = [threading.Thread(target=fw), threading.Thread(target=smu)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert not errors


def test_world_window_charge_matches_brute_force():
    world = busy_world(3, events=30)
    rng = np.random.default_rng(4)  # the windows
    segs = list(zip(world._t0, world._t1, world._cur))
    idle = world._idle
    t_end = world.clock_s()
    for _ in range(200):
        a, b = np.sort(rng.uniform(-1e-5, t_end + 1e-5, 2))
        for k, rail in enumerate(world.rails):
            q = idle[k] * (b - a)
            for s0, s1, c in segs:
                ov = min(s1, b) - max(s0, a)
                if ov > 0:
                    q += (c[k] - idle[k]) * ov
            assert world.mean_current_a(rail, a, b) * (b - a) == pytest.approx(q, rel=1e-9, abs=1e-18)


def test_programming_and_reads_draw_from_their_rails():
    world = SimWorld(chip_seed=1, fidelity="typical")
    chip = world.chip
    t0 = world.clock_s()
    n = 200
    chip.pulse(np.ones(n, int), np.arange(n) % 128, np.arange(n) % 24, 2.5, 1.8, 0.0, 1e-6)
    t1 = world.clock_s()
    assert world.mean_current_a("VDDD", t0, t1) > 10 * world.mean_current_a("VDDD", t1 + 1, t1 + 2)
    assert world.mean_current_a("VDDIO", t0, t1) == pytest.approx(1e-6)        # leakage only
    chip.read(np.arange(64), np.arange(64) % 24, 0.2, 4)
    t2 = world.clock_s()
    assert world.mean_current_a("VDDA", t1, t2) > 1e-4
    assert chip.energy_j["array"] > 0 and chip.energy_j["sl"] > 0
    # energy counters match the timeline for every rail
    for r in world.rails:
        assert world.energy_j(r, 0.0, t2) == pytest.approx(world.energy_j(r), rel=1e-9)
