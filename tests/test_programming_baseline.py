"""Two implementations of host-driven write-verify agree cell for cell on a deterministic
(ideal) chip: the batched state machine over all cells (program_cells, mode="host") and the
one-cell-at-a-time reference loop (program_baseline_per_cell)."""
from __future__ import annotations

import numpy as np

from bench.programming import default_schedule, program_baseline_per_cell, program_cells
from drivers.pechip import PEChip

URL = "pesim://?seed=7&fidelity=ideal"


def test_per_cell_reference_loop_matches_the_batched_host_job():
    rows = np.array([0, 3, 3, 17, 64, 127])
    cols = np.array([0, 1, 22, 5, 9, 23])
    targets = np.array([10, 150, 40, 0, 80, 120]) * 1e-6
    with PEChip(URL) as chip:
        s = default_schedule(limits=chip.limits)
        base = program_baseline_per_cell(chip, rows, cols, targets, s)
    with PEChip(URL) as chip:
        batched = program_cells(chip, rows, cols, targets, s, mode="host", probe=False)
    assert base.mode == "host-per-cell" and base.done.all()
    assert base.confirm_failed.shape == (6,) and not base.confirm_failed.any()
    np.testing.assert_array_equal(base.pulses, batched.pulses)
    np.testing.assert_array_equal(base.g_s, batched.g_s)
    np.testing.assert_array_equal(base.success, batched.success)
    np.testing.assert_array_equal(base.stuck, batched.stuck)
    assert base.success.all() and (base.pulses[targets > 0] > 0).all() and base.pulses[3] == 0
    # one read (x averages) per verify step of each cell, one at a time
    assert base.host_reads == batched.host_reads == int((base.pulses + 2).sum()) * s.read_averages
    assert base.link.round_trips > batched.link.round_trips
