"""Resuming a run file (``RunFile(mode="a")``): the provenance and the units written before
stay byte-identical; the resuming session is recorded beside them, not over them."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from bench.errors import RunStoreError
from bench.runstore import RunFile, open_run

UNIT = np.dtype([("index", "<i4"), ("g_s", "<f8"), ("flags", "u1")])


def _unit(i: int) -> np.ndarray:
    u = np.zeros(4, UNIT)
    u["index"] = np.arange(4) + 4 * i
    u["g_s"] = (np.arange(4) + 4 * i) * 1e-6 + 1 / 3      # not exactly representable: bytes matter
    u["flags"] = i
    return u


def _first_session(path) -> None:
    run = RunFile(path, "program", station={"chip": {"url": "pesim://?seed=1"}},
                  seeds={"chip_seed": 1, "run_seed": 0}, chip_url="pesim://?seed=1", tolerance_s=5e-6)
    for i in range(3):
        run.append("cells", _unit(i), units="S")
        run.flush()
    run.close(complete=False)                # interrupted


def _root_attrs(path) -> dict:
    with open_run(path) as f:
        return {k: f.attrs[k] for k in f.attrs}


def test_resume_keeps_provenance_and_earlier_units_byte_identical(tmp_path):
    """Protects resume (mode="a") against rewriting the run's provenance."""
    path = tmp_path / "run.h5"
    _first_session(path)
    before = _root_attrs(path)
    with open_run(path) as f:
        cells_before = f["cells"][()].tobytes()
    with RunFile(path, "program", mode="a", station={"chip": {"url": "socket://lab:5555"}},
                 seeds={"chip_seed": 7, "run_seed": 7}, chip_url="socket://lab:5555",
                 tolerance_s=2e-6, operator="second session") as run:
        for i in range(3, 5):
            run.append("cells", _unit(i))
            run.flush()
    after = _root_attrs(path)
    for key in ("kind", "snnbench_version", "git_revision", "utc_start", "station", "seeds",
                "chip_url", "tolerance_s"):
        assert after[key] == before[key], key
    assert json.loads(after["station"]) == {"chip": {"url": "pesim://?seed=1"}}
    assert after["complete"] and after["utc_end"] >= after["resumed_utc"] >= before["utc_start"]
    assert after["operator"] == "second session"            # new attributes are added
    with open_run(path) as f:
        cells = f["cells"][()]
        assert cells[:12].tobytes() == cells_before
        assert np.array_equal(cells[12:], np.concatenate([_unit(3), _unit(4)]))
        resumed = f["resumes/000"].attrs
        assert json.loads(resumed["station"]) == {"chip": {"url": "socket://lab:5555"}}
        assert json.loads(resumed["seeds"]) == {"chip_seed": 7, "run_seed": 7}
        assert resumed["utc_start"] == after["resumed_utc"]
        assert resumed["tolerance_s"] == 2e-6


def test_every_resume_is_recorded(tmp_path):
    path = tmp_path / "run.h5"
    _first_session(path)
    for n in range(2):
        with RunFile(path, "program", mode="a", seeds={"run_seed": n}):
            pass
    with h5py.File(path, "r") as f:
        assert sorted(f["resumes"]) == ["000", "001"]
        assert [json.loads(f[f"resumes/{k}"].attrs["seeds"])["run_seed"] for k in ("000", "001")] == [0, 1]


def test_resuming_another_kind_of_run_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "run.h5"
    _first_session(path)
    before = _root_attrs(path)
    with pytest.raises(RunStoreError, match="'program' run, not 'power'"):
        RunFile(path, "power", mode="a", seeds={"x": 1})
    assert _root_attrs(path) == before
    with h5py.File(path, "r") as f:           # the refused session left the file closed
        assert "resumes" not in f


def test_a_reader_follows_a_run_another_process_is_writing(tmp_path):
    """open_run reads without file locking: a live dashboard can open a run that another
    process holds open for writing."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "live.h5"
    child = textwrap.dedent(f"""
        import sys, numpy as np
        from bench.runstore import RunFile
        run = RunFile({str(path)!r}, "live")
        run.append("x", np.arange(3.0)); run.flush()
        print("ready", flush=True)
        sys.stdin.readline()
        run.close()
    """)
    p = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        with open_run(path) as f:
            assert f["x"][()].tolist() == [0.0, 1.0, 2.0] and not f.attrs["complete"]
    finally:
        p.communicate("\n", timeout=30)
    assert p.returncode == 0


def test_provenance_values_are_stored_as_json_and_a_live_run_reads_incomplete(tmp_path):
    path = tmp_path / "run.h5"
    run = RunFile(path, "program", station={"limits": {"v": np.float64(1.5)}, "rails": np.array([1, 2])},
                  seeds={"chip": np.int64(3)}, note=None, levels=[np.float32(0.5)])
    try:
        f = run.h5                                     # the writer is still at work (flushed)
        assert f.attrs["complete"] == False  # noqa: E712 - numpy bool
        assert json.loads(f.attrs["station"]) == {"limits": {"v": 1.5}, "rails": [1, 2]}
        assert json.loads(f.attrs["seeds"]) == {"chip": 3}
        assert f.attrs["note"] == "" and json.loads(f.attrs["levels"]) == [0.5]
        assert f.attrs["utc_end"] == ""
    finally:
        run.close()


def test_git_revision_is_the_checkout_head():
    import subprocess
    from pathlib import Path

    from bench.runstore import git_revision

    here = Path(__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert git_revision() == head.stdout.strip() and len(git_revision()) == 40


def test_a_run_file_under_proc_is_refused_before_anything_is_written():
    from bench.errors import RunPathError
    from bench.runstore import check_writable

    with pytest.raises(RunPathError, match=r"^/proc/snnbench-none/run.h5: directory /proc is not writable$"):
        check_writable("/proc/snnbench-none/run.h5")
