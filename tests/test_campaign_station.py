"""Campaign points on a (stand-in) physical station: a station file whose chip is a
``sim serve`` process on 127.0.0.1, reached over socket:// as lab hardware would be.  Its
points run one at a time on the station; a cluster without the station's resource is refused."""
from __future__ import annotations

import json
import textwrap

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


def test_points_run_on_the_station(station, capsys):
    out = station / "c.h5"
    code = main(["campaign", "run", str(station / "plan.toml"), "--out", str(out), "--json"])
    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert code == 0 and summary["done"] == 3 and summary["workers"] == 1   # serialised on the station
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


def test_cluster_without_the_station_resource_is_refused(station, capsys):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        out = station / "c.h5"
        code = main(["campaign", "run", str(station / "plan.toml"), "--out", str(out),
                     "--scheduler", cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == 2 and "advertises the resource station-lab=1" in err
    assert not out.exists()                                               # nothing written


def test_unreachable_scheduler_writes_nothing(station, capsys):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = station / "c.h5"
    code = main(["campaign", "run", str(station / "plan.toml"), "--out", str(out),
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and f"tcp://127.0.0.1:{port}: cannot connect" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
