"""CLI contract of the foundation: --json, one-line errors, exit codes, nothing written."""
import json
import os
import subprocess
import sys

import pytest

from bench.cli import main


def run_cli(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                       timeout=120, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def test_version():
    """The version printed is the one pyproject.toml declares (kills bench.__getattr__, the lazy
    ``__version__`` lookup, returning anything else)."""
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["version"]
    code, out, _ = run_cli("--version")
    assert code == 0 and out.splitlines()[0] == f"snnbench {declared}", out


def test_chip_info_json_on_default_simulated_bench():
    code, out, err = run_cli("chip", "info", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert {"rows", "columns", "neurons", "levels", "chip_id", "firmware_version",
            "protocol_version"} <= d.keys()
    assert (d["rows"], d["columns"], d["neurons"], d["levels"]) == (128, 24, 12, 16)
    assert d["url"].startswith("socket://127.0.0.1:")
    assert out.count("\n") == 1


BAD_STATIONS = {
    "malformed": ("[chip\nurl = 'sim'", 2, "not valid TOML"),
    "unknown_field": ("[chip]\nspeed = 3\n", 2, "chip.speed"),
    "out_of_range": ("[limits]\nv_set_max_v = 9.0\n", 2, "v_set_max_v"),
    "negative": ("[link]\nbaud = -1\n", 2, "link.baud"),
    "wrong_type": ("[chip]\ntimeout_s = 'soon'\n", 2, "chip.timeout_s"),
    "smu_over_limit": ("[[smu]]\nresource='TCPIP0::127.0.0.1::1::SOCKET'\nmodel='2450'\nrail='VDDA'\n"
                       "voltage_v=1.8\ncurrent_limit_a=0.5\nmax_current_a=0.1\n", 2, "current_limit_a"),
    "unreachable_chip": ("[chip]\nurl = 'socket://127.0.0.1:1'\n", 1, "Connection refused"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATIONS))
def test_bad_station_one_line_error(tmp_path, case):
    text, want_code, needle = BAD_STATIONS[case]
    st = tmp_path / "station.toml"
    st.write_text(text)
    before = sorted(os.listdir(tmp_path))
    code, out, err = run_cli("chip", "info", "--station", str(st), cwd=tmp_path)
    assert code == want_code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    if want_code == 2:
        assert str(st) in lines[0]
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("args,code,needle", [
    (["chip", "info", "--chip", "nosuch://x"], 2, "unknown URL scheme"),
    (["chip", "info", "--chip", "socket://127.0.0.1:1"], 1, "cannot open chip link"),
    (["chip", "info", "--chip", "pesim://?warp=9"], 2, "warp"),
    (["chip", "reg", "--chip", "pesim://", "V_READ", "7"], 2, "outside"),
    (["chip", "reg", "--chip", "pesim://", "NOPE"], 2, "unknown register"),
    (["chip", "reg", "--chip", "pesim://", "TIME_STEP", "fast"], 2, "not a number"),
    (["chip", "reg", "--chip", "pesim://", "V_READ", "0.8"], 2, "station limit"),
    (["nosuchcommand"], 2, "invalid choice"),
])
def test_bad_arguments(capsys, args, code, needle):
    assert main(args) == code if code != 2 or args[0] != "nosuchcommand" else True
    if args[0] == "nosuchcommand":
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_debug_shows_traceback():
    code, _, err = run_cli("chip", "info", "--chip", "nosuch://x", "--debug")
    assert code != 0 and "Traceback" in err


# SIGINT / SIGTERM tests: tests/test_signals.py (deterministic, fixtures kill their children)


def test_infer_refuses_a_model_with_nothing_on_the_chip(tmp_path):
    from bench.network.model import Network
    from bench.network.modelfile import save_model

    save_model(Network.create((800, 200, 11), seed=0), tmp_path / "wide.h5")
    code, out, err = run_cli("infer", "--chip", "pesim://?seed=1", "--model", str(tmp_path / "wide.h5"),
                             "--data", str(tmp_path), "--out", str(tmp_path / "i.h5"))
    assert code == 2 and "no layer of the model fits the chip" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "i.h5").exists()
