"""RRAM array details the mutation run found unchecked (issue 18): batched pulses to one cell
run in their given order, column indices of any integer dtype, read disturb only on the cells
read, and the die-file state (``state()`` / ``load_state()``) as a snapshot that survives the
dtypes a file gives back.

Expected values: the ``ideal`` preset has no randomness, so a batch of pulses must leave the
array exactly as the same pulses applied one call at a time (the docstring's "pulses to the
same cell are sequential"); read disturb is the closed form ``g (1 + rel * averages)`` from
the model's description; the state tests compare against values set by hand.
"""
from __future__ import annotations

import numpy as np
import pytest

from sim_backend.physics.params import ChipParams
from sim_backend.physics.rram import RRAMArray

US = 1e-6


def _ideal(**kw) -> RRAMArray:
    return RRAMArray(ChipParams.preset("ideal", **kw), np.random.default_rng(3), rows=8, cols=6)


def _pulse_list(n: int, seed: int):
    """``n`` pulses on three cells, mixed SET / RESET at voltages where the result depends on
    the cell's conductance before the pulse (compliance and RESET shape), so order matters."""
    r = np.random.default_rng(seed)
    cell = r.integers(0, 3, n)
    rows, cols = np.array([1, 4, 7])[cell], np.array([0, 5, 2])[cell]
    kind = np.where(r.random(n) < 0.6, 1, -1)
    v = 1.5 + 1.5 * r.random(n)
    v_bl, v_sl = np.where(kind > 0, v, 0.0), np.where(kind > 0, 0.0, v)
    v_wl = np.where(kind > 0, 0.9 + r.random(n), 2.0)
    t = 1e-6 * (1 + np.arange(n))
    return kind, rows, cols, v_bl, v_wl, v_sl, t


def test_batched_pulses_to_one_cell_run_in_the_given_order():
    """Kills rram.pulse mutant _82 (argsort without kind="stable": with more than ~16 pulses
    numpy's default sort reorders equal keys, so repeated pulses to one cell run out of order).
    Reference: the same pulses applied one call at a time, in order."""
    n = 120
    kind, rows, cols, v_bl, v_wl, v_sl, t = _pulse_list(n, seed=11)
    batch, single = _ideal(), _ideal()
    for a in (batch, single):
        a.set_conductance(np.full(a.shape, 40 * US), 0.0)
    rng = np.random.default_rng(0)
    i_batch = batch.pulse(kind, rows, cols, v_bl, v_wl, v_sl, 1e-6, t, rng)
    i_single = np.array([single.pulse([kind[j]], [rows[j]], [cols[j]], [v_bl[j]], [v_wl[j]],
                                      [v_sl[j]], [1e-6], [t[j]], rng)[0] for j in range(n)])
    assert np.array_equal(batch.g_prog, single.g_prog)
    assert np.array_equal(batch.t_prog, single.t_prog)
    assert np.array_equal(i_batch, i_single)
    assert np.array_equal(batch.pulse_count, single.pulse_count)
    assert batch.pulse_count.sum() == n


@pytest.mark.parametrize("dtype", [np.uint64, np.float64])
def test_pulse_accepts_column_indices_of_any_numeric_dtype(dtype):
    """Kills rram.pulse mutant _24 (columns not converted to int64: integral float columns
    then stay float, and indexing the array with them fails).  Columns may reach the model
    as floats (computed from a geometry) or as an unsigned type a decoder unpacked; the pulse
    must land on (row 2, column 3) either way."""
    a = _ideal()
    a.set_conductance(np.full(a.shape, 20 * US), 0.0)
    a.pulse([1], np.array([2]), np.array([3], dtype=dtype), [2.0], [1.8], [0.0], [1e-6], [1e-6],
            np.random.default_rng(0))
    changed = np.argwhere(a.g_prog != 20 * US)
    assert changed.tolist() == [[2, 3]]
    assert a.pulse_count[2, 3] == 1 and a.pulse_count.sum() == 1


def test_read_disturb_changes_only_the_cells_read():
    """Kills rram.read mutant _48 (np.add.at on index None: every cell of the array drifts on
    a read).  Model: a read above 0.3 V moves each read cell by read_disturb_rel * averages * g;
    the rest of the array is untouched."""
    a = _ideal(read_disturb_rel=1e-3)
    g0 = np.full(a.shape, 50 * US)
    a.set_conductance(g0, 0.0)
    rows, cols = np.array([0, 5]), np.array([1, 4])
    a.read(rows, cols, 0.4, 4, 1.0, np.random.default_rng(0))
    want = g0.copy()
    want[0, 1] = want[5, 4] = 50 * US * (1 + 1e-3 * 4)
    np.testing.assert_allclose(a.g_prog, want, rtol=1e-12, atol=0)
    a.read(rows, cols, 0.2, 4, 2.0, np.random.default_rng(0))      # at 0.2 V: no disturb
    np.testing.assert_allclose(a.g_prog, want, rtol=1e-12, atol=0)


def test_state_is_a_snapshot_that_load_state_restores():
    """Kills rram.state mutants _2 (copy=None: the "copies" alias the live arrays, so a later
    pulse changes a saved die state) and _6 (getattr(self, None)), and load_state _20
    (getattr(self, ) on restore).  A saved state must not change when the chip is used
    afterwards, and loading it must bring every field back."""
    a = RRAMArray(ChipParams.preset("typical"), np.random.default_rng(5), rows=8, cols=6)
    a.set_conductance(np.full(a.shape, 30 * US), 0.5)
    saved = a.state()
    assert tuple(saved) == RRAMArray.STATE_FIELDS
    assert saved["g_prog"][2, 2] == 30 * US and saved["t_prog"][2, 2] == 0.5
    a.pulse([1], [2], [2], [2.5], [1.8], [0.0], [1e-6], [1.0], np.random.default_rng(1))
    assert a.pulse_count[2, 2] == 1 and a.t_prog[2, 2] == 1.0
    assert saved["pulse_count"][2, 2] == 0 and saved["t_prog"][2, 2] == 0.5
    assert saved["g_prog"][2, 2] == 30 * US
    a.load_state(saved)
    assert a.pulse_count[2, 2] == 0 and a.t_prog[2, 2] == 0.5 and a.g_prog[2, 2] == 30 * US
    for k in RRAMArray.STATE_FIELDS:
        assert np.array_equal(getattr(a, k), saved[k]), k


def test_load_state_restores_the_array_dtypes_from_a_file():
    """Kills rram.load_state mutant _12 (arrays kept in the dtype they were given: a die file
    stores the stuck flags as 0/1 integers and the pulse counts as floats, and ``~flag`` on an
    integer array is -1/-2, not a mask).  After loading such a state the stuck cells must be
    the ones flagged and the arrays must have the array's own dtypes."""
    a = _ideal()
    st = a.state()
    on = np.zeros(a.shape, dtype=np.uint8)
    on[1, 1] = 1
    st["fab_stuck_on"] = on
    st["fab_stuck_off"] = np.zeros(a.shape, dtype=np.uint8)
    st["wear_stuck_on"] = np.zeros(a.shape, dtype=np.uint8)
    st["g_fab_stuck"] = np.where(on == 1, 180 * US, 0.0)
    st["pulse_count"] = np.full(a.shape, 3.0)
    a.load_state(st)
    assert a.fab_stuck_on.dtype == bool and a.pulse_count.dtype == np.int64
    assert a.stuck.dtype == bool
    assert np.argwhere(a.stuck).tolist() == [[1, 1]]
    g = a.conductance(0.0)
    assert g[1, 1] == 180 * US and g[0, 0] == 0.0
    # a pulse lands on a normal cell and not on the stuck one
    a.pulse([1, 1], [1, 0], [1, 0], [2.0, 2.0], [1.8, 1.8], [0.0, 0.0], 1e-6, 1e-6,
            np.random.default_rng(0))
    assert a.g_prog[1, 1] == 0.0 and a.g_prog[0, 0] > 0
    assert a.pulse_count[0, 0] == 4


def test_load_state_refuses_a_state_of_another_shape():
    """A die file of another array size must not be loaded silently."""
    a = _ideal()
    st = a.state()
    st["xi"] = np.zeros((4, 4))
    with pytest.raises(ValueError, match="'xi'.*\\(4, 4\\)"):
        a.load_state(st)


# --- pulse response, hand-computed on the ideal preset (docs/chip_model.md equations) -------------
def _one_pulse(kind: int, v: float, v_wl: float, g0: float, name: str = "ideal", **kw):
    """One pulse on cell (3, 2) of an array set to ``g0`` everywhere; (new G, cell current)."""
    a = RRAMArray(ChipParams.preset(name, **kw), np.random.default_rng(3), rows=8, cols=6)
    a.set_conductance(np.full(a.shape, g0), 0.0)
    v_bl, v_sl = (v, 0.0) if kind > 0 else (0.0, v)
    i = a.pulse([kind], [3], [2], [v_bl], [v_wl], [v_sl], [1e-6], [1e-6], np.random.default_rng(0))
    return a.g_prog[3, 2], i[0]


def test_reset_step_in_closed_form_and_saturating_in_wl_voltage():
    """Kills rram._pulse_unique mutants _112 (RESET gain divided by the conductance shape
    factor instead of multiplied) and _97 (the word-line factor of RESET saturating at 2
    instead of 1).  Ideal cell at 100 uS, RESET at 2.0 V for 1 us:
    drive = 2.0 - 1.30 = 0.70 V, shape = (100 + 20) / (150 + 20) uS, word-line factor
    min((V_WL - 0.5) / (1.5 - 0.5), 1) = 1 at V_WL = 1.5 V and at 3.0 V, so
    dG = -22 uS/V * 1 * (120/170) * 0.70 V = -10.8706 uS, the same at both word-line voltages."""
    want = 100 * US - 22 * US * (120 / 170) * 0.70
    for v_wl in (1.5, 3.0):
        g, _ = _one_pulse(-1, 2.0, v_wl, 100 * US)
        assert g == pytest.approx(want, rel=1e-12), v_wl
    g, _ = _one_pulse(-1, 2.0, 1.0, 100 * US)               # V_WL 1.0 V: half the RESET step
    assert g == pytest.approx(100 * US - 0.5 * 22 * US * (120 / 170) * 0.70, rel=1e-12)


def test_reset_never_goes_below_the_floor():
    """Kills rram._pulse_unique mutant _157 (no lower clip of the new conductance).  Ideal
    cell at 5 uS, RESET at 4.0 V: dG = -22 uS/V * 2.7 V * (25/170) = -8.74 uS would take it
    to -3.7 uS; the floor is 0 on the ideal preset and g_min = 0.3 uS on a noisy one."""
    g, _ = _one_pulse(-1, 4.0, 3.0, 5 * US)
    assert g == 0.0
    g, _ = _one_pulse(-1, 4.0, 3.0, 5 * US, name="ideal", c2c_add_sigma_s=1e-9)   # noisy set
    assert g == pytest.approx(ChipParams().g_min_s, rel=1e-12)


def test_set_current_is_limited_by_the_access_transistor():
    """Kills rram._pulse_unique mutant _189 (SET current never limited).  SET at 3.0 V on a
    100 uS cell with V_WL = 0.9 V: compliance G_c = 250 uS/V * (0.9 - 0.5) V = 100 uS, and the
    access transistor passes at most G_c * 0.5 V + 1 nA = 50.001 uA (the model's saturation
    current), below the cell's own 3.0 V * 100 uS = 300 uA.  RESET is not limited: 3.0 V * 100 uS."""
    _, i_set = _one_pulse(1, 3.0, 0.9, 100 * US)
    assert i_set == pytest.approx(100 * US * 0.5 + 1e-9, rel=1e-12)
    _, i_reset = _one_pulse(-1, 3.0, 0.9, 100 * US)
    assert i_reset == pytest.approx(3.0 * 100 * US, rel=1e-12)


# --- conductance over time ------------------------------------------------------------------
def _aged(name="ideal", **kw) -> RRAMArray:
    a = RRAMArray(ChipParams.preset(name, **kw), np.random.default_rng(3), rows=4, cols=4)
    st = a.state()
    st["g_prog"] = np.full(a.shape, 150 * US)
    st["t_prog"] = np.full(a.shape, 5.0)         # programmed at chip time 5 s
    st["xi"] = np.full(a.shape, 2.0)
    st["xi"][0, 0] = 30.0
    a.load_state(st)
    return a


def test_relaxation_and_drift_count_from_the_programming_time():
    """Kills rram.conductance mutants _20 (age = now + t_prog) and _34 (no upper clip at
    g_cell_max).  G(t) = clip(g (1 + m ln(1 + age/1 s)) + sigma(age) xi, g_min, 200 uS) with
    age = t - t_prog.  Programmed at 5 s, read at 6 s: age 1 s, sigma(1 s) = 1.8 uS exactly:
    150 + 1.8 * 2 = 153.6 uS; drift m = -0.01 alone: 150 (1 - 0.01 ln 2) uS; xi = 30 would be
    204 uS and is clipped to 200 uS."""
    a = _aged(relax_sigma_1s_s=1.8e-6)
    g = a.conductance(6.0)
    assert g[1, 1] == pytest.approx(153.6 * US, rel=1e-12)
    assert g[0, 0] == pytest.approx(200 * US, rel=1e-12)
    assert a.conductance(5.0)[1, 1] == pytest.approx(150 * US, rel=1e-12)     # age 0
    b = _aged(drift_mean_rel_per_ln=-0.01)
    assert b.conductance(6.0)[1, 1] == pytest.approx(150 * US * (1 - 0.01 * np.log(2.0)), rel=1e-12)


# --- device-to-device maps ------------------------------------------------------------------
def test_fresh_cells_start_at_their_own_low_conductance():
    """Kills rram.__init__ mutant _20 (one draw for the whole array: every fresh cell at the
    same conductance).  A formed, reset cell starts between g_min and g_min + 2 uS, drawn per
    cell (noisy presets)."""
    a = RRAMArray(ChipParams.preset("typical", stuck_on_frac=0.0, stuck_off_frac=0.0),
                  np.random.default_rng(4), rows=16, cols=8)
    g = a.g_prog
    assert g.min() >= 0.3 * US and g.max() < 2.3 * US
    assert np.unique(g).size == g.size                     # one value per cell
    assert g.max() - g.min() > 1.5 * US                    # spread over the 2 uS window


def test_stuck_and_worn_cells_take_their_own_conductance_in_the_documented_windows():
    """Kills rram._g_on mutant _4 (stuck-on window lo + (hi + lo) u: up to 520 uS) and
    rram.__init__ mutant _89 (one draw for all worn-out cells).  Stuck-on cells sit in
    [160, 200] uS, stuck-off ones in [g_min, 0.9 * 4 uS]; each cell draws its own value."""
    p = ChipParams.preset("typical", stuck_on_frac=0.5, stuck_off_frac=0.5,
                          endurance_median_pulses=1.0, endurance_sigma_ln=0.0)
    a = RRAMArray(p, np.random.default_rng(6), rows=16, cols=8)
    on = a.g_fab_stuck[a.fab_stuck_on]
    assert on.size > 30 and on.min() >= 160 * US and on.max() <= 200 * US
    assert on.max() - on.min() > 20 * US
    off = a.g_fab_stuck[a.fab_stuck_off]
    assert off.min() >= 0.3 * US and off.max() <= 3.6 * US
    worn_on, worn_off = a.g_worn[a.wear_stuck_on], a.g_worn[~a.wear_stuck_on]
    assert worn_on.min() >= 160 * US and worn_on.max() <= 200 * US
    assert worn_off.min() >= 0.3 * US and worn_off.max() <= 3.6 * US
    assert np.unique(worn_on).size == worn_on.size and np.unique(worn_off).size == worn_off.size
