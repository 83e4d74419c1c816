"""Campaign points on a (stand-in) physical station: a station file whose chip is a
``sim serve`` process on 127.0.0.1, reached over socket:// as lab hardware would be.  Its
points run one at a time on the station; a cluster without the station's resource is refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bench.campaign.store import read_table
from bench.cli import main
from bench.simbench import SimBench

PLAN = """
[campaign]
name = "onstation"
seed = 3

[station]
file = "lab.toml"

[[step]]
procedure = "reg_write"
register = "V_READ"

[[step]]
procedure = "reg_read"
register = "V_READ"

[[axis]]
param = "reg_write.value"
values = [0.1, 0.2, 0.25]
"""


@pytest.fixture
def station(tmp_path):
    with SimBench(seed=4, instruments=False) as sim:
        (tmp_path / "lab.toml").write_text(f'[chip]\nurl = "{sim.chip_url}"\n[limits]\nv_read_max_v = 0.3\n')
        (tmp_path / "plan.toml").write_text(textwrap.dedent(PLAN))
        yield tmp_path


def _cli(*argv: str) -> subprocess.CompletedProcess:
    """The CLI in its own process (a local dask cluster's helper processes end with it)."""
    return subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True, timeout=300)


def test_points_run_on_the_station(station):
    out = station / "c.h5"
    r = _cli("campaign", "run", str(station / "plan.toml"), "--out", str(out), "--json")
    summary = json.loads(r.stdout.splitlines()[-1])
    assert r.returncode == 0 and summary["done"] == 3 and summary["workers"] == 1   # serialised on the station
    cols, attrs = read_table(out)
    assert sorted(cols["reg_read.value"].tolist()) == pytest.approx([0.1, 0.2, 0.25])
    assert "v_read_max_v = 0.3" in attrs["station"]                       # the station's text is kept


def test_station_limits_and_setup_are_checked(station, capsys):
    plan = station / "plan.toml"
    plan.write_text(textwrap.dedent(PLAN).replace("0.25]", "0.4]") + '\n[setup]\nfidelity = "ideal"\n')
    code = main(["campaign", "validate", str(plan)])
    err = capsys.readouterr().err
    assert code == 2
    assert "outside the station limit [0.001, 0.3]" in err and "physical hardware" in err


def test_cluster_without_the_station_resource_is_refused(station):
    sched_file = station / "scheduler.json"
    kw = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)], **kw)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert time.monotonic() < deadline and procs[0].poll() is None, "dask scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                       "1", "--no-dashboard", "--host", "127.0.0.1"], **kw))
        out = station / "c.h5"
        r = _cli("campaign", "run", str(station / "plan.toml"), "--out", str(out), "--scheduler", address)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert r.returncode == 2 and "advertises the resource station-lab=1" in r.stderr
    assert not out.exists()                                               # nothing written


def test_unreachable_scheduler_writes_nothing(station, capsys):
    """A refused scheduler port: exit 2, one line naming the address and the refusal, nothing
    written.  Kills engine._tcp_refused removed (dask's retries: a time-out message after 10 s)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = station / "c.h5"
    code = main(["campaign", "run", str(station / "plan.toml"), "--out", str(out),
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    # "connection refused": reported at once by the TCP pre-check (bench.campaign.engine._tcp_refused),
    # not after dask's 10 s of connect retries ("Timed out trying to connect").
    assert code == 2 and f"tcp://127.0.0.1:{port}: cannot connect (connection refused" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
