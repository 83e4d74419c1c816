"""Power-procedure details the mutation run found unchecked (issue 18): the instrument-range
text, arming on the hardware trigger lines, the "armed" event, the run file's per-chunk
records and the trace-point count.  Expected values come from the docstrings (the text, the
event) or are counted in the run file the procedure wrote (the points the SMUs delivered)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from bench.power import PowerOptions, acquire, describe_range_us, measure_power
from drivers.instruments import Trace, open_smus, safety
from drivers.pechip import PEChip
from sim_backend.physics.energy import reference_workload
from tests.test_power import Bench


def test_describe_range_us_names_50_then_60_hz():
    """The docstring's own example: (lo, hi) at 50 Hz, then at 60 Hz."""
    spans = [(200e-6, 0.2), (166.667e-6, 0.166667)]
    assert describe_range_us(spans) == "200..200000 us at 50 Hz, 166.667..166667 us at 60 Hz"


class _ArmRecorder:
    """Just enough of an SMU for :func:`acquire`: records how it was armed."""

    def __init__(self, rail: str) -> None:
        self.rail, self.armed = rail, []

    def arm_trace(self, n_points: int, interval: float, trigger_line: int | None = None) -> None:
        self.armed.append((n_points, interval, trigger_line))

    def fetch_trace(self, timeout_s: float) -> Trace:
        n, interval, _ = self.armed[-1]
        return Trace(np.full(n, 1e-3), np.arange(n) * interval, 1.0, interval, interval)


def test_acquire_arms_each_smu_on_its_trigger_line_and_reports_armed():
    smus = [_ArmRecorder("VDDA"), _ArmRecorder("VDDD")]
    events, stored = [], []
    traces, result = acquire(smus, 5, 1e-3, lambda: "ran", 2.0, on_event=lambda *e: events.append(e),
                             store=lambda s, tr: stored.append(s.rail), trigger_lines=[3, None])
    assert smus[0].armed == [(5, 1e-3, 3)]           # wired to the board's trigger output
    assert smus[1].armed == [(5, 1e-3, None)]        # not wired: software-armed
    assert events == [("armed", {"points": 5, "interval_s": 1e-3})]
    assert result == "ran" and stored == ["VDDA", "VDDD"] and [len(t.current_a) for t in traces] == [5, 5]


@pytest.fixture
def bench():
    b = Bench()
    yield b
    safety.shutdown_all()
    b.close()


def test_run_file_books_each_chunk_with_units_and_counts_the_trace_points(bench, tmp_path):
    """Two chunks (3 + 2 samples): the run file holds one run time (s) and one sample count per
    chunk, and ``trace_points`` is the number of run-trace points each rail delivered."""
    from bench.runstore import RunFile

    spikes, _ = reference_workload(5, 0)
    with RunFile(tmp_path / "p.h5", "power") as run, PEChip(bench.url) as pe:
        smus = open_smus(bench.cfgs())
        try:
            res = measure_power(pe, smus, bench.setups(), spikes=spikes, run=run,
                                options=PowerOptions(chunk_samples=3, idle_points=10))
        finally:
            for s in smus:
                s.close()
    assert res["chunks"] == 2
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f["run/chunk_samples"][()].tolist() == [3, 2]
        assert f["run/chunk_samples"].attrs["units"] == "samples"
        assert f["run/chunk_run_s"].shape == (2,)
        assert f["run/chunk_run_s"].attrs["units"] == "s"
        assert float(np.sum(f["run/chunk_run_s"][()])) == pytest.approx(res["run_chip_s"], rel=1e-12)
        for rail in ("VDDA", "VDDD", "VDDIO"):
            assert f[f"run/{rail}/current_a"].shape == (res["trace_points"],)
            assert f[f"run/{rail}/chunk"][()].tolist().count(1) > 0


class _RegisterSpy:
    """The chip as measure_power sees it, recording register writes."""

    def __init__(self, chip) -> None:
        self.chip, self.writes = chip, []

    def __getattr__(self, name):
        return getattr(self.chip, name)

    def write_register(self, name, value):
        self.writes.append((name, value))
        return self.chip.write_register(name, value)


def test_one_smu_per_rail_is_checked_before_anything_else():
    from bench.errors import MeasurementError
    from bench.power import RailSetup

    setups = [RailSetup("VDDA", 1.8, 0.1), RailSetup("VDDD", 1.2, 0.1)]
    with pytest.raises(MeasurementError, match="one SMU per rail"):
        measure_power(None, [object()], setups, spikes=np.zeros((1, 2, 3), bool))


@pytest.fixture
def ideal_bench():
    b = Bench(fidelity="ideal")
    yield b
    safety.shutdown_all()
    b.close()


def test_trigger_armed_run_traces_and_the_programming_record(ideal_bench, tmp_path):
    """With every SMU wired to trigger line 1, the run traces are armed on it (the run file
    says line 1) while the idle baseline is software-armed (-1); a 2 x 3 block of targets on
    the ideal chip is reported as 6 cells, all 6 verified."""
    from bench.runstore import RunFile

    spikes, g = reference_workload(2, 0)
    with RunFile(tmp_path / "t.h5", "power") as run, PEChip(ideal_bench.url) as pe:
        smus = open_smus(ideal_bench.cfgs())
        try:
            spy = _RegisterSpy(pe)
            res = measure_power(spy, smus, ideal_bench.setups(), spikes=spikes, conductances_s=g[:2, :3],
                                run=run, options=PowerOptions(idle_points=5, trigger_lines=[1, 1, 1]))
        finally:
            for s in smus:
                s.close()
    assert res["hardware_trigger"] is True
    # the board's trigger output: at RUN start (TRIG_MODE 1, not 2 = every sample), then off
    assert [v for name, v in spy.writes if name == "TRIG_MODE"] == [1.0, 0.0]
    assert res["programmed"]["cells"] == 6 and res["programmed"]["success"] == 6
    with h5py.File(tmp_path / "t.h5", "r") as f:
        for rail in ("VDDA", "VDDD", "VDDIO"):
            assert f[f"run/{rail}"].attrs["trigger_line"] == 1
            assert f[f"idle/{rail}"].attrs["trigger_line"] == -1


def test_sops_follow_the_workloads_steps_and_a_non_positive_energy_names_why(bench, monkeypatch):
    """Kills measure_power_296 (dense SOPs computed with the default 300 steps instead of the
    workload's) and _311 (the reason's text): a 100-step workload on the 120->11 chip layer
    has 120 x 11 x 100 dense SOPs per sample and (input spikes / samples) x 11 event SOPs
    (definitions of sim_backend.physics.energy); with no energy above the idle baseline the
    reason reads "... is not positive (the run drew no more than the idle baseline): TSOPS/W
    is undefined"."""
    import math

    import bench.power as bp

    monkeypatch.setattr(bp, "net_energy_j", lambda *a, **k: 0.0)     # nothing above the idle baseline
    spikes, _ = reference_workload(3, 0)
    spikes = np.ascontiguousarray(spikes[:, :100, :])
    with PEChip(bench.url) as pe:
        smus = open_smus(bench.cfgs())
        try:
            res = measure_power(pe, smus, bench.setups(), spikes=spikes, options=PowerOptions(idle_points=10))
        finally:
            for s in smus:
                s.close()
    assert res["sops_per_sample"]["dense"] == 120 * 11 * 100
    assert res["sops_per_sample"]["event"] == pytest.approx(np.count_nonzero(spikes) / 3 * 11, rel=1e-12)
    assert math.isnan(res["tsops_per_w"]["dense"])
    assert res["tsops_per_w_reason"] == ("net energy per sample 0 J is not positive (the run drew no more "
                                         "than the idle baseline): TSOPS/W is undefined")


def test_traces_are_sized_from_the_chips_time_step_and_name_the_instrument(bench, tmp_path):
    """Kills measure_power_82 (TIME_STEP never read: the 100 ns fallback used) and
    store_trace_52 (the SMU's identity left out of the run file): with the chip's step set
    to 1 us (10x the 100 ns default) each sample takes ~10x longer on the chip, so the run
    traces must hold more points than at 100 ns; every stored trace group names the SMU's
    *IDN? identity."""
    from bench.runstore import RunFile

    spikes, _ = reference_workload(2, 0)
    points = {}
    for dt in (100e-9, 1e-6):
        with RunFile(tmp_path / f"p{dt:g}.h5", "power") as run, PEChip(bench.url) as pe:
            pe.write_register("TIME_STEP", dt)
            smus = open_smus(bench.cfgs())
            try:
                res = measure_power(pe, smus, bench.setups(), spikes=spikes, run=run,
                                    options=PowerOptions(idle_points=10))
                idn = {s.rail: s.identity for s in smus}
            finally:
                for s in smus:
                    s.close()
        points[dt] = res["trace_points"]
    assert points[1e-6] > points[100e-9]
    with h5py.File(tmp_path / "p1e-06.h5", "r") as f:
        for rail, ident in idn.items():
            assert ident and f[f"run/{rail}"].attrs["identity"] == ident
            assert f[f"idle/{rail}"].attrs["identity"] == ident
