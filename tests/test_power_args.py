"""Regression tests for the QA review of the power procedure (defects A, B, C).

A: the sample interval is gap-free (aperture = interval) or refused, never silently changed;
   energy is right at long intervals.  B: --samples is bounded and the reference workload
   is generated chunk by chunk (bit-identical).  C: every argument is checked before the
   bench starts; one-line errors naming the flag, exit 2.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from tests.strict_json import loads_strict

from bench.cli import main
from bench.commands import power as power_cmd
from bench.errors import UsageError
from bench.power import (MAX_IDLE_POINTS, MAX_MARGIN, MAX_SAMPLES, PowerOptions, ReferenceWorkload,
                         measure_power, plan_chunk, plan_interval)
from drivers.instruments import open_smus
from drivers.pechip import PEChip
from sim_backend.physics.energy import reference_workload
from tests.test_power import _chip_truth, bench  # noqa: F401 - fixture


def _main(argv):
    """Exit code of the CLI (argparse errors leave through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_cli_limits_match_the_procedure():
    assert power_cmd.MAX_SAMPLES == MAX_SAMPLES
    assert power_cmd.MAX_IDLE_POINTS == MAX_IDLE_POINTS
    assert power_cmd.MAX_MARGIN == MAX_MARGIN


@pytest.mark.parametrize("n,seed,chunk", [(1, 0, 1), (5, 3, 2), (64, 0, 64), (300, 7, 128), (513, 1, 200)])
def test_reference_workload_chunks_are_bit_identical(n, seed, chunk):
    spikes, g = reference_workload(n, seed)
    w = ReferenceWorkload(n, seed)
    parts = list(w.chunks(chunk))
    assert [p.shape[0] for p in parts[:-1]] == [chunk] * (len(parts) - 1)
    assert np.array_equal(np.concatenate(parts), spikes)
    assert np.array_equal(w.conductances_s, g)


def test_huge_sample_count_is_refused_before_any_allocation():
    with pytest.raises(UsageError, match="--samples"):
        ReferenceWorkload(100_000_000, 0)


# ---- C: argument validation, before the bench starts -------------------------------------------
def _no_bench(monkeypatch):
    import bench.session

    def boom(*a, **k):
        raise AssertionError("the bench was started")
    monkeypatch.setattr(bench.session, "open_bench", boom)


@pytest.mark.parametrize("argv,flag", [
    (["--margin", "nan"], "--margin"),
    (["--margin", "inf"], "--margin"),
    (["--margin", "-0.1"], "--margin"),
    (["--margin", "1e9"], "--margin"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "x"], "--seed"),
    (["--samples", "0"], "--samples"),
    (["--samples", "100000000"], "--samples"),
    (["--samples", "1.5"], "--samples"),
    (["--idle-points", "0"], "--idle-points"),
    (["--idle-points", "1000000"], "--idle-points"),
    (["--interval-us", "0"], "--interval-us"),
    (["--interval-us", "nan"], "--interval-us"),
    (["--interval-us", "-5"], "--interval-us"),
    (["--smu", "VDDA=9999@TCPIP0::127.0.0.1::1::SOCKET"], "--smu"),
    (["--smu", "VDDA=2450@TCPIP0::127.0.0.1::1::SOCKET", "--smu", "VDDA=2450@TCPIP0::127.0.0.1::2::SOCKET"],
     "--smu"),
    (["--smu", "VDDA=2450@TCPIP0::127.0.0.1::1::SOCKET", "--interval-us", "1e-9"], "--interval-us"),
    (["--smu", "VDDA=2450@TCPIP0::127.0.0.1::1::SOCKET", "--interval-us", "1000000"], "--interval-us"),
    (["--smu", "VDDIO=2601B@TCPIP0::127.0.0.1::1::SOCKET", "--interval-us", "2000000"], "--interval-us"),
    (["--model", "m.h5", "--data", "d"], "--model"),
])
def test_bad_arguments_exit_2_naming_the_flag_before_the_bench_starts(argv, flag, tmp_path, capsys,
                                                                      monkeypatch):
    _no_bench(monkeypatch)
    rc = _main(["power", "--out", str(tmp_path / "x.h5"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and flag in err, err
    assert not (tmp_path / "x.h5").exists()


def test_help_lists_no_unimplemented_options(capsys):
    with pytest.raises(SystemExit):
        main(["power", "--help"])
    out = capsys.readouterr().out
    assert "--model" not in out and "--data" not in out
    assert "--interval-us" in out and "--margin" in out


def test_margin_type_bounds():
    assert power_cmd._margin("0") == 0.0 and power_cmd._margin("10") == 10.0
    for bad in ("nan", "-inf", "10.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            power_cmd._margin(bad)


# ---- A: interval planning and energy at long intervals ---------------------------------------
def _open(bench_):
    return open_smus(bench_.cfgs())


def test_plan_interval_refuses_what_no_smu_can_tile(bench):
    smus = _open(bench)
    try:
        # default: the station's aperture (0.01 NPLC at 50 Hz = 200 us) plus the largest per-reading
        # overhead of the three models (2450: 30 us; B2900 20 us, 2600B 25 us)
        assert plan_interval(smus, None, [0.01 / 50] * 3) == pytest.approx(230e-6)
        assert plan_interval(smus, 0.1) == 0.1
        for bad in (1e-9, 150e-6, 200e-6, 1.0, 1e3):
            with pytest.raises(UsageError, match=r"--interval-us.*2450 on VDDA takes 230\.\.200030 us"):
                plan_interval(smus, bad)
        with pytest.raises(UsageError, match="--margin"):
            plan_chunk(smus, 200e-6, 2.0, 10.0, 4, 65536)     # one sample needs > 60000 points
        assert plan_chunk(smus, 200e-6, 44e-6, 0.25, 4, 65536) == 4096
    finally:
        for s in smus:
            s.close()


def test_nothing_is_powered_or_programmed_for_an_impossible_interval(bench):
    spikes, g = reference_workload(2, 0)
    writes0 = bench.chip.counters.get("runs", 0)
    with PEChip(bench.url) as pe:
        smus = _open(bench)
        try:
            with pytest.raises(UsageError, match="--interval-us"):
                measure_power(pe, smus, bench.setups(), spikes=spikes, conductances_s=g,
                              options=PowerOptions(interval_s=1.0))
            for srv in bench.servers:
                assert srv.state()["output"] is False
        finally:
            for s in smus:
                s.close()
    assert bench.chip.counters.get("runs", 0) == writes0


@pytest.mark.parametrize("interval_s", [230e-6, 10e-3, 0.1, 0.2])
def test_energy_is_right_at_long_intervals(bench, interval_s):
    """QA: 1 s gave 195 W (aperture 200 us, period 1 s); every accepted interval must be exact.

    A 2-sample run (89 us) is shorter than one aperture: with the SMUs armed on the board's
    trigger the run sits inside the first aperture and is counted exactly (issue 14)."""
    spikes, g = reference_workload(2, 0)
    with PEChip(bench.url) as pe:
        smus = _open(bench)
        try:
            runs0 = bench.chip.counters["runs"]
            res = measure_power(pe, smus, bench.setups(), spikes=spikes, conductances_s=None,
                                options=PowerOptions(interval_s=interval_s, idle_points=5,
                                                     trigger_lines=[1, 1, 1]))
            e_chip, p_chip, _ = _chip_truth(bench.chip, runs0)
            # each SMU integrates all of the interval one reading allows: interval - its overhead
            assert all(abs(s.aperture_s - (interval_s - s.range.overhead_s)) < 1e-9 * interval_s for s in smus)
        finally:
            for s in smus:
                s.close()
    assert res["interval_s"] == pytest.approx(interval_s)
    assert res["energy_per_sample_j"] == pytest.approx(e_chip, rel=0.05)
    assert res["average_power_w"] == pytest.approx(p_chip, rel=0.05)


def _smu_args(bench_):
    return [a for d in bench_.smu for a in ("--smu", f"{d['rail']}={d['model']}@{d['resource']}")]


def test_cli_long_interval_against_the_bench(bench, tmp_path, capsys):
    import json

    out = tmp_path / "iw.h5"
    rc = main(["power", "--chip", bench.url, *_smu_args(bench),
               "--samples", "2", "--idle-points", "5", "--interval-us", "100000", "--out", str(out), "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = loads_strict(cap.out)
    assert res["interval_s"] == pytest.approx(0.1)
    assert 0.03 < res["average_power_w"] < 0.06
    rc = _main(["power", "--chip", bench.url, *_smu_args(bench),
                "--samples", "2", "--interval-us", "1000000", "--out", str(tmp_path / "iw2.h5"), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--interval-us" in err and len(err.splitlines()) == 1, err
