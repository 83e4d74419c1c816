"""Mutation-driven tests of bench.programming (issue 18).

Expected values: hand-worked figures on hand-built results (summarise, ReadStats), the
CellFlag bits of the protocol spec (SUCCESS 0x01, STUCK 0x02, CONFIRM_FAILED 0x04), counts
taken by a second, independent counter around the chip, and the documented defaults of
program_cells.  Each test names what it protects.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sim_backend  # noqa: F401  (registers pesim://)
from bench import programming as P
from drivers.pechip import PEChip
from firmware_iface.spec import Capability

TOL = 5e-6


def _chip(seed=1, fidelity="typical") -> PEChip:
    return PEChip(f"pesim://?seed={seed}&run_seed=0&fidelity={fidelity}")


def _result(**kw) -> P.ProgramResult:
    n = 5
    base = dict(rows=np.arange(n), cols=np.array([0, 1, 2, 3, 4]),
                targets_s=np.array([10e-6, 20e-6, 30e-6, 40e-6, 50e-6]),
                g_s=np.array([10.5e-6, 26e-6, 30e-6, 40e-6, np.nan]),
                pulses=np.array([3, 5, 7, 9, 100]),
                success=np.array([True, False, True, False, False]),
                stuck=np.array([False, False, False, True, False]),
                confirm_failed=np.array([False, False, True, False, False]),
                done=np.array([True, True, True, True, False]))
    base.update(kw)
    return P.ProgramResult(**base)


# --- figures ----------------------------------------------------------------------------------
def test_summary_figures_of_a_hand_built_result():
    """Protects summarise: every figure worked by hand for 5 cells (4 done, one stuck, one
    failed, one confirm-failed; tolerance 2 uS): within 2 of 3 healthy done cells, pulses
    median 6 / p95 8.7 (linear) / total 24 of the done cells, RMS error over healthy cells
    sqrt((0.5^2 + 6^2 + 0^2) / 3) uS."""
    s = P.summarise(_result(), 2e-6)
    assert s == pytest.approx({
        "cells": 4, "cells_total": 5, "within_tolerance": 2 / 3, "success": 2, "stuck_cells": 1,
        "failed_cells": 1, "confirm_failed_cells": 1, "pulses_median": 6.0, "pulses_p95": 8.7,
        "pulses_total": 24, "rms_error_us": np.sqrt((0.25 + 36.0) / 3), "tolerance_us": 2.0}, rel=1e-12)


def test_summary_uses_the_read_back_map_when_given():
    """Protects summarise: with a read-back map, the final conductance of cell (r, c) is
    readback[r, c], not the last verify read."""
    rb = np.zeros((5, 5))
    rb[np.arange(5), [0, 1, 2, 3, 4]] = [13e-6, 20e-6, 30e-6, 40e-6, 0.0]   # cell 0 now 3 uS off
    s = P.summarise(_result(), 2e-6, rb)
    assert s["within_tolerance"] == pytest.approx(1 / 3)
    assert s["rms_error_us"] == pytest.approx(np.sqrt(9.0 / 3))


def test_summary_of_a_result_without_healthy_cells():
    """Protects summarise's empty cases: no healthy done cell -> within 0, RMS 0 (not NaN);
    nothing done -> pulse figures 0."""
    s = P.summarise(_result(stuck=np.ones(5, bool)), 2e-6)
    assert s["within_tolerance"] == 0.0 and s["rms_error_us"] == 0.0
    s = P.summarise(_result(done=np.zeros(5, bool)), 2e-6)
    assert (s["cells"], s["pulses_median"], s["pulses_p95"], s["pulses_total"]) == (0, 0.0, 0.0, 0)


def test_records_and_fill_round_trip_with_the_spec_flags():
    """Protects ProgramResult.records / flags / fill: CELL_DTYPE rows with the spec's flag bits
    (SUCCESS 1, STUCK 2, CONFIRM_FAILED 4); fill() of those rows into a fresh result restores
    g, pulses, the three flags and done for exactly those cells."""
    res = _result()
    rec = res.records(np.array([0, 2, 3]))
    assert rec.dtype == P.CELL_DTYPE
    assert rec["index"].tolist() == [0, 2, 3] and rec["row"].tolist() == [0, 2, 3]
    assert rec["col"].tolist() == [0, 2, 3] and rec["pulses"].tolist() == [3, 7, 9]
    assert rec["flags"].tolist() == [0x01, 0x01 | 0x04, 0x02]
    np.testing.assert_array_equal(rec["target_s"], [10e-6, 30e-6, 40e-6])
    assert len(res.records()) == 5
    fresh = _result(g_s=np.full(5, np.nan), pulses=np.zeros(5, int), success=np.zeros(5, bool),
                    stuck=np.zeros(5, bool), confirm_failed=np.zeros(5, bool), done=np.zeros(5, bool))
    fresh.fill(rec)
    assert fresh.done.tolist() == [True, False, True, True, False]
    assert fresh.success.tolist() == [True, False, True, False, False]
    assert fresh.stuck.tolist() == [False, False, False, True, False]
    assert fresh.confirm_failed.tolist() == [False, False, True, False, False]
    assert fresh.pulses.tolist() == [3, 0, 7, 9, 0]
    np.testing.assert_array_equal(fresh.g_s[[0, 2, 3]], [10.5e-6, 30e-6, 40e-6])


def test_read_stats_summary_by_hand():
    """Protects ReadStats.summary (2 repeats of a 2x2 map, hand-worked): per-cell std with
    ddof 1 (cell 0: 2 uS / sqrt 2), std_us = RMS of those, map_std_us = population std of
    the mean map, min / max, median relative noise over cells above 5 uS."""
    maps = np.array([[[10e-6, 2e-6], [20e-6, 0.0]], [[12e-6, 2e-6], [20e-6, 0.0]]])
    s = P.ReadStats(maps).summary()
    assert s == pytest.approx({
        "cells": 4, "repeats": 2, "mean_us": 33 / 4, "std_us": np.sqrt(0.5),
        "map_std_us": np.sqrt(252.75 / 4), "min_us": 0.0, "max_us": 20.0,
        "read_noise_rel_median": (np.sqrt(2) / 11) / 2}, rel=1e-9)


# --- inputs -----------------------------------------------------------------------------------
def test_target_zero_and_the_array_edges_are_valid_addresses():
    """Protects _validate_targets: 0 S is a valid target (level 0) and rows/columns 0 and the
    last are inside the array; one past the last is refused before anything is sent."""
    with _chip(3) as chip:
        info = chip.info()
        res = P.program_cells(chip, [0, info.rows - 1], [0, info.columns - 1], [0.0, 40e-6], mode="board")
        assert res.done.all() and res.rows.tolist() == [0, info.rows - 1]
        n0 = chip.stats.operations
        with pytest.raises(ValueError, match=r"outside the 128x24 array"):
            P.program_cells(chip, [0], [info.columns], [0.0])
        assert chip.stats.operations == n0


def test_board_mode_on_a_board_without_write_verify_is_refused(monkeypatch):
    """Protects program_cells' capability check: the exact message, nothing sent."""
    with _chip(3) as chip:
        info = chip.info()
        bare = dataclasses.replace(info, capabilities=int(info.capabilities) & ~int(Capability.WRITE_VERIFY))
        monkeypatch.setattr(chip, "info", lambda refresh=False: bare)
        n0 = chip.stats.operations
        with pytest.raises(ValueError, match=r"^this board has no on-board write-verify; use mode='host'$"):
            P.program_cells(chip, [0], [0], [40e-6], mode="board")
        assert chip.stats.operations == n0


# --- programming ----------------------------------------------------------------------------
def test_batches_are_consecutive_and_each_cell_is_programmed_once():
    """Protects program_cells' batch loop: 10 cells in batches of 4 -> [0..3], [4..7], [8, 9],
    every cell done once."""
    seen = []
    with _chip(3) as chip:
        res = P.program_cells(chip, np.arange(10), np.zeros(10, int), np.full(10, 40e-6), batch_cells=4,
                              on_batch=lambda sel, r, tr: seen.append(sel.tolist()))
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert res.done.all()


def test_the_default_probe_is_20_uS_away(monkeypatch):
    """Protects program_cells' default probe_offset_s (20 uS, documented): cells already within
    the window are sent to a probe target 20 uS from their target."""
    asked = []
    real = P.probe_targets

    def spy(t, levels, offset):
        asked.append(offset)
        return real(t, levels, offset)

    monkeypatch.setattr(P, "probe_targets", spy)
    with _chip(3) as chip:
        g = P.read_cell(chip, 0, 0)
        P.program_cells(chip, [0], [0], [g], mode="board")
    assert asked == [20e-6]


def test_probe_targets_go_up_unless_that_leaves_the_level_range():
    """Protects probe_targets: target + offset when that stays <= the top level, else
    target - offset (never below 0 S)."""
    got = P.probe_targets(np.array([10e-6, 95e-6, 5e-6]), [0.0, 50e-6, 100e-6], 20e-6)
    np.testing.assert_allclose(got, [30e-6, 75e-6, 25e-6], rtol=1e-12)
    np.testing.assert_allclose(P.probe_targets(np.array([15e-6]), [0.0, 20e-6], 20e-6), [0.0])


def test_host_reads_are_counted_exactly(monkeypatch):
    """Protects _ReadCounter: host_reads = cells x averages of every READ_CELLS the host issued
    (counted here by a second counter around the chip); board mode without probe issues none."""
    with _chip(3) as chip:
        res = P.program_cells(chip, [0, 1], [0, 0], [40e-6, 60e-6], mode="board", probe=False)
        assert res.host_reads == 0
        n = [0]
        real = chip.read_cells

        def counting(rows, cols, v, avg):
            n[0] += int(np.size(rows)) * int(avg)
            return real(rows, cols, v, avg)

        monkeypatch.setattr(chip, "read_cells", counting)
        res = P.program_cells(chip, [2, 3, 4], [0, 0, 0], [40e-6, 60e-6, 0.0], mode="host")
        assert res.host_reads == n[0] > 3


def test_host_traces_record_reads_and_the_pulses_applied():
    """Protects _host_job's traces: one row per cell read per iteration, iterations numbered
    from 1, cell index = position in the target list, the pulse kind and its voltages (SET
    pulses within the schedule's ramps; no pulse: kind 0, voltages 0)."""
    got = []
    schedule = P.default_schedule(TOL)
    with _chip(2) as chip:
        res = P.program_cells(chip, np.arange(6), np.ones(6, int), np.full(6, 60e-6), schedule, mode="host",
                              traces=True, probe=False, on_batch=lambda sel, r, tr: got.append(tr))
    tr = got[0]
    it = tr["iteration"]
    assert it.min() == 1 and set(np.unique(it)) == set(range(1, it.max() + 1))
    assert set(tr["index"].tolist()) == set(range(6))
    pulsed = tr["kind"] > 0
    assert pulsed.sum() == res.pulses.sum() > 0
    assert np.all(tr["v_wl_v"][pulsed] > 0) and np.all(tr["v_wl_v"][~pulsed] == 0)
    assert np.all(tr["v_bl_v"][pulsed] + tr["v_sl_v"][pulsed] > 0)
    v = np.maximum(tr["v_bl_v"], tr["v_sl_v"])[pulsed]
    assert v.max() <= max(schedule.set_max_v, schedule.reset_max_v) + 1e-6
    # the last read of each cell is its final verify read
    for i in range(6):
        last = tr[tr["index"] == i][-1]
        assert last["g_read_s"] == pytest.approx(res.g_s[i]) or last["kind"] > 0


def test_inactive_stuck_cells_are_read_with_the_schedules_read_voltage(monkeypatch):
    """Protects program_cells: cells found stuck by the probe are read back with the schedule's
    read voltage and averages."""
    calls = []
    with _chip(1) as chip:
        real = chip.read_cells
        monkeypatch.setattr(chip, "read_cells", lambda r, c, v, a: (calls.append((v, a)), real(r, c, v, a))[1])
        stuck = np.argwhere(np.asarray(chip.sim_query("stuck"), dtype=bool))
        g = np.asarray(chip.sim_query("conductances"))
        r, c = stuck[:3, 0], stuck[:3, 1]
        schedule = P.default_schedule(TOL, v_read_v=0.25, read_averages=4)
        res = P.program_cells(chip, r, c, g[r, c], schedule, mode="board")
    assert res.stuck.all() and not res.success.any() and np.isfinite(res.g_s).all()
    assert calls and all(call == (0.25, 4) for call in calls)


def test_recovered_in_flight_cells_include_those_exactly_at_tolerance():
    """Protects recover_inflight: within tolerance means |g - target| <= tolerance (binary
    fractions here so the difference is exact); records carry index, address, g, 0 pulses,
    SUCCESS."""
    tol = 2.0 ** -17
    t = np.array([2.0 ** -14, 2.0 ** -14, 2.0 ** -14])
    rows, cols = np.array([0, 1, 2]), np.array([5, 6, 7])
    rb = np.zeros((3, 8))
    rb[rows, cols] = t + np.array([tol, 2 * tol, -tol])
    out = P.recover_inflight(rb, np.array([0, 1, 2]), rows, cols, t, tol)
    assert out.dtype == P.CELL_DTYPE
    assert out["index"].tolist() == [0, 2] and out["col"].tolist() == [5, 7]
    assert out["pulses"].tolist() == [0, 0] and out["flags"].tolist() == [1, 1]


def test_per_cell_baseline_result_is_complete():
    """Protects program_baseline_per_cell's result: mode "host-per-cell", integer pulse counts,
    bool flags (the result summarises like any other)."""
    schedule = P.default_schedule(TOL)
    with _chip(3) as chip:
        res = P.program_baseline_per_cell(chip, [0, 1], [2, 2], [40e-6, 70e-6], schedule)
    assert res.mode == "host-per-cell" and res.schedule == schedule
    assert np.issubdtype(res.pulses.dtype, np.integer) and res.stuck.dtype == bool
    s = P.summarise(res, TOL)
    assert s["cells"] == 2 and s["pulses_total"] == int(res.pulses.sum()) > 0


def test_per_cell_baseline_checks_the_schedule_first():
    """Protects program_baseline_per_cell: a schedule beyond the station limits is refused
    before anything is sent."""
    from drivers.errors import LimitError

    with _chip(3) as chip:
        bad = P.default_schedule(TOL, set_max_v=chip.limits.v_set_max_v + 1.0)
        chip.info()
        n0 = chip.stats.operations
        with pytest.raises(LimitError):
            P.program_baseline_per_cell(chip, [0], [0], [40e-6], bad)
        assert chip.stats.operations == n0
