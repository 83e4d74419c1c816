"""The same seeded plan gives bit-identical result tables on 1 worker, 2 local workers and a
separately started scheduler + 2 worker processes (issue 11, Must hold 3)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bench.campaign.store import read_table

PLAN = """
[campaign]
name = "workers"
seed = 99

[setup]
fidelity = "typical"

[[step]]
procedure = "program"
pattern = "model"

[[step]]
procedure = "infer"
samples = 8

[[step]]
procedure = "read"
averages = 2

[[axis]]
param = "infer.acceleration"
values = [1000, 50000]

[[axis]]
param = "setup.chip_seed"
seeds = 2
"""


def _run(plan: Path, out: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "bench", "campaign", "run", str(plan), "--out", str(out),
                        "--json", *extra], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["event"] for x in lines] == ["point"] * (len(lines) - 1) + ["summary"]
    return lines[-1]


def _table(out: Path) -> dict[str, np.ndarray]:
    cols, _ = read_table(out)
    order = np.argsort(cols["index"])
    return {k: v[order] for k, v in cols.items() if k not in ("wall_s", "commit_order")}


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture
def cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, stopped afterwards."""
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    kw = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path)
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                       "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                                       str(sched_file)], **kw))
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            assert procs[0].poll() is None, "dask scheduler exited"
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                           "--host", "127.0.0.1"], **kw))
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        _stop(procs)


def test_one_two_and_separate_cluster_give_identical_tables(tmp_path, cluster):
    plan = tmp_path / "plan.toml"
    plan.write_text(textwrap.dedent(PLAN))
    s1 = _run(plan, tmp_path / "w1.h5", "--workers", "1")
    s2 = _run(plan, tmp_path / "w2.h5", "--workers", "2")
    s3 = _run(plan, tmp_path / "cl.h5", "--scheduler", cluster)
    assert (s1["workers"], s2["workers"], s3["workers"]) == (1, 2, 2)
    assert s1["done"] == s2["done"] == s3["done"] == 4
    t1, t2, t3 = (_table(tmp_path / f) for f in ("w1.h5", "w2.h5", "cl.h5"))
    assert t1["index"].tolist() == [0, 1, 2, 3]
    for other in (t2, t3):
        assert other.keys() == t1.keys()
        for k in t1:
            a, b = t1[k], other[k]
            if a.dtype.kind == "f":
                assert a.tobytes() == b.tobytes(), k       # bit-identical, NaN patterns included
            else:
                assert list(a) == list(b), k
    # the points really differ between dies (the seeds reach the simulated chip)
    assert t1["read.mean_g_us"][0] != t1["read.mean_g_us"][1]
    # and per-point arrays agree too
    import h5py

    with h5py.File(tmp_path / "w1.h5", "r") as f1, h5py.File(tmp_path / "cl.h5", "r") as f3:
        for i in range(4):
            g1, g3 = f1[f"points/{i:06d}/read/g_s"][()], f3[f"points/{i:06d}/read/g_s"][()]
            assert g1.tobytes() == g3.tobytes()
            assert f1[f"points/{i:06d}"].attrs["seed"] == f3[f"points/{i:06d}"].attrs["seed"]
