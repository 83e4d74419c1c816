"""Write-verify schedule and state machine (firmware_iface/write_verify.py), issue 18.

Expected values come from docs/protocol.md: the SCHEDULE record table (packed little-endian,
mV / ns / uV / nS integers, flags bit 0 = CONFIRM_READ), the [op.write_verify] preconditions
(every field > 0, start <= max) and the normative algorithm in section "Write-verify" (verify
window inclusive, ramp by step up to max, restart at start on a change of direction,
STUCK_PULSES = 12 at the maximum voltage without moving by more than STUCK_WINDOW_NS = 1000 nS);
the sequences below are worked out by hand from that text.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_iface.write_verify import PulseSchedule, WriteVerifyJob

SCHEDULE = "<HHHHHHHHIIIHHHH"    # SCHEDULE (36 bytes)


def test_schedule_record_size():
    assert struct.calcsize(SCHEDULE) == 36


def test_to_bytes_is_the_documented_record():
    """kills PulseSchedule.to_bytes mutants (a field dropped or set to 0, flags wrong): every
    field in its unit, _pad zero; confirm_read False -> flags 0."""
    s = PulseSchedule(set_start_v=1.1, set_step_v=0.05, set_max_v=3.5, set_wl_v=1.7, reset_start_v=1.3,
                      reset_step_v=0.07, reset_max_v=3.9, reset_wl_v=3.2, width_s=2e-6, v_read_v=0.15,
                      tolerance_s=3e-6, max_pulses=321, read_averages=6, confirm_read=False)
    assert s.to_bytes() == struct.pack(SCHEDULE, 1100, 50, 3500, 1700, 1300, 70, 3900, 3200, 2000, 150_000,
                                       3000, 321, 6, 0, 0)
    s2 = PulseSchedule(confirm_read=True)
    assert struct.unpack(SCHEDULE, s2.to_bytes())[13] == 1


def test_from_bytes_reads_every_field_in_si_units():
    """kills PulseSchedule.from_bytes mutants (mV scale, a field left at its default, flags)."""
    raw = b"\xEE" * 3 + struct.pack(SCHEDULE, 1100, 50, 3500, 1700, 1300, 70, 3900, 3200, 2000, 150_000,
                                     3000, 321, 6, 1, 0)
    s, off = PulseSchedule.from_bytes(raw, 3)
    assert off == 39
    assert s == PulseSchedule(set_start_v=1.1, set_step_v=0.05, set_max_v=3.5, set_wl_v=1.7,
                              reset_start_v=1.3, reset_step_v=0.07, reset_max_v=3.9, reset_wl_v=3.2,
                              width_s=2e-6, v_read_v=0.15, tolerance_s=3e-6, max_pulses=321,
                              read_averages=6, confirm_read=True)
    s0, _ = PulseSchedule.from_bytes(struct.pack(SCHEDULE, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0))
    assert s0.confirm_read is False and s0.set_max_v == 0.001


def test_quantised_rounds_to_the_wire_units():
    """kills PulseSchedule.quantised mutants: the schedule after mV / ns / uV rounding."""
    q = PulseSchedule(set_step_v=0.10004, width_s=1.0000004e-6, v_read_v=0.2000004).quantised()
    assert isinstance(q, PulseSchedule)
    assert (q.set_step_v, q.width_s, q.v_read_v) == (0.1, 1e-6, 0.2)


@pytest.mark.parametrize("field", ["set_step_v", "reset_wl_v", "width_s", "tolerance_s", "read_averages"])
def test_a_zero_field_is_refused(field):
    """kills PulseSchedule.__post_init__ mutant `v <= 0` -> `v < 0` ([op.write_verify]: every
    mV/ns/uV/nS field > 0)."""
    with pytest.raises(ValueError, match=f"PulseSchedule.{field} must be finite and > 0"):
        PulseSchedule(**{field: 0})


def test_start_above_max_is_refused_for_set_and_reset():
    """kills PulseSchedule.__post_init__ mutants on the start <= max check (both pairs)."""
    with pytest.raises(ValueError, match="reset_start_v = 2.5 V > reset_max_v = 2 V"):
        PulseSchedule(reset_start_v=2.5, reset_max_v=2.0)
    with pytest.raises(ValueError, match="set_start_v = 2.5 V > set_max_v = 2 V"):
        PulseSchedule(set_start_v=2.5, set_max_v=2.0)
    PulseSchedule(set_start_v=2.0, set_max_v=2.0, reset_start_v=2.0, reset_max_v=2.0)


def test_u16_counts_fit_the_record():
    """kills PulseSchedule.__post_init__ mutants on the 16-bit limit: SCHEDULE.max_pulses and
    read_averages are uint16_t, so 65535 passes and 65536 is refused."""
    PulseSchedule(max_pulses=0xFFFF, read_averages=0xFFFF)
    for kw in ({"max_pulses": 0x10000}, {"read_averages": 0x10000}):
        with pytest.raises(ValueError, match="must fit 16 bits"):
            PulseSchedule(**kw)


def test_job_keeps_targets_in_siemens_and_its_schedule():
    """kills WriteVerifyJob._init mutants (targets = nS / 1e9, schedule kept)."""
    s = PulseSchedule()
    job = WriteVerifyJob(np.array([1e-6, 37.5e-6]), s)
    assert job.targets_ns.tolist() == [1000, 37500] and job.targets_ns.dtype == np.int64
    assert job.targets.tolist() == [1000 / 1e9, 37500 / 1e9]
    assert job.s is s
    j2 = WriteVerifyJob.from_nano_siemens(np.array([1000, 37500], dtype=np.uint32), s)
    assert j2.targets_ns.dtype == np.int64 and j2.targets.tolist() == [1e-6, 37.5e-6]


def test_ramp_restart_and_inclusive_window():
    """kills WriteVerifyJob.step mutants on the ramp (+ step, capped), the restart on a change of
    direction, the pulse fields and the inclusive window.  Defaults: SET 1.2 V + 0.1 V steps at
    word line 1.8 V, RESET from 1.2 V at word line 3.3 V, 1 us; target 50 uS, window 2.5 uS."""
    job = WriteVerifyJob(np.array([50e-6]), PulseSchedule(confirm_read=False))
    volts = []
    for _ in range(3):                                       # too low: SET 1.2, 1.3, 1.4 V
        b = job.step(np.array([0]), np.array([10e-6]))
        assert b.index.tolist() == [0] and b.kind.tolist() == [1]
        assert b.v_wl_v.tolist() == [1.8] and b.v_sl_v.tolist() == [0.0] and b.width_s.tolist() == [1e-6]
        volts.append(b.v_bl_v[0])
    assert volts == [1.2, 1.3, 1.4]
    b = job.step(np.array([0]), np.array([60e-6]))           # too high: RESET restarts at 1.2 V
    assert b.kind.tolist() == [2] and b.v_sl_v.tolist() == [1.2] and b.v_bl_v.tolist() == [0.0]
    assert b.v_wl_v.tolist() == [3.3]
    b = job.step(np.array([0]), np.array([60e-6]))
    assert b.v_sl_v.tolist() == [1.3]
    b = job.step(np.array([0]), np.array([52.5e-6]))         # err = +2500 nS = tolerance: inside
    assert len(b) == 0 and job.finished
    assert job.success.tolist() == [True] and job.pulses.tolist() == [5]
    assert job.flags().tolist() == [1]


def test_confirm_read_needs_a_second_read_inside():
    """kills WriteVerifyJob.step mutants on the confirm read: with CONFIRM_READ the first read
    inside the window only arms the confirm; a confirm read outside flags CONFIRM_FAILED and the
    cell is pulsed again; then two reads inside finish it (flags SUCCESS | CONFIRM_FAILED = 5)."""
    job = WriteVerifyJob(np.array([50e-6]), PulseSchedule(confirm_read=True))
    assert len(job.step(np.array([0]), np.array([50e-6]))) == 0 and not job.finished
    b = job.step(np.array([0]), np.array([40e-6]))
    assert b.kind.tolist() == [1] and job.confirm_failed.tolist() == [True]
    job.step(np.array([0]), np.array([50e-6]))
    job.step(np.array([0]), np.array([50e-6]))
    assert job.finished and job.success.tolist() == [True] and job.flags().tolist() == [5]


def test_a_cell_that_does_not_move_at_the_maximum_stops_after_12_pulses():
    """kills WriteVerifyJob.step mutants on the stuck-at-max rule: start = max = 1.5 V, every
    read 10 uS below a 50 uS target: pulses 1..12 all at the maximum; the 13th read finds 12
    pulses at max without a move of more than 1000 nS -> done, STUCK, not SUCCESS (flags 2)."""
    job = WriteVerifyJob(np.array([50e-6]), PulseSchedule(set_start_v=1.5, set_max_v=1.5, confirm_read=False))
    for k in range(12):
        b = job.step(np.array([0]), np.array([10e-6]))
        assert b.v_bl_v.tolist() == [1.5], k
    b = job.step(np.array([0]), np.array([10e-6]))
    assert len(b) == 0 and job.finished
    assert job.pulses.tolist() == [12] and job.stuck.tolist() == [True] and job.success.tolist() == [False]
    assert job.flags().tolist() == [2]


def test_a_cell_that_moves_at_the_maximum_is_not_stuck():
    """kills WriteVerifyJob.step mutants that lose the 'moved at max' reset: a cell creeping up
    by 2000 nS a read at the maximum voltage keeps being pulsed past 12 pulses."""
    job = WriteVerifyJob(np.array([200e-6]), PulseSchedule(set_start_v=1.5, set_max_v=1.5, confirm_read=False))
    for k in range(20):
        job.step(np.array([0]), np.array([10e-6 + 2e-6 * k]))
    assert not job.finished and job.pulses.tolist() == [20] and job.stuck.tolist() == [False]


def test_max_pulses_ends_a_cell_as_failed():
    """kills WriteVerifyJob.step mutants on the max_pulses stop: 3 pulses, then the cell is done,
    not SUCCESS; it moved (10 -> 14 uS, > 1000 nS), so not STUCK either (flags 0)."""
    job = WriteVerifyJob(np.array([50e-6]), PulseSchedule(max_pulses=3, confirm_read=False))
    for g in (10e-6, 12e-6, 14e-6):
        assert len(job.step(np.array([0]), np.array([g]))) == 1
    assert len(job.step(np.array([0]), np.array([16e-6]))) == 0
    assert job.finished and job.pulses.tolist() == [3] and job.flags().tolist() == [0]
