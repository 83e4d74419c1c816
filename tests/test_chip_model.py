"""Issue 3: VirtualChip on the physics models - ideal exactness, timing, seeds, programming."""
import numpy as np
import pytest

from sim_backend.chip import ChipRegisters, VirtualChip
from sim_backend.physics.energy import reference_workload
from sim_backend.physics.neuron import NeuronParams, srm_forward
from sim_backend.physics.params import ChipParams


def _program_levels(chip, rng):
    lv = chip.levels_s
    chip.set_conductances(lv[rng.integers(0, 16, (128, 24))])


def test_ideal_run_is_srm_forward_of_weights_exactly():
    chip = VirtualChip(chip_seed=1, run_seed=2, fidelity="ideal")
    _program_levels(chip, np.random.default_rng(0))
    spikes = np.random.default_rng(1).random((8, 300, 128)) < 0.05
    out = chip.run(spikes)
    ref = srm_forward(spikes @ chip.weights()).astype(bool)
    assert out.dtype == bool and out.shape == (8, 300, 12)
    assert np.array_equal(out, ref)
    assert out.sum() > 0


def test_ideal_pulse_programming_via_pulses_and_reads():
    chip = VirtualChip(fidelity="ideal")
    g0 = chip.read([0], [0], 0.2, 4)[0]
    chip.pulse(np.array([1, 1, 1]), np.array([0, 0, 0]), np.array([0, 0, 0]), np.array([2.0, 2.1, 2.2]),
               np.array([1.8] * 3), np.zeros(3), np.full(3, 1e-6))
    g1 = chip.read([0], [0], 0.2, 4)[0]
    assert g1 > g0
    chip.pulse([-1], [0], [0], [0.0], [3.0], [3.0], [1e-6])
    assert chip.read([0], [0], 0.2, 1)[0] < g1


def test_sample_timing_and_clock():
    chip = VirtualChip(fidelity="typical")
    assert ChipRegisters().dt_s * 300 + ChipRegisters().latency_s == pytest.approx(44.31e-6)
    t0 = chip.clock_s
    chip.run(np.zeros((5, 300, 128), bool))
    assert chip.clock_s - t0 == pytest.approx(5 * 44.31e-6, rel=1e-12)
    chip.advance(2.5)
    assert chip.clock_s - t0 == pytest.approx(2.5 + 5 * 44.31e-6)
    with pytest.raises(ValueError):
        chip.advance(-1)
    t1 = chip.clock_s
    chip.read([1, 2], [3, 4], 0.2, 8)
    assert chip.clock_s > t1


def test_constructor_fidelity_forms_and_overrides():
    assert VirtualChip(fidelity="worst").params.name == "worst"
    c = VirtualChip(fidelity=ChipParams.preset("typical", read_noise_rel=0.03))
    assert c.params.read_noise_rel == 0.03
    c2 = VirtualChip(fidelity="typical", neuron_noise_sigma=0.0)
    assert c2.params.neuron_noise_sigma == 0.0
    with pytest.raises(ValueError, match="nope"):
        VirtualChip(fidelity="typical", nope=1)
    c2.set_conductances(np.full((128, 24), 30e-6))
    c2.set_fidelity("ideal")
    assert c2.fidelity == "ideal"
    assert c2.conductances()[0, 0] == pytest.approx(30e-6) or c2.array.stuck[0, 0]


def test_same_seeds_same_bytes_and_different_run_seed_differs():
    spikes, g = reference_workload(4, seed=1)

    def go(run_seed):
        chip = VirtualChip(chip_seed=7, run_seed=run_seed, fidelity="typical")
        rng = np.random.default_rng(0)
        chip.pulse(np.ones(50, int), rng.integers(0, 128, 50), rng.integers(0, 24, 50), 2.0, 1.8, 0.0, 1e-6)
        r = chip.read(np.arange(20), np.arange(20) % 24, 0.2, 2)
        chip.set_conductances(g)
        out = chip.run(spikes)
        return r.tobytes() + np.packbits(out).tobytes() + repr(sorted(chip.energy_j.items())).encode()
    a, b, c = go(1), go(1), go(2)
    assert a == b
    assert a != c


def test_typical_noise_and_mismatch_change_spikes_a_little():
    spikes, g = reference_workload(16, seed=2)
    ideal = VirtualChip(chip_seed=3, fidelity="ideal")
    typ = VirtualChip(chip_seed=3, run_seed=1, fidelity="typical")
    for c in (ideal, typ):
        c.set_conductances(g)
    a, b = ideal.run(spikes), typ.run(spikes)
    assert not np.array_equal(a, b)
    assert b.sum() == pytest.approx(a.sum(), rel=0.15)
    th = typ.theta_mismatch
    assert 0.002 < np.std(th) < 0.06 and np.all(np.abs(th - 1) < 0.1)


def test_write_verify_through_chip_api_typical():
    """The NeuRRAM incremental-step schedule works through VirtualChip.pulse/read."""
    chip = VirtualChip(chip_seed=5, run_seed=6, fidelity="typical")
    rng = np.random.default_rng(7)
    rows, cols = np.indices((128, 24))
    rows, cols = rows.ravel(), cols.ravel()
    tgt = chip.levels_s[rng.integers(0, 16, rows.size)]
    v_set = np.full(rows.size, 1.2)
    v_reset = np.full(rows.size, 1.2)
    active = np.ones(rows.size, bool)
    conv = np.zeros(rows.size, bool)
    for _ in range(200):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        g = chip.read(rows[a], cols[a], 0.2, 4)
        err = g - tgt[a]
        ok = np.abs(err) <= 3e-6
        conv[a[ok]] = True
        active[a[ok]] = False
        a, err = a[~ok], err[~ok]
        up = err < 0
        v_reset[a[up]] = 1.2
        v_set[a[~up]] = 1.2
        v = np.where(up, v_set[a], v_reset[a])
        chip.pulse(np.where(up, 1, -1), rows[a], cols[a], np.where(up, v, 0.0), np.where(up, 1.8, 3.0),
                   np.where(up, 0.0, v), np.full(a.size, 1e-6))
        v_set[a[up]] = np.minimum(v_set[a[up]] + 0.1, 4.0)
        v_reset[a[~up]] = np.minimum(v_reset[a[~up]] + 0.1, 4.0)
    g = chip.conductances().ravel()
    ok = ~chip.array.stuck.ravel()
    assert np.mean(np.abs(g - tgt)[ok] <= 5e-6) >= 0.99
    assert 0.002 <= 1 - conv.mean() <= 0.014
    assert chip.counters["pulses"] > 0 and chip.energy_j["sl"] > 0


def test_relaxation_follows_chip_clock_through_runs_and_advance():
    chip = VirtualChip(chip_seed=8, run_seed=9, fidelity="typical")
    rows, cols = np.indices((128, 24))
    rows, cols = rows.ravel(), cols.ravel()
    chip.pulse(np.ones(rows.size, int), rows, cols, 2.4, 1.8, 0.0, 1e-6)
    g0 = chip.conductances()
    ok = ~chip.array.stuck
    t_prog = chip.array.t_prog.copy()
    chip.run(np.zeros((1000, 300, 128), bool))           # 44 ms of chip time
    g1 = chip.conductances()
    chip.advance(86400.0)
    g2 = chip.conductances()
    d1 = (g1 - g0)[ok].std()
    d2 = (g2 - g0)[ok].std()
    assert 0.3e-6 < d1 < d2
    assert 3e-6 < d2 < 5e-6
    assert np.array_equal(chip.array.t_prog, t_prog)      # reads/runs do not reprogram


def test_worst_corner_is_worse_than_typical():
    from sim_backend.physics.rram import RRAMArray
    from sim_backend.physics.testing import write_verify

    res = {}
    for name in ("typical", "worst"):
        a = RRAMArray(ChipParams.preset(name), np.random.default_rng(0))
        rng = np.random.default_rng(1)
        tgt = a.params.levels_s[rng.integers(0, 16, a.shape)]
        _, conv, pulses, t = write_verify(a, tgt, rng)
        res[name] = (1 - conv.mean(), pulses.mean())
    assert res["worst"][0] > res["typical"][0]
    assert res["worst"][1] > res["typical"][1]
