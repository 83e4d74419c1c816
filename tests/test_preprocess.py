"""Preprocessing: window, padding, pooling, binning, binarisation, input ordering."""
from __future__ import annotations

import numpy as np
import pytest

from bench.data.aedat import EVENT_DTYPE
from bench.data.dataset import Sample
from bench.data.preprocess import PreprocessConfig, batch_to_spikes, to_counts, to_spikes
from bench.errors import ConfigError


def ev(rows):
    return np.array(rows, dtype=EVENT_DTYPE)


def test_defaults():
    cfg = PreprocessConfig()
    assert (cfg.n_steps, cfg.n_inputs, cfg.grid) == (300, 800, (20, 20))


def test_pooling_padding_ordering_and_binning():
    cfg = PreprocessConfig()
    t0 = 7_000_000
    e = ev([
        (0, 0, 0, t0),                   # cell (0,0) OFF, step 0: (0+6)//7 = 0
        (1, 0, 1, t0 + 4999),            # x=1 -> (7)//7 = 1, ON, still step 0
        (127, 127, 1, t0 + 5000),        # (133)//7 = 19 both, step 1
        (127, 127, 1, t0 + 5001),        # same cell, same step: binarised to one spike
        (10, 30, 0, t0 + 1_499_999),     # xb=2, yb=5, last step 299
        (10, 30, 0, t0 + 1_500_000),     # outside the 1.5 s window
        (10, 30, 0, t0 - 1),             # before the origin
    ])
    s = to_spikes(e, cfg, start_us=t0)
    assert s.shape == (300, 800) and s.dtype == bool
    expected = {(0, 0), (0, 400 + 1), (1, 400 + 19 * 20 + 19), (299, 5 * 20 + 2)}
    assert set(zip(*np.nonzero(s))) == expected
    c = to_counts(e, cfg, start_us=t0)
    assert c[1, 799] == 2 and c.sum() == 5


def test_sample_origin_is_label_start():
    e = ev([(0, 0, 1, 2_000_100), (0, 0, 1, 2_010_000)])
    smp = Sample(events=e, label=3, source="f.aedat", start_us=2_000_000, end_us=3_600_000)
    s = to_spikes(smp)
    assert np.nonzero(s)[0].tolist() == [0, 2]
    # bare array without start_us: first event is the origin
    assert np.nonzero(to_spikes(e))[0].tolist() == [0, 1]
    b = batch_to_spikes([smp, smp], PreprocessConfig())
    assert b.shape == (2, 300, 800) and (b[0] == s).all() and (b[1] == s).all()
    assert batch_to_spikes([], PreprocessConfig()).shape == (0, 300, 800)


def test_configurable():
    cfg = PreprocessConfig(sample_duration_us=100_000, padding=0, pool=4, bin_us=1000, sensor=(32, 16))
    assert cfg.grid == (8, 4) and cfg.n_inputs == 64 and cfg.n_steps == 100
    s = to_spikes(ev([(31, 15, 1, 99_999)]), cfg, start_us=0)
    assert np.nonzero(s[99])[0].tolist() == [32 + 3 * 8 + 7]


@pytest.mark.parametrize("kw", [dict(bin_us=0), dict(bin_us=7000), dict(pool=9), dict(padding=-1),
                                dict(sample_duration_us=-5)])
def test_bad_config(kw):
    with pytest.raises(ConfigError):
        PreprocessConfig(**kw)


def test_empty_events():
    assert not to_spikes(np.zeros(0, EVENT_DTYPE)).any()
