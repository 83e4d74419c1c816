"""Acceleration keeps order and step indices identical for any factor; streaming through the chip."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim_backend  # noqa: F401  (registers pesim://)
from bench.data.preprocess import PreprocessConfig, spike_indices
from bench.errors import UsageError
from bench.streaming import ChipStreamer, TimeBase, as_factor
from drivers.pechip import PEChip
from sim_backend.physics.neuron import NeuronParams, srm_forward

EVENT = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8")])

factors = st.one_of(
    st.integers(1, 10**7),
    st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(10**7), max_denominator=10**6),
)


def test_default_time_base():
    tb = TimeBase()
    assert tb.dt == Fraction(1, 10_000_000)  # 100 ns exactly
    assert tb.sample_chip_s == Fraction(30, 1_000_000)  # 30 us
    assert tb.sample_dataset_s == Fraction(3, 2)
    assert tb.chip_seconds(Fraction(3, 2)) == tb.sample_chip_s


@settings(max_examples=200, deadline=None)
@given(t=st.lists(st.integers(0, 3_000_000_000), min_size=0, max_size=200),
       start=st.integers(0, 3_000_000_000), bin_us=st.integers(1, 100_000), k1=factors, k2=factors)
def test_steps_identical_for_any_factor(t, start, bin_us, k1, k2):
    t = np.array(t, dtype=np.int64)
    a = TimeBase(acceleration=k1, bin_us=bin_us, steps=300)
    b = TimeBase(acceleration=k2, bin_us=bin_us, steps=300)
    sa, sb = a.steps_of(t, start), b.steps_of(t, start)
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(sa, (t - start) // bin_us)  # the unaccelerated binning
    # chip time is exactly dataset time / k, and monotone in dataset time (order kept)
    n, p = a.chip_time_units(t, start)
    order = np.argsort(t, kind="stable")
    assert all(int(x) <= int(y) for x, y in zip(np.asarray(n)[order][:-1], np.asarray(n)[order][1:]))
    for ti, ni in zip(t[:5], np.asarray(n)[:5]):
        assert Fraction(int(ni), p) == Fraction(int(ti) - start) / a.acceleration


@settings(max_examples=100, deadline=None)
@given(ts=st.lists(st.integers(0, 1_600_000), min_size=1, max_size=100), k=factors)
def test_event_order_and_window_match_preprocessing(ts, k):
    ev = np.zeros(len(ts), EVENT)
    ev["t"] = ts
    ev["x"] = np.arange(len(ts)) % 128
    tb = TimeBase(acceleration=k)
    order, steps = tb.events_to_steps(ev, start_us=0)
    # stable dataset-time order
    assert np.all(np.diff(ev["t"][order]) >= 0)
    eq = np.diff(ev["t"][order]) == 0
    assert np.all(np.diff(order)[eq] > 0)
    # same bins as the preprocessing pipeline (which works in dataset time)
    cfg = PreprocessConfig()
    ref = np.sort(spike_indices(ev, cfg, 0) // cfg.n_inputs)
    np.testing.assert_array_equal(np.sort(steps), ref)


def test_huge_denominator_does_not_overflow():
    tb = TimeBase(acceleration=Fraction(10**12 + 1, 10**9 + 7))
    t = np.array([2**40, 5, 2**41], dtype=np.int64)
    np.testing.assert_array_equal(np.asarray(tb.steps_of(t), dtype=np.int64), t // tb.bin_us)


@pytest.mark.parametrize("bad", [0, -3, "abc", float("nan"), float("inf")])
def test_bad_factor(bad):
    with pytest.raises(UsageError):
        as_factor(bad)


def test_float_factor_is_decimal():
    assert as_factor(0.1) == Fraction(1, 10)
    assert as_factor("5e4") == 50_000


def _chip():
    return PEChip("pesim://?seed=3&fidelity=ideal")


def test_stream_sets_registers_and_matches_model():
    rng = np.random.default_rng(0)
    with _chip() as chip:
        levels = np.array(chip.info().levels_s)
        # program a few cells by pulses on the ideal chip, then use the read-back weights
        g = rng.integers(0, 4, size=(128, 24))
        rows, cols = np.nonzero(g)
        from firmware_iface.spec import PulseKind
        chip.pulse(np.full(int(g.sum()), PulseKind.SET), np.repeat(rows, g[rows, cols]),
                   np.repeat(cols, g[rows, cols]), 2.0, 2.0, 0.0, 1e-6)
        tb = TimeBase(acceleration=100_000, steps=50)
        s = ChipStreamer(chip, tb, chunk=7)
        regs = s.configure(NeuronParams())
        assert {r.name for r in regs} >= {"TIME_STEP", "N_STEPS"}
        assert chip.read_register("TIME_STEP") == pytest.approx(50e-9)
        assert chip.read_register("N_STEPS") == 50
        x = rng.random((20, 50, 100)) < 0.1
        res = s.stream(x)
        assert res.spikes.shape == (20, 50, 12) and res.chunks == 3
        np.testing.assert_array_equal(res.counts, res.spikes.sum(axis=1))
        gc = chip.read_array()  # ideal fidelity: exact (float32 on the wire)
        w = (gc[:, 0::2] - gc[:, 1::2]) / chip.read_register("G_UNIT")
        xp = np.zeros((20, 50, 128), bool)
        xp[:, :, :100] = x
        ref = srm_forward(xp.astype(float) @ w, NeuronParams()).astype(bool)
        np.testing.assert_array_equal(res.spikes, ref)
        assert len(levels) == 16
        # chip clock: 20 samples x (50 x 50 ns + latency)
        lat = chip.info().latency_s
        assert res.chip_seconds == pytest.approx(20 * (50 * 50e-9 + lat), rel=1e-6)
        c = s.clocks(res)
        assert c["dataset_seconds"] == pytest.approx(20 * 0.25)
        assert res.bytes_uploaded > 0 and res.round_trips >= 9


def test_stream_refuses_step_outside_chip_range():
    with _chip() as chip:
        s = ChipStreamer(chip, TimeBase(acceleration=10**9))  # 5 ps step
        with pytest.raises(UsageError, match="chip step"):
            s.configure()


def test_readout_stays_within_reply_limit_when_everything_spikes():
    """Output replies are bounded: 300 samples x 300 steps x 12 neurons all spiking > 4 MiB."""
    from bench.programming import program_array

    with _chip() as chip:
        info = chip.info()
        t = np.zeros((128, 24))
        t[:, 0::2] = info.levels_s[-1]  # every neuron: strongly positive weights
        program_array(chip, t)
        s = ChipStreamer(chip, TimeBase(), chunk=1000)
        s.configure(NeuronParams(ref_scale=0.0))  # no refractory kick: fire every step
        x = np.ones((300, 300, 128), bool)
        assert s._read_chunk(300) < 300
        res = s.stream(x)
        assert res.spikes[:, 10:].all() and res.counts.sum() * 4 > info.max_payload
