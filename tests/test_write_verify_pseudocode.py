"""The normative write-verify pseudo-code (docs/protocol.md [write-verify]) implemented a second
time, cell by cell with plain Python integers, straight from the text; it must agree with the
vectorised ``WriteVerifyJob`` both modes run, on a simple deterministic cell model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_iface.spec_text import WRITE_VERIFY
from firmware_iface.write_verify import PulseSchedule, WriteVerifyJob

STUCK_WINDOW_NS, STUCK_PULSES = 1000, 12


def nS(x: float) -> int:
    return int(math.floor(float(x) * 1e9 + 0.5))


class ToyCell:
    """A cell whose conductance moves by gain x (V - threshold) per pulse; optionally stuck."""

    def __init__(self, g0: float, gain: float, stuck: bool = False, ceiling: float = 150e-6) -> None:
        self.g, self.gain, self.stuck, self.ceiling = g0, gain, stuck, ceiling

    def read(self) -> float:
        return float(np.float32(self.g))

    def pulse(self, kind: int, v: float) -> None:
        if self.stuck:
            return
        dv = max(v - 1.0, 0.0) * self.gain
        self.g = min(self.ceiling, max(0.0, self.g + (dv if kind == 1 else -dv)))


def reference(cell: ToyCell, target_ns: int, s: PulseSchedule) -> tuple[int, int, float]:
    """One cell, per the pseudo-code: (pulses, flags, g_s)."""
    mv = lambda v: int(round(v * 1e3))  # noqa: E731  (the wire's mV)
    tol = nS(s.tolerance_s)
    pulses, d_prev, v_mv, at_max, g_at_max, gmin, gmax, pending = 0, 0, 0, 0, 0, 0, 0, False
    confirm_failed = False
    while True:
        report_g = cell.read()
        g_ns = nS(report_g)
        err = g_ns - target_ns
        inside = abs(err) <= tol
        if pulses == 0:
            gmin = gmax = g_ns
        else:
            gmin, gmax = min(gmin, g_ns), max(gmax, g_ns)
        if inside and (pending or not s.confirm_read):
            return pulses, 1 | (4 if confirm_failed else 0), report_g
        if pending and not inside:
            confirm_failed = True
        pending = inside
        if inside:
            continue
        exhausted = pulses >= s.max_pulses
        stuck_at_max = at_max >= STUCK_PULSES and abs(g_ns - g_at_max) <= STUCK_WINDOW_NS
        if exhausted or stuck_at_max:
            stuck = stuck_at_max or (gmax - gmin <= STUCK_WINDOW_NS)
            return pulses, (2 if stuck else 0) | (4 if confirm_failed else 0), report_g
        d = 1 if err < 0 else -1
        start, step, top = ((mv(s.set_start_v), mv(s.set_step_v), mv(s.set_max_v)) if d == 1 else
                            (mv(s.reset_start_v), mv(s.reset_step_v), mv(s.reset_max_v)))
        v_mv = min(v_mv + step, top) if d == d_prev else start
        if v_mv >= top:
            if not (d == d_prev and at_max > 0):
                g_at_max = g_ns
            at_max += 1
        else:
            at_max = 0
        d_prev = d
        pulses += 1
        cell.pulse(1 if d == 1 else 2, v_mv / 1000)


def vectorised(cells: list[ToyCell], targets_ns: np.ndarray, s: PulseSchedule):
    job = WriteVerifyJob.from_nano_siemens(targets_ns, s)
    while not job.finished:
        idx = job.to_read()
        batch = job.step(idx, np.array([cells[i].read() for i in idx]))
        for i, k, vb, vs in zip(batch.index, batch.kind, batch.v_bl_v, batch.v_sl_v):
            cells[i].pulse(int(k), vb if k == 1 else vs)
    return job.pulses, job.flags(), job.g


def test_the_pseudo_code_is_rendered_in_the_spec():
    for phrase in ("floor(x * 1e9 + 0.5)", "|err| <= s.tolerance_ns", "STUCK_PULSES = 12", "v_mv = min(v_mv + step, max)"):
        assert phrase in WRITE_VERIFY


@pytest.mark.parametrize("confirm", [True, False])
def test_pseudo_code_and_job_agree_cell_by_cell(confirm):
    rng = np.random.default_rng(4)
    s = PulseSchedule(tolerance_s=2.5e-6, max_pulses=40, confirm_read=confirm)
    n = 300
    g0 = rng.uniform(0, 120e-6, n)
    gain = rng.uniform(0.5e-6, 12e-6, n)
    stuck = rng.random(n) < 0.05
    targets = rng.uniform(5e-6, 140e-6, n)
    t_ns = np.array([nS(t) for t in targets])
    t_ns[:20] = [nS(float(np.float32(g))) + (2500 if i % 2 else -2500) for i, g in enumerate(g0[:20])]  # edges
    ref = [reference(ToyCell(g0[i], gain[i], stuck[i]), int(t_ns[i]), s) for i in range(n)]
    pulses, flags, g = vectorised([ToyCell(g0[i], gain[i], stuck[i]) for i in range(n)], t_ns, s)
    assert [r[0] for r in ref] == pulses.tolist()
    assert [r[1] for r in ref] == flags.tolist()
    assert [r[2] for r in ref] == g.tolist()
    assert (flags & 1).sum() > n // 2 and (flags & 2).sum() >= stuck.sum() and pulses.max() > 5
    assert all(pulses[:20] == 0)  # exactly on an edge: inside, no pulse
