"""Kill a campaign with SIGKILL at random moments, resume it, and get exactly the uninterrupted
result (issue 11, Must hold 1); SIGINT / SIGTERM leave a consistent file that resumes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.campaign.store import read_table

PLAN = """
[campaign]
name = "killme"
seed = 11
repeats = 3

[setup]
fidelity = "typical"

[[step]]
procedure = "program"
pattern = "random"
tolerance_us = 5

[[step]]
procedure = "read"
averages = 4

[[axis]]
param = "read.v_read_v"
values = [0.1, 0.2, 0.3]

[[axis]]
param = "setup.chip_seed"
values = [1, 2, 3]
"""
N_POINTS = 27
IGNORED = {"wall_s", "commit_order"}


def _cmd(plan: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "campaign", "run", str(plan), "--out", str(out), *extra]


def _by_index(path: Path) -> dict[str, np.ndarray]:
    cols, attrs = read_table(path)
    order = np.argsort(cols["index"], kind="stable")
    return {k: v[order] for k, v in cols.items() if k not in IGNORED}


def _same_tables(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if a[k].dtype.kind == "f":
            assert np.array_equal(a[k], b[k], equal_nan=True), k
        else:
            assert list(a[k]) == list(b[k]), k


def _opens(out: Path) -> int:
    """The file opens and is consistent: committed rows, one group per committed point."""
    with h5py.File(out, "r", locking=False) as f:
        n = int(f.attrs["committed"])
        idx = f["table/index"][:n]
        assert len(set(idx.tolist())) == n
        for i in idx:
            assert f"points/{int(i):06d}" in f
        return n


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    d = tmp_path_factory.mktemp("ref")
    plan = d / "plan.toml"
    plan.write_text(textwrap.dedent(PLAN))
    out = d / "ref.h5"
    r = subprocess.run(_cmd(plan, out, "--workers", "0"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return plan, _by_index(out)


def _kill_and_resume(tmp_path: Path, plan: Path, rng: np.random.Generator, workers: str, kills_wanted: int,
                     pause_s: float) -> tuple[Path, list[int]]:
    """Start, let 1-3 points finish (their JSON lines), wait a random fraction of a point, SIGKILL."""
    out = tmp_path / "c.h5"
    at_kill: list[int] = []
    while len(at_kill) < kills_wanted:
        proc = subprocess.Popen(_cmd(plan, out, "--resume", "--workers", workers, "--json"),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        try:
            for _ in range(int(rng.integers(1, 4))):
                if not proc.stdout.readline():
                    break
            time.sleep(rng.uniform(0.0, pause_s))
            killed = proc.poll() is None
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and any worker it started
        finally:
            proc.wait(timeout=60)
            proc.stdout.close()
        assert out.exists()
        n = _opens(out)  # opens after every kill
        assert n < N_POINTS, "the campaign finished before enough kills: make the points slower"
        if killed:
            at_kill.append(n)
    r = subprocess.run(_cmd(plan, out, "--resume", "--workers", workers, "--json"), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out, at_kill


def test_sigkill_at_random_moments_then_resume_gives_every_point_once(tmp_path, reference):
    plan, ref = reference
    rng = np.random.default_rng(20261202)
    out, at_kill = _kill_and_resume(tmp_path, plan, rng, "0", 5, 0.15)
    assert len(set(at_kill)) >= 5, f"kills landed at committed counts {at_kill}"
    got = _by_index(out)
    assert got["index"].tolist() == list(range(N_POINTS))           # every point exactly once
    _same_tables(got, ref)                                            # same results as uninterrupted
    with h5py.File(out, "r", locking=False) as f:
        assert int(f.attrs["committed"]) == N_POINTS and f.attrs["state"] == "finished"
        assert len(f["points"]) == N_POINTS
        assert f["table/index"].shape == (N_POINTS,)


@pytest.mark.slow
def test_sigkill_with_local_dask_workers_then_resume(tmp_path, reference):
    plan, ref = reference
    rng = np.random.default_rng(7)
    out, at_kill = _kill_and_resume(tmp_path, plan, rng, "2", 5, 0.15)
    assert len(set(at_kill)) >= 5
    got = _by_index(out)
    assert got["index"].tolist() == list(range(N_POINTS))
    _same_tables(got, ref)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_sigterm_stop_cleanly_and_resume(tmp_path, reference, sig, code):
    plan, ref = reference
    out = tmp_path / "c.h5"
    proc = subprocess.Popen(_cmd(plan, out, "--workers", "0", "--json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()         # one point finished: the campaign is under way
        assert '"event": "point"' in first
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    summary = rest.strip().splitlines()[-1]
    assert '"event": "summary"' in summary and '"state": "stopped"' in summary
    with h5py.File(out, "r", locking=False) as f:
        assert f.attrs["state"] == "stopped"
        assert signal.Signals(sig).name in f.attrs["reason"]
        n = int(f.attrs["committed"])
    assert 1 <= n < N_POINTS
    r = subprocess.run(_cmd(plan, out, "--resume", "--workers", "0"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _same_tables(_by_index(out), ref)


def test_ctrl_c_to_the_process_group_with_local_workers(tmp_path, reference):
    """Ctrl-C in a terminal reaches the client and its local dask workers: the client finishes
    the points in flight, the workers do not die under them, nothing is recorded as failed."""
    plan, ref = reference
    out = tmp_path / "c.h5"
    proc = subprocess.Popen(_cmd(plan, out, "--workers", "2", "--json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert '"event": "point"' in proc.stdout.readline()
        os.killpg(proc.pid, signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert '"state": "stopped"' in rest.strip().splitlines()[-1]
    cols, _ = read_table(out)
    assert np.all(cols["status"] == 0) and len(cols["index"]) < N_POINTS
    r = subprocess.run(_cmd(plan, out, "--resume", "--workers", "2"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _same_tables(_by_index(out), ref)
