"""Write-verify's confirm read: a cell is done only after a second read inside the window, and
a confirm read that lands outside is reported (flag CONFIRM_FAILED) end to end.

Expected values are hand-derived from the state machine as documented in
firmware_iface/write_verify.py and docs/protocol.md (NeuRRAM's incremental-step scheme), and,
end to end, from a second, loop-based reading of the host trace.
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.programming import default_schedule, program_cells, summarise
from drivers.pechip import PEChip
from firmware_iface.spec import CellFlag, PulseKind
from firmware_iface.write_verify import PulseSchedule, WriteVerifyJob

US = 1e-6


def test_confirm_read_is_required_and_its_failure_is_flagged():
    """Protects the confirm read of write-verify (skipping it survived the old suite)."""
    s = PulseSchedule(tolerance_s=2.5 * US, confirm_read=True)
    job = WriteVerifyJob(np.full(3, 10 * US), s)

    # iteration 1: cells 0, 1 inside the window -> await confirmation; cell 2 too low -> SET 1.2 V
    b = job.step(np.arange(3), np.array([10.5, 11.0, 4.0]) * US)
    assert b.index.tolist() == [2]
    assert b.kind.tolist() == [PulseKind.SET]
    assert b.v_bl_v.tolist() == [1.2] and b.v_wl_v.tolist() == [1.8] and b.v_sl_v.tolist() == [0.0]
    assert not job.done.any()
    assert job.to_read().tolist() == [0, 1, 2]            # the confirm reads are asked for

    # iteration 2: cell 0 confirmed; cell 1's confirm read is 10 uS high -> flagged, RESET 1.2 V;
    # cell 2 still low -> SET one step up (1.3 V)
    b = job.step(np.arange(3), np.array([9.0, 20.0, 5.0]) * US)
    assert job.done.tolist() == [True, False, False]
    assert job.success.tolist() == [True, False, False]
    assert job.confirm_failed.tolist() == [False, True, False]
    assert b.index.tolist() == [1, 2]
    assert b.kind.tolist() == [PulseKind.RESET, PulseKind.SET]
    assert b.v_sl_v.tolist() == [1.2, 0.0] and b.v_bl_v.tolist() == [0.0, 1.3]
    assert b.v_wl_v.tolist() == [3.3, 1.8]

    # iterations 3 and 4: both inside twice -> done; the earlier failure stays reported
    job.step(np.array([1, 2]), np.array([10.0, 10.0]) * US)
    assert not job.done[1:].any()
    job.step(np.array([1, 2]), np.array([10.2, 9.9]) * US)
    assert job.finished and job.success.all()
    assert job.flags().tolist() == [CellFlag.SUCCESS, CellFlag.SUCCESS | CellFlag.CONFIRM_FAILED,
                                    CellFlag.SUCCESS]


def test_without_confirm_read_one_read_inside_finishes_a_cell():
    job = WriteVerifyJob(np.full(2, 10 * US), PulseSchedule(tolerance_s=2.5 * US, confirm_read=False))
    b = job.step(np.arange(2), np.array([12.4, 12.6]) * US)   # 2.4 uS inside, 2.6 uS outside
    assert job.done.tolist() == [True, False] and job.success.tolist() == [True, False]
    assert b.index.tolist() == [1] and b.kind.tolist() == [PulseKind.RESET]
    assert not job.confirm_failed.any()


def _confirm_failures_from_trace(trace: np.ndarray, targets: np.ndarray, tol: float) -> np.ndarray:
    """A second reading of the rule, cell by cell: a read inside the window after a read that
    was not a pending confirmation starts a confirmation; the next read decides it."""
    failed = np.zeros(targets.size, bool)
    for i in range(targets.size):
        reads = trace["g_read_s"][trace["index"] == i]      # in iteration order
        pending = False
        for g in reads:
            inside = abs(g - targets[i]) <= tol
            if pending:
                if not inside:
                    failed[i] = True
                pending = False
            else:
                pending = inside
    return failed


@pytest.fixture(scope="module")
def noisy_programming():
    """Host-driven write-verify with 1 µS tolerance and single reads on a typical chip: read
    noise makes many confirm reads land outside the window."""
    with PEChip("pesim://?seed=3&fidelity=typical") as chip:
        rows, cols = np.repeat(np.arange(8), 24), np.tile(np.arange(24), 8)
        targets = np.full(rows.size, 40 * US)
        s = default_schedule(tolerance_s=1 * US, limits=chip.limits, read_averages=1)
        traces = []
        res = program_cells(chip, rows, cols, targets, s, mode="host", probe=False,
                            on_batch=lambda sel, r, tr: traces.append(tr), traces=True)
        board = chip.write_verify(rows, cols, targets, s)
    return res, np.concatenate(traces), s, board


def test_host_mode_reports_every_confirm_failure(noisy_programming):
    res, trace, s, _ = noisy_programming
    want = _confirm_failures_from_trace(trace, res.targets_s, s.tolerance_s)
    assert want.sum() > 10
    assert np.array_equal(res.confirm_failed, want)
    flagged = (res.records()["flags"] & CellFlag.CONFIRM_FAILED) > 0
    assert np.array_equal(flagged, want)
    assert summarise(res, s.tolerance_s)["confirm_failed_cells"] == int(want.sum())


def test_board_mode_reports_confirm_failures_over_the_wire(noisy_programming):
    """The board's CONFIRM_FAILED flag reaches the driver's result (bit 0x04 of the cell flags)."""
    _, _, _, board = noisy_programming
    assert board.confirm_failed.sum() > 10
    assert board.success[board.confirm_failed].mean() > 0.5   # failed once, then verified


def _result(pulses, done):
    from bench.programming import ProgramResult

    n = len(pulses)
    return ProgramResult(rows=np.zeros(n, np.int64), cols=np.arange(n), targets_s=np.full(n, 10 * US),
                         g_s=np.full(n, 10 * US), pulses=np.asarray(pulses, np.int64),
                         success=np.ones(n, bool), stuck=np.zeros(n, bool),
                         confirm_failed=np.zeros(n, bool), done=np.asarray(done, bool))


def test_summary_pulse_statistics_by_hand():
    """Pulses 1..20 on done cells: median 10.5, 95th percentile 19.05 (linear interpolation
    between the 19th and 20th values at rank 0.95 x 19 = 18.05), total 210."""
    res = _result(list(range(1, 21)) + [99], [True] * 20 + [False])
    d = summarise(res, 2.5 * US)
    assert (d["cells"], d["cells_total"]) == (20, 21)
    assert d["pulses_median"] == 10.5
    assert d["pulses_p95"] == pytest.approx(19.05)
    assert d["pulses_total"] == 210


def test_summary_of_nothing_done_is_zeros():
    d = summarise(_result([3, 4], [False, False]), 2.5 * US)
    assert (d["cells"], d["pulses_median"], d["pulses_p95"], d["pulses_total"]) == (0, 0.0, 0.0, 0)
    assert d["within_tolerance"] == 0.0 and d["rms_error_us"] == 0.0
