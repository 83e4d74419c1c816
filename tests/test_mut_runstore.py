"""Mutation-driven tests of bench.runstore (issue 18).

Expected values come from the module's documented contract (docstrings, DESIGN.md section 5),
from POSIX / Linux behaviour (fallocate(2), RLIMIT_FSIZE) or from hand-built cases; none are
recorded from the code's own output.  Each test names what it protects.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench import runstore
from bench.errors import RunPathError, RunStoreError
from bench.runstore import HEADROOM_BYTES, NoSpaceError, RunFile, check_writable, open_run


def _commits(path) -> list[dict]:
    with h5py.File(path, "r") as f:
        n = int(f.attrs["committed"])
        return [json.loads(x) for x in f["_commits"][:n]]


# --- check_writable ---------------------------------------------------------------------------
def test_a_directory_is_refused_as_a_run_path(tmp_path):
    """Protects check_writable: a path that is an existing directory is refused with its reason
    (mutants that drop or invert the is_dir check)."""
    with pytest.raises(RunPathError, match=r": is a directory, not a file path$"):
        check_writable(tmp_path)


def test_an_existing_unwritable_file_is_refused(tmp_path, monkeypatch):
    """Protects check_writable's "exists and is not writable" branch (the test runs as root,
    which os.access lets write anything, so access() is made to deny W_OK on that file)."""
    f = tmp_path / "run.h5"
    f.write_bytes(b"x")
    real = os.access

    def access(path, mode, *a, **k):
        if Path(path) == f and mode & os.W_OK:
            return False
        return real(path, mode, *a, **k)

    monkeypatch.setattr(runstore.os, "access", access)
    with pytest.raises(RunPathError, match=r"run\.h5: exists and is not writable$"):
        check_writable(f)
    assert f.read_bytes() == b"x"


def test_the_nearest_existing_ancestor_is_checked_and_nothing_is_created(tmp_path, monkeypatch):
    """Protects check_writable's ancestor walk: missing directories are not created by the
    check, and the directory checked for W_OK|X_OK is the nearest existing one."""
    asked = []
    real = os.access

    def access(path, mode, *a, **k):
        asked.append((Path(path), mode))
        return real(path, mode, *a, **k)

    monkeypatch.setattr(runstore.os, "access", access)
    p = tmp_path / "a" / "b" / "run.h5"
    assert check_writable(p) == p
    assert not (tmp_path / "a").exists()
    assert (tmp_path, os.W_OK | os.X_OK) in asked


def test_a_relative_bare_file_name_is_checked_in_the_working_directory(tmp_path, monkeypatch):
    """Protects check_writable for a bare file name (its parent is ""): the directory checked
    is "." (the working directory), here made unwritable."""
    monkeypatch.chdir(tmp_path)
    real = os.access
    monkeypatch.setattr(runstore.os, "access",
                        lambda path, mode, *a, **k: False if Path(path) == Path(".") else real(path, mode, *a, **k))
    with pytest.raises(RunPathError, match=r"^run\.h5: directory \. is not writable$"):
        check_writable("run.h5")


def test_a_directory_under_sys_is_refused():
    """Protects check_writable's /proc, /sys refusal (root may "write" there): both prefixes."""
    with pytest.raises(RunPathError, match=r"^/sys/snnbench-none/run.h5: directory /sys is not writable$"):
        check_writable("/sys/snnbench-none/run.h5")


def test_unwritable_ancestor_message_names_the_directory(tmp_path, monkeypatch):
    """Protects check_writable: W_OK and X_OK are both required of the directory."""
    d = tmp_path / "d"
    d.mkdir()
    real = os.access
    monkeypatch.setattr(runstore.os, "access",
                        lambda path, mode, *a, **k: (not (mode & os.X_OK)) if Path(path) == d
                        else real(path, mode, *a, **k))
    with pytest.raises(RunPathError, match=r"run\.h5: directory .*/d is not writable$"):
        check_writable(d / "run.h5")


def test_parent_directory_that_cannot_be_created_is_a_run_path_error(tmp_path, monkeypatch):
    """Protects _make_parent: an OSError of mkdir becomes a RunPathError naming the directory
    and the OS reason."""
    def mkdir(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(RunPathError, match=r"cannot create directory .*/x \(Read-only file system\)$"):
        RunFile(tmp_path / "x" / "run.h5", "test")


def test_missing_parent_directories_are_created_when_the_file_is_written(tmp_path):
    """Protects _make_parent (parents=True): nested missing directories are created."""
    p = tmp_path / "a" / "b" / "run.h5"
    with RunFile(p, "test") as run:
        run.write("x", [1, 2, 3])
    with open_run(p) as f:
        assert f["x"][()].tolist() == [1, 2, 3]


# --- space --------------------------------------------------------------------------------
class _FakeFallocate:
    """Stands in for libc fallocate(2): records its arguments, fails with ``err``."""

    def __init__(self, err: int = 0) -> None:
        self.err, self.calls = err, []

    def __call__(self, fd, mode, offset, length):
        self.calls.append((mode, offset, length, os.fstat(fd).st_size))
        if self.err:
            ctypes.set_errno(self.err)
            return -1
        return 0


@pytest.mark.parametrize("err, reason", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EDQUOT, "Disk quota exceeded"),
                                         (errno.EFBIG, "File too large")])
def test_a_reservation_refused_for_space_is_a_no_space_error_before_the_write(tmp_path, monkeypatch,
                                                                             err, reason):
    """Protects reserve / _space_problem: fallocate(FALLOC_FL_KEEP_SIZE=1) is asked for the
    bytes + 1 MiB headroom from the file's end; ENOSPC / EDQUOT / EFBIG are out-of-space
    (NoSpaceError with strerror, raised before HDF5 writes), the file keeps its last flush."""
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    run.append("x", np.arange(4.0))
    run.flush()
    fake = _FakeFallocate(err)
    monkeypatch.setattr(runstore, "_fallocate", fake)
    with pytest.raises(NoSpaceError, match=rf"no space to write the run file \({reason}\); it holds every unit"):
        run.append("x", np.zeros(1000))
    mode, offset, length, size = fake.calls[0]
    assert (mode, length) == (1, 8000 + HEADROOM_BYTES) and offset == size == run.h5.id.get_filesize()
    run.close()
    with open_run(p) as f:                     # out of space: closed as the last flush left it
        assert f["x"][()].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert f.attrs["utc_end"] == "" and not f.attrs["complete"]


def test_a_file_system_that_cannot_reserve_lets_the_write_through(tmp_path, monkeypatch):
    """Protects _space_problem: errors other than out-of-space (EOPNOTSUPP: no fallocate on
    this file system) are not a space problem."""
    monkeypatch.setattr(runstore, "_fallocate", _FakeFallocate(errno.EOPNOTSUPP))
    with RunFile(tmp_path / "run.h5", "test") as run:
        run.append("x", np.arange(3))
    with open_run(tmp_path / "run.h5") as f:
        assert f["x"][()].tolist() == [0, 1, 2] and f.attrs["complete"]


def test_reserving_with_the_real_fallocate_keeps_the_file_size(tmp_path):
    """Protects _load_fallocate: libc's fallocate with 64-bit offsets (argtypes c_int64; an
    offset past 2**32 does not fit a C int) and KEEP_SIZE allocates without growing the file."""
    fn = runstore._load_fallocate()
    assert fn is not None and fn.restype is ctypes.c_int
    p = tmp_path / "f"
    p.write_bytes(b"")
    fd = os.open(p, os.O_WRONLY)
    try:
        rc = fn(fd, 1, 1 << 33, 1 << 16)
        if rc != 0 and ctypes.get_errno() == errno.EOPNOTSUPP:
            pytest.skip("file system without fallocate")
        assert rc == 0
        assert fn(fd, 1, 0, 1 << 20) == 0
    finally:
        os.close(fd)
    st = os.stat(p)
    assert st.st_size == 0 and st.st_blocks * 512 >= (1 << 20) + (1 << 16)


def test_fallocate_is_not_loaded_off_linux(monkeypatch):
    """Protects _load_fallocate's platform check (fallocate is Linux-only)."""
    monkeypatch.setattr(runstore.sys, "platform", "darwin")
    assert runstore._load_fallocate() is None


def test_fallocate_errors_are_reported_through_errno(tmp_path):
    """Protects _load_fallocate (use_errno=True): a failing call leaves its errno readable by
    ctypes.get_errno (EBADF for a closed descriptor)."""
    fn = runstore._load_fallocate()
    ctypes.set_errno(0)
    assert fn(-1, 1, 0, 4096) == -1
    assert ctypes.get_errno() == errno.EBADF


def test_the_file_size_limit_is_checked_before_the_write(tmp_path):
    """Protects _space_problem's RLIMIT_FSIZE check: end + bytes + headroom beyond the soft
    limit is a NoSpaceError naming the limit (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    limit = 3 << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        end = run.h5.id.get_filesize()
        run.append("ok", np.zeros(limit - HEADROOM_BYTES - end, np.uint8))   # exactly at the limit
        with pytest.raises(NoSpaceError, match=rf"\(file-size limit {limit} bytes \(RLIMIT_FSIZE\)\)"):
            run.append("big", np.zeros(limit, np.uint8))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        run.close()
    with open_run(p) as f:
        assert "big" not in f and not f.attrs["complete"]


def test_no_reservation_after_close(tmp_path, monkeypatch):
    """Protects reserve: a closed file reserves nothing (no fallocate on a closed handle)."""
    run = RunFile(tmp_path / "run.h5", "test")
    run.close()
    fake = _FakeFallocate(errno.ENOSPC)
    monkeypatch.setattr(runstore, "_fallocate", fake)
    run.reserve(10)
    run.close()
    assert fake.calls == []


# --- _guard -------------------------------------------------------------------------------
@pytest.mark.parametrize("exc, cls, text", [
    (OSError(errno.ENOSPC, "disk\n  full"), NoSpaceError, "no space to write cells ([Errno 28] disk full)"),
    (OSError(errno.EDQUOT, "quota"), NoSpaceError, "no space to write cells"),
    (RuntimeError("Can't write: No space available"), NoSpaceError, "no space to write cells"),
    (OSError(errno.EIO, "file too large for x"), NoSpaceError, "no space to write cells"),
    (OSError(errno.EIO, "I/O  error"), RunStoreError, "cannot write cells ([Errno 5] I/O error)"),
    (RuntimeError("bad\tthing"), RunStoreError, "cannot write cells (bad thing)"),
])
def test_a_failed_hdf5_write_is_a_one_line_error(tmp_path, exc, cls, text):
    """Protects RunFile._guard: out-of-space failures inside HDF5 (errno ENOSPC/EDQUOT/EFBIG,
    "No space", "too large") are NoSpaceError and mark the file out of space; others are a
    RunStoreError; the message is one line (whitespace collapsed)."""
    run = RunFile(tmp_path / "run.h5", "test")

    def boom():
        raise exc

    try:
        with pytest.raises(cls) as info:
            run._guard("cells", boom)
        assert str(info.value) == f"{run.path}: {text}" or str(info.value).startswith(f"{run.path}: {text}")
        assert type(info.value) is cls
        assert run._no_space is (cls is NoSpaceError)
    finally:
        run.close()


def test_guard_returns_the_writes_result(tmp_path):
    """Protects RunFile._guard / write: the dataset written is returned."""
    with RunFile(tmp_path / "run.h5", "test") as run:
        ds = run.write("a/b", np.arange(3), units="V", note={"k": 1})
        assert isinstance(ds, h5py.Dataset) and ds.name == "/a/b"
        assert ds.attrs["units"] == "V" and json.loads(ds.attrs["note"]) == {"k": 1}
        ds2 = run.append("c", np.ones((2, 3)))
        assert ds2.shape == (2, 3)


# --- attributes ---------------------------------------------------------------------------
def test_attribute_values_are_stored_as_documented(tmp_path):
    """Protects _attr: dict/list/tuple as JSON (numpy values via tolist, other objects via
    str), None as "", scalars as they are."""
    with RunFile(tmp_path / "run.h5", "test") as run:
        run.set_attrs("g", d={"a": np.arange(2)}, t=(1, Path("/x")), n=None, i=7, s="s")
    with open_run(tmp_path / "run.h5") as f:
        a = f["g"].attrs
        assert json.loads(a["d"]) == {"a": [0, 1]}
        assert json.loads(a["t"]) == [1, "/x"]
        assert a["n"] == "" and a["i"] == 7 and a["s"] == "s"


# --- append -------------------------------------------------------------------------------
def test_append_creates_an_extendable_chunked_dataset_with_units_and_attributes(tmp_path):
    """Protects RunFile._append: the first batch creates an extendable (maxshape None) dataset
    chunked by rows (64 KiB of rows, at most 4096), with units and attributes; later batches
    extend it; rows of another shape are refused naming both shapes."""
    p = tmp_path / "run.h5"
    with RunFile(p, "test") as run:
        run.append("v", np.zeros((3, 4)), units="S", note="n")          # 32-byte rows -> 2048
        run.append("v", np.ones((2, 4)), units="ignored")
        run.append("s", np.zeros(5, np.int8))                            # 1-byte rows -> 4096 cap
        run.append("w", np.zeros((1, 4096)))                             # 32 KiB rows -> 2
        run.append("h", np.zeros((1, 16384)))                            # 128 KiB rows -> 1
        with pytest.raises(RunStoreError, match=r"cannot append rows of shape \(3,\) to v with rows of shape \(4,\)"):
            run.append("v", np.zeros((1, 3)))
    with open_run(p) as f:
        v = f["v"]
        assert v.shape == (5, 4) and v.maxshape == (None, 4) and v.chunks == (2048, 4)
        assert v[:, 0].tolist() == [0, 0, 0, 1, 1]
        assert v.attrs["units"] == "S" and v.attrs["note"] == "n"
        assert f["s"].chunks == (4096,) and f["w"].chunks == (2, 4096) and f["h"].chunks == (1, 16384)


# --- commits ------------------------------------------------------------------------------
def test_each_flush_commits_the_row_counts_that_changed(tmp_path):
    """Protects RunFile._commit: one commit line per flush (``committed`` counts them), each
    with the datasets whose rows changed since the previous commit; fixed-size datasets
    count their first axis, a scalar dataset 1 row."""
    p = tmp_path / "run.h5"
    with RunFile(p, "test") as run:
        run.append("a", np.zeros(3))
        run.write("m", np.zeros((2, 5)))
        run.flush()
        run.append("a", np.zeros(2))
        run.write("m", np.zeros((2, 5)))          # rewritten, same rows: not a change
        run.write("s", 3.5)
        run.flush()
        run.flush()
        run.h5["a"].resize(7, axis=0)             # resized directly, then touched
        run.touch("/a/")
        run.flush()
    log = _commits(p)
    rows = [c["rows"] for c in log]
    assert rows[0] == {}                          # opening commit
    assert rows[1] == {"a": 3, "m": 2}
    assert rows[2] == {"a": 5, "s": 1}
    assert rows[3] == {}
    assert rows[4] == {"a": 7}
    assert rows[5] == {}                          # close
    assert len(log) == 6
    ts = [c["t"] for c in log]
    assert ts == sorted(ts) and ts[0] >= 0


def test_resume_continues_the_commit_log_and_drops_uncommitted_lines(tmp_path):
    """Protects RunFile._start on resume: the earlier sessions' commit log is replayed up to
    ``committed``; lines written after the last commit are dropped; commit times continue
    from the earlier session's (never restart at 0); row counts unchanged since the earlier
    session are not committed again."""
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    run.append("a", np.zeros(4))
    run.flush()
    run.close(complete=False)
    with h5py.File(p, "a") as f:                  # a torn commit: a line without its counter
        log = f["_commits"]
        n = log.shape[0]
        log.resize(n + 1, axis=0)
        log[n] = json.dumps({"t": 1e6, "rows": {"a": 99}})
        f.attrs["t_last"] = json.loads(log[n - 1])["t"]
        t_last = float(json.loads(log[n - 1])["t"])
    with RunFile(p, "test", mode="a") as run:
        run.append("b", np.zeros(1))
        run.flush()
    log = _commits(p)
    assert len(log) == n + 3                      # n earlier, opening commit, flush, close
    assert all(c["rows"].get("a") != 99 for c in log)
    assert log[n]["rows"] == {} and log[n + 1]["rows"] == {"b": 1}
    assert log[n]["t"] >= t_last
    with h5py.File(p, "r") as f:
        assert f["_commits"].shape[0] == n + 3


def test_resume_without_a_committed_counter_reads_the_whole_log(tmp_path):
    """Protects RunFile._start: a file whose ``committed`` attribute is missing (written before
    the counter existed) replays every line of its commit log."""
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    run.append("a", np.zeros(2))
    run.flush()
    run.close(complete=False)
    with h5py.File(p, "a") as f:
        n = f["_commits"].shape[0]
        del f.attrs["committed"]
    with RunFile(p, "test", mode="a") as run:
        pass
    log = _commits(p)
    assert len(log) == n + 2
    assert log[n]["rows"] == {}                   # "a" already committed with 2 rows


def test_writer_pid_and_host_name_the_writing_process(tmp_path):
    """Protects RunFile._start's live state: writer_pid / writer_host."""
    import socket

    with RunFile(tmp_path / "run.h5", "test"):
        pass
    with open_run(tmp_path / "run.h5") as f:
        assert int(f.attrs["writer_pid"]) == os.getpid()
        assert f.attrs["writer_host"] == socket.gethostname()
        assert f.attrs["snnbench_version"] == runstore.__version__


def test_a_failed_open_on_an_existing_file_leaves_it_in_place(tmp_path):
    """Protects RunFile.__init__'s cleanup: a refused resume of an existing file does not
    delete it; a new file that cannot start (out of space) is removed."""
    p = tmp_path / "run.h5"
    with RunFile(p, "one") as run:
        run.write("x", [1])
    with pytest.raises(RunStoreError):
        RunFile(p, "two", mode="a")
    with open_run(p) as f:
        assert f["x"][()].tolist() == [1]


def test_a_new_file_that_cannot_start_is_removed(tmp_path, monkeypatch):
    """Protects RunFile.__init__'s cleanup: out of space before the provenance is written, a
    file this call created is unlinked (nothing half-written is left)."""
    monkeypatch.setattr(runstore, "_fallocate", _FakeFallocate(errno.ENOSPC))
    p = tmp_path / "run.h5"
    with pytest.raises(NoSpaceError):
        RunFile(p, "test")
    assert not p.exists()


def test_an_unopenable_file_is_a_run_store_error(tmp_path):
    """Protects RunFile.__init__: h5py's OSError on open becomes a RunStoreError naming the
    file (e.g. resuming a file that is not HDF5)."""
    p = tmp_path / "run.h5"
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(RunStoreError, match=r"run\.h5: cannot open run file \("):
        RunFile(p, "test", mode="a")
    assert p.read_bytes() == b"not hdf5 at all"


def test_close_twice_and_exit_records_the_error(tmp_path):
    """Protects close / __exit__: closing twice is harmless; an exception is recorded as
    ``error`` = "<type>: <message>" and the run left incomplete."""
    p = tmp_path / "run.h5"
    with pytest.raises(KeyError):
        with RunFile(p, "test") as run:
            raise KeyError("k")
    run.close()
    with open_run(p) as f:
        assert f.attrs["error"] == "KeyError: 'k'" and not f.attrs["complete"]
        assert f.attrs["utc_end"] != ""


def test_close_gives_back_the_reserved_blocks(tmp_path):
    """Protects RunFile.close: the blocks reserved past the end (fallocate KEEP_SIZE) are given
    back: the 8 MiB reserved past the end are not kept (the file occupies its size, give or
    take the file system's allocation slack, far below 8 MiB)."""
    p = tmp_path / "run.h5"
    with RunFile(p, "test") as run:
        run.append("x", np.zeros(10))
        run.reserve(8 << 20)
    st = os.stat(p)
    assert st.st_blocks * 512 <= st.st_size + (256 << 10)


# --- failures inside HDF5, commit times, replay ---------------------------------------------
BIG = np.zeros(20000)
"""An attribute of 160 kB: HDF5's earliest file format holds attributes in the object header
(at most 64 KiB), so writing it fails inside HDF5 with "object header message is too large"."""


def test_provenance_that_hdf5_cannot_hold_is_reported_and_the_new_file_removed(tmp_path):
    """Protects RunFile.__init__: the provenance write runs under _guard("the provenance"),
    a failure names it (HDF5's "too large" counts as out of space) and the file this call
    created is removed."""
    p = tmp_path / "run.h5"
    with pytest.raises(NoSpaceError, match=r"run\.h5: no space to write the provenance \(.*too large"):
        RunFile(p, "test", big=BIG)
    assert not p.exists()


def test_an_append_that_hdf5_cannot_hold_names_the_dataset(tmp_path):
    """Protects RunFile.append: a failing append is reported naming the dataset."""
    with RunFile(tmp_path / "run.h5", "test") as run:
        with pytest.raises(NoSpaceError, match=r"no space to write cells/g \("):
            run.append("cells/g", np.zeros(3), big=BIG)
        with pytest.raises(NoSpaceError, match=r"no space to write map \("):
            run.write("map", np.zeros(3), big=BIG)


def test_commit_times_are_seconds_with_sub_second_resolution(tmp_path):
    """Protects RunFile._commit: ``t`` is seconds since open, kept to the microsecond (a run's
    units are often shorter than a second)."""
    import time as _time

    p = tmp_path / "run.h5"
    with RunFile(p, "test") as run:
        _time.sleep(0.2)
        run.flush()
    t = [c["t"] for c in _commits(p)]
    assert 0.15 <= t[1] - t[0] <= 0.9
    assert t[1] != round(t[1])


def _replayed_rows(path) -> dict[str, int]:
    rows: dict[str, int] = {}
    for c in _commits(path):
        rows.update(c["rows"])
    return rows


def test_after_a_resume_the_commit_log_tells_every_datasets_true_row_count(tmp_path):
    """Protects RunFile._start's replay on resume (earlier commits' row counts are re-read and
    every known dataset re-checked at the first commit): rows a killed session wrote after its
    last commit are committed by the resuming session, so a reader replaying the log reads
    each dataset to its real end."""
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    run.append("a", np.zeros(4))
    run.append("b", np.zeros(2))
    run.flush()
    run.close(complete=False)
    with h5py.File(p, "a") as f:                   # the killed session's unit in flight
        f["a"].resize(6, axis=0)
    with RunFile(p, "test", mode="a"):
        pass
    assert _replayed_rows(p) == {"a": 6, "b": 2}
    log = _commits(p)
    assert all("b" not in c["rows"] for c in log[2:])     # unchanged: committed once


def test_commit_times_of_a_resumed_run_continue_the_earlier_sessions(tmp_path):
    """Protects RunFile._start: the commit clock of a resumed run continues from the last
    committed time (a run that had been going 1000 s does not restart at 0 s)."""
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    run.flush()
    run.close(complete=False)
    with h5py.File(p, "a") as f:
        n = int(f.attrs["committed"])
        f["_commits"][n - 1] = json.dumps({"t": 1000.0, "rows": {}})
    with RunFile(p, "test", mode="a") as run:
        run.flush()
    t = [c["t"] for c in _commits(p)]
    assert t[n - 1] == 1000.0 and all(1000.0 <= x < 1010.0 for x in t[n:])


def test_close_without_arguments_completes_the_run_and_write_units_default_to_empty(tmp_path):
    """Protects RunFile.close's default (complete=True) and write's default units ("")."""
    p = tmp_path / "run.h5"
    run = RunFile(p, "test")
    run.write("x", [1.0])
    run.close()
    with open_run(p) as f:
        assert f.attrs["complete"] and f["x"].attrs["units"] == ""
