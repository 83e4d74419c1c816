"""Campaign plan validation (issue 11): every kind of bad plan -> one line per problem, exit 2,
no file; and the expansion of good plans (grid, zip, ranges, seeds, repeats) by hand."""
from __future__ import annotations

import os
import socket
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.campaign.plan import PlanError, parse_plan
from bench.cli import main

GOOD = """
[campaign]
name = "t"
seed = 5

[[step]]
procedure = "reg_write"
register = "V_READ"
value = 0.2

[[step]]
procedure = "read"
averages = 2
"""


def _write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


BAD_PLANS = {
    # kind: (plan text, substring every error line set must contain)
    "syntax": ("[campaign\nname = 't'\n", "not valid TOML"),
    "unknown_key": (GOOD + "\n[[axis]]\nparam = 'read.averages'\nvalues = [1, 2]\nstep_size = 3\n",
                    "unknown key axis[0].step_size"),
    "wrong_type": (GOOD.replace("averages = 2", "averages = 'two'"), "averages must be an integer, got 'two'"),
    "out_of_limit_voltage": (GOOD + "\n[[axis]]\nparam = 'read.v_read_v'\nvalues = [0.2, 0.8]\n",
                             "0.8 V exceeds the station limit v_read_max_v = 0.5 V"),
    "register_out_of_limit": (GOOD.replace("value = 0.2", "value = 0.75"),
                              "register V_READ = 0.75 is outside the station limit [0.001, 0.5]"),
    "empty_axis": (GOOD + "\n[[axis]]\nparam = 'read.averages'\nvalues = []\n", "empty axis"),
    "zip_unequal": (GOOD + "\n[[axis]]\nparam = 'read.averages'\nvalues = [1, 2, 3]\nzip = 'a'\n"
                           "\n[[axis]]\nparam = 'read.v_read_v'\nvalues = [0.1, 0.2]\nzip = 'a'\n",
                    "zip group 'a' pairs axes of unequal length: read.averages has 3, read.v_read_v has 2"),
    "unknown_procedure": (GOOD + "\n[[step]]\nprocedure = 'teleport'\n", "procedure 'teleport' is unknown"),
    "missing_required": (GOOD + "\n[[step]]\nprocedure = 'wait'\n", "needs 'wait_s' (no default, no axis)"),
    "axis_on_missing_step": (GOOD + "\n[[axis]]\nparam = 'infer.samples'\nvalues = [1]\n",
                             "no step named 'infer'"),
    "bad_setup": (GOOD + "\n[setup]\nfidelity = 'perfect'\n",
                  "setup.fidelity must be one of ideal, typical, worst, got 'perfect'"),
    "dt_outside_station": (GOOD + "\n[[step]]\nprocedure = 'infer'\nacceleration = 1e9\n",
                           "gives a chip step of 5e-12 s, outside the station's"),
}


@pytest.mark.parametrize("kind", sorted(BAD_PLANS))
def test_bad_plan_exits_2_with_one_line_and_writes_nothing(kind, tmp_path, capsys):
    text, expected = BAD_PLANS[kind]
    plan = _write(tmp_path, text)
    out = tmp_path / "c.h5"
    code, stdout, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")
    assert code == 2, err
    assert expected in err, err
    lines = err.strip().splitlines()
    assert all(line.startswith("snnbench: error: ") for line in lines), err
    assert "Traceback" not in err and stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["plan.toml"], "nothing may be written"
    # validate says the same
    code2, _, err2 = _run(capsys, "campaign", "validate", str(plan))
    assert code2 == 2 and expected in err2


def test_all_problems_listed_at_once_one_line_each(tmp_path, capsys):
    text = GOOD.replace("averages = 2", "averages = 0") + textwrap.dedent("""
        [setup]
        colour = "blue"

        [[step]]
        procedure = "teleport"

        [[axis]]
        param = "read.v_read_v"
        values = []
    """)
    plan = _write(tmp_path, text)
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(tmp_path / "c.h5"))
    lines = err.strip().splitlines()
    assert code == 2
    assert lines[0] == f"snnbench: error: {plan}: 4 problems in the plan (one per line below)"
    body = "\n".join(lines[1:])
    assert len(lines) == 5
    for needle in ("unknown key setup.colour", "procedure 'teleport' is unknown", "empty axis",
                   "averages = 0 is below the minimum 1"):
        assert sum(needle in line for line in lines[1:]) == 1, body
    assert not (tmp_path / "c.h5").exists()


def test_station_limit_from_station_file(tmp_path, capsys):
    """The limit comes from the plan's station: 0.4 V is fine built in (0.5) but not at 0.3 V."""
    port = _closed_port()
    (tmp_path / "lab.toml").write_text(f'[chip]\nurl = "socket://127.0.0.1:{port}"\n[limits]\nv_read_max_v = 0.3\n')
    text = GOOD + "\n[station]\nfile = 'lab.toml'\n\n[[axis]]\nparam = 'read.v_read_v'\nvalues = [0.2, 0.4]\n"
    plan = _write(tmp_path, text)
    code, _, err = _run(capsys, "campaign", "validate", str(plan))
    assert code == 2 and "0.4 V exceeds the station limit v_read_max_v = 0.3 V" in err
    parse_plan(text.replace("station]\nfile = 'lab.toml'", "campaign_unused]").replace(
        "[campaign_unused]\n", ""), "p")  # the same sweep on the built-in bench is valid


def test_unreachable_station(tmp_path, capsys):
    port = _closed_port()
    (tmp_path / "lab.toml").write_text(f'[chip]\nurl = "socket://127.0.0.1:{port}"\ntimeout_s = 0.5\n')
    plan = _write(tmp_path, GOOD + "\n[station]\nfile = 'lab.toml'\n")
    out = tmp_path / "c.h5"
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out))
    assert code == 2
    assert f"chip at socket://127.0.0.1:{port} is unreachable" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unwritable_out(tmp_path, capsys):
    plan = _write(tmp_path, GOOD)
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", "/proc/c.h5")
    assert code == 2 and "/proc" in err and "not writable" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if not os.access(ro, os.W_OK):  # (root may write anywhere)
            code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(ro / "c.h5"))
            assert code == 2 and "not writable" in err
    finally:
        ro.chmod(stat.S_IRWXU)
    assert sorted(os.listdir(tmp_path)) == ["plan.toml", "ro"]


def test_existing_out_needs_resume_or_force(tmp_path, capsys):
    plan = _write(tmp_path, GOOD)
    out = tmp_path / "c.h5"
    out.write_bytes(b"precious")
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")
    assert code == 2 and "exists; pass --resume" in err
    assert out.read_bytes() == b"precious"


def test_changed_plan_on_resume_is_refused_naming_the_difference(tmp_path, capsys):
    plan = _write(tmp_path, GOOD + "\n[[axis]]\nparam = 'read.averages'\nvalues = [1, 2]\n")
    out = tmp_path / "c.h5"
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--workers", "0")
    assert code == 0, err
    before = out.read_bytes()
    _write(tmp_path, GOOD + "\n[[axis]]\nparam = 'read.averages'\nvalues = [1, 4]\n")
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--resume", "--workers", "0")
    assert code == 2
    assert "axes[0].values[1]: 2 -> 4" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before
    # comments and layout are not changes
    _write(tmp_path, "# a comment\n" + GOOD + "\n[[axis]]\nparam = 'read.averages'   # swept\nvalues = [1, 2]\n")
    code, _, err = _run(capsys, "campaign", "run", str(plan), "--out", str(out), "--resume", "--workers", "0")
    assert code == 0, err


# --- expansion (expected values derived by hand) ------------------------------------------------
def test_grid_zip_repeats_expansion_order():
    plan = parse_plan(GOOD.replace('seed = 5', 'seed = 5\nrepeats = 2') + textwrap.dedent("""
        [[axis]]
        param = "read.v_read_v"
        values = [0.1, 0.2, 0.3]
        [[axis]]
        param = "reg_write.value"
        values = [0.15, 0.25]
        [[axis]]
        param = "read.averages"
        values = [4, 8, 16]
        zip = "z"
        [[axis]]
        param = "setup.chip_seed"
        values = [7, 8, 9]
        zip = "z"
    """), "p")
    # dims: v_read (3) x reg value (2) x zip(averages, chip_seed) (3) x repeats (2)
    assert plan.grid_shape == (3, 2, 3, 2) and plan.n_points == 36
    # index 17 = (1, 0, 2, 1): v_read 0.2, value 0.15, averages 16 with chip seed 9, repeat 1
    setup, steps = plan.point_params(17)
    assert plan.repeat(17) == 1
    assert setup["chip_seed"] == 9
    assert dict((n, p) for n, _, p in steps) == {"reg_write": {"register": "V_READ", "value": 0.15},
                                                   "read": {"v_read_v": 0.2, "averages": 16}}


def test_ranges_and_seeds():
    plan = parse_plan(GOOD + textwrap.dedent("""
        [[axis]]
        param = "read.v_read_v"
        linspace = {start = 0.1, stop = 0.3, num = 5}
        [[axis]]
        param = "setup.chip_seed"
        seeds = 4
        [[axis]]
        param = "reg_write.value"
        logspace = {start = 0.05, stop = 0.45, num = 3}
    """), "p")
    v, s, g = (a.values for a in plan.axes)
    assert v == (0.1, 0.15, 0.2, 0.25, 0.3)
    assert g == pytest.approx((0.05, 0.15, 0.45))
    assert len(set(s)) == 4 and all(0 <= x < 2**31 for x in s)
    assert s == parse_plan(plan.text, "again").axes[1].values      # reproducible
    other = parse_plan(plan.text.replace("seed = 5", "seed = 6"), "p").axes[1].values
    assert set(other).isdisjoint(s)                                  # another campaign, other dies


def test_plan_hash_ignores_comments_but_not_values():
    a = parse_plan(GOOD, "a")
    assert parse_plan("# note\n" + GOOD.replace("averages = 2", "averages = 2   # x"), "b").sha256 == a.sha256
    assert parse_plan(GOOD.replace("averages = 2", "averages = 3"), "c").sha256 != a.sha256


def test_plan_error_lists_problems():
    with pytest.raises(PlanError) as ei:
        parse_plan("[campaign]\nname = ''\nseed = -1\n", "p")
    assert ei.value.exit_code == 2
    assert any("campaign.name must not be empty" in p for p in ei.value.problems)
    assert any("campaign.seed must be in [0, 2^63)" in p for p in ei.value.problems)
    assert any("no [[step]]" in p for p in ei.value.problems)
    assert np.all([isinstance(p, str) and "\n" not in p for p in ei.value.problems])


def test_plan_reference_names_every_procedure_parameter_and_result():
    from bench.campaign.plan import SETUP_PARAMS
    from bench.campaign.procedures import PROCEDURES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "campaigns.md").read_text()
    for proc in PROCEDURES.values():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{proc.name}` |")), None)
        assert row is not None, proc.name
        for p in proc.params:
            assert f"`{p.name}`" in row, (proc.name, p.name)
        for r in proc.results:
            assert r in row, (proc.name, r)
    for name in SETUP_PARAMS:
        assert f"{name} =" in doc
