"""``snnbench data info`` / ``data check`` on the synthetic release and on broken copies of it
(issue 15 item 6): each problem one line naming file, line/byte and value; ``check`` exits 2.

Expected counts come from the generator's manifest (synth.json) and from reading the CSV
files with the csv module here, not from bench.data.check.
"""
from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys

import pytest

from bench.cli import main
from bench.data.aedat import read_aedat
from bench.data.labels import CLASS_NAMES
from tests.strict_json import loads_strict

SPLIT_FILES = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    d = tmp_path_factory.mktemp("release") / "DvsGesture"
    # the stylised kind: the same release layout as the realistic one, in about a second
    assert main(["data", "synth", "--kind", "stylised", "--out", str(d), "--seed", "3", "--per-class", "4",
                 "--subjects", "2", "--json"]) == 0
    return d


@pytest.fixture
def copy(release, tmp_path):
    d = tmp_path / "DvsGesture"
    shutil.copytree(release, d)
    return d


def run(capsys, *argv):
    rc = main(["data", *argv, "--json"])
    out, err = capsys.readouterr()
    return rc, json.loads(out), err


def _expected_per_class(d):
    out = {}
    for split, name in SPLIT_FILES.items():
        counts = dict.fromkeys(CLASS_NAMES, 0)
        for rec in (d / name).read_text().split():
            with open(d / rec.replace(".aedat", "_labels.csv"), newline="") as f:
                for row in csv.DictReader(f):
                    counts[CLASS_NAMES[int(row["class"]) - 1]] += 1
        out[split] = counts
    return out


def _packet_starts(path):
    """Byte offsets of every packet header, walked per the AEDAT 3.1 spec (28-byte headers)."""
    blob = path.read_bytes()
    off = blob.index(b"#!END-HEADER\r\n") + 14
    starts = []
    while off < len(blob):
        starts.append(off)
        _t, _s, size, _o, _v, cap, _n, _va = struct.unpack_from("<hhiiiiii", blob, off)
        off += 28 + cap * size
    return starts


def test_info_on_the_synthetic_release(release, capsys):
    rc, res, _ = run(capsys, "info", str(release))
    manifest = json.loads((release / "synth.json").read_text())
    assert rc == 0 and res["ok"] is True and res["problems"] == [] and res["warnings"] == []
    assert res["recordings"] == len(manifest["recordings"])
    assert res["events"] == manifest["events"]
    assert res["splits"]["train"]["samples"] == manifest["train"]
    assert res["splits"]["test"]["samples"] == manifest["test"]
    expected = _expected_per_class(release)
    assert res["splits"]["train"]["per_class"] == expected["train"]
    assert res["splits"]["test"]["per_class"] == expected["test"]
    assert res["splits"]["train"]["subjects"] == manifest["train_subjects"]
    by_file = {r["file"]: r for r in res["recording_details"]}
    for r in manifest["recordings"]:
        got = by_file[r["file"]]
        assert got["events"] == r["events"] and got["labels"] == r["samples"]
        t = read_aedat(release / r["file"])["t"]
        assert (got["first_us"], got["last_us"]) == (int(t.min()), int(t.max()))
        # event rate = events / (last - first event time), reported to 0.1 event/s
        assert got["event_rate_per_s"] == pytest.approx(r["events"] / ((t.max() - t.min()) / 1e6), abs=0.051)


def test_check_passes_on_the_synthetic_release(release, capsys):
    rc, res, _ = run(capsys, "check", str(release))
    assert rc == 0 and res["ok"] is True and res["problems"] == []


def test_check_lists_every_problem_of_a_broken_copy(copy, capsys):
    recs = sorted(p.name for p in copy.glob("*.aedat"))
    test_list = (copy / "trials_to_test.txt").read_text().split()
    # 1. missing labels file
    (copy / recs[0].replace(".aedat", "_labels.csv")).unlink()
    # 2. bad trial-list line (line 2 of the test list)
    (copy / "trials_to_test.txt").write_text(f"{test_list[0]}\nrandom text\n" + "".join(f"{n}\n" for n in test_list[1:]))
    # 3. truncated recording: cut inside its last packet
    trunc = copy / recs[1]
    last = _packet_starts(trunc)[-1]
    trunc.write_bytes(trunc.read_bytes()[: last + 28 + 10])
    # 4. unreadable header
    hdr = copy / recs[2]
    hdr.write_bytes(b"#!AER-DAT2.0\r\n" + hdr.read_bytes()[14:])
    # 5. a label wholly outside its recording, and a bad class, in the labels of recs[3]
    lab = copy / recs[3].replace(".aedat", "_labels.csv")
    lines = lab.read_text().splitlines()
    lines[2] = "3,999000000000,999000000100"
    lines.append("12,1,2")
    lab.write_text("\n".join(lines) + "\n")

    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 2 and res["ok"] is False and res["exit_code"] == 2
    probs = res["problems"]
    expected = [
        f"{recs[0].replace('.aedat', '_labels.csv')}: labels file not found",
        "trials_to_test.txt: line 2: expected a '.aedat' file name, found 'random text'",
        f"{recs[1]}: byte {last}: truncated packet at byte {last}",
        f"{recs[2]}: byte 0: corrupted header at byte 0: expected '#!AER-DAT3.1', found b'#!AER-DAT2.0",
        f"{lab.name}: line 3: label class 3 interval [999000000000, 999000000100) us wholly outside",
        f"{lab.name}: line {len(lines)}: class 12 outside 1..11",
    ]
    for want in expected:
        assert sum(p.startswith(want) for p in probs) == 1, (want, probs)
    assert len(probs) == len(expected), probs

    # human form: one line per problem, same exit code
    assert main(["data", "check", str(copy)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("problem: ") for line in out) == len(expected)
    # info reports the same problems but exits 0
    rc, info, _ = run(capsys, "info", str(copy))
    assert rc == 0 and info["problems"] == probs


@pytest.mark.parametrize("what", ["missing labels", "bad trial list", "truncated recording"])
def test_each_must_hold_breakage_alone_fails_the_check(copy, capsys, what):
    rec = sorted((copy / "trials_to_train.txt").read_text().split())[0]
    if what == "missing labels":
        (copy / rec.replace(".aedat", "_labels.csv")).unlink()
        want = f"{rec.replace('.aedat', '_labels.csv')}: labels file not found"
    elif what == "bad trial list":
        with open(copy / "trials_to_train.txt", "a") as f:
            f.write("user99_nowhere.aedat\n")
        n = len((copy / "trials_to_train.txt").read_text().splitlines())
        want = f"trials_to_train.txt: line {n}: listed recording user99_nowhere.aedat not found"
    else:
        f = copy / rec
        f.write_bytes(f.read_bytes()[:-1])
        last = _last_start_of_untruncated(copy, rec)
        want = f"{rec}: byte {last}: truncated packet at byte {last}"
    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 2
    assert len(res["problems"]) == 1 and res["problems"][0].startswith(want), res["problems"]


def _last_start_of_untruncated(copy, rec):
    blob = copy.joinpath(rec).read_bytes() + b"\0"  # restore the cut byte to walk the headers
    tmp = copy / "_walk.bin"
    tmp.write_bytes(blob)
    try:
        return _packet_starts(tmp)[-1]
    finally:
        tmp.unlink()


def test_label_partly_outside_is_a_warning_not_a_problem(copy, capsys):
    rec = sorted(copy.glob("*.aedat"))[0]
    lab = copy / rec.name.replace(".aedat", "_labels.csv")
    lines = lab.read_text().splitlines()
    c, a, _b = lines[-1].split(",")
    lines[-1] = f"{c},{a},999000000000"
    lab.write_text("\n".join(lines) + "\n")
    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 0 and res["problems"] == []
    assert len(res["warnings"]) == 1
    w = res["warnings"][0]
    assert w.startswith(f"{lab.name}: line {len(lines)}: label class {c} interval [{a}, 999000000000) us reaches outside")
    assert "clipped to" in w


def test_split_overlap_duplicates_and_orphans(copy, capsys):
    train = (copy / "trials_to_train.txt").read_text().split()
    test = (copy / "trials_to_test.txt").read_text().split()
    (copy / "trials_to_test.txt").write_text("".join(f"{n}\n" for n in test + [train[0], test[0]]))
    (copy / "trials_to_train.txt").write_text("".join(f"{n}\n" for n in train[1:]))
    (copy / "user77_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n")
    rc, res, _ = run(capsys, "check", str(copy))
    n = len(test)
    assert rc == 2
    assert res["problems"] == [f"trials_to_test.txt: line {n + 2}: recording {test[0]} listed again (first on line 1)"]
    assert f"{train[0]}: recording is in no trial list (neither split uses it)" not in res["warnings"]
    assert "user77_led_labels.csv: labels file without a recording (user77_led.aedat not found)" in res["warnings"]
    # train[0] only in the test list now: in the test split, no warning
    rc, info, _ = run(capsys, "info", str(copy))
    assert info["splits"]["test"]["recordings"] == n + 1
    # a recording in both lists is a problem
    (copy / "trials_to_train.txt").write_text("".join(f"{n}\n" for n in train))
    rc, res, _ = run(capsys, "check", str(copy))
    assert f"trials_to_test.txt: line {n + 1}: recording {train[0]} is in both splits (trials_to_train.txt too)" \
        in res["problems"]


def test_missing_trial_list_and_missing_directory(copy, capsys, tmp_path):
    (copy / "trials_to_train.txt").unlink()
    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 2 and "trials_to_train.txt: trial list not found" in res["problems"]
    assert res["trial_lists"]["train"] is None
    rc = main(["data", "check", str(tmp_path / "nowhere"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1 and "data directory not found" in err


def test_check_subprocess_exit_code_and_one_json_object(copy):
    (copy / "trials_to_test.txt").write_text("not a file name\n")
    p = subprocess.run([sys.executable, "-m", "bench.cli", "data", "check", str(copy), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    res = loads_strict(p.stdout)
    assert "trials_to_test.txt: line 1: expected a '.aedat' file name, found 'not a file name'" in res["problems"]


def test_unreadable_files_are_problems_not_crashes(copy, capsys):
    rec = sorted(copy.glob("*.aedat"))[0]
    lab = copy / rec.name.replace(".aedat", "_labels.csv")
    lab.write_bytes(b"class,startTime_usec,endTime_usec\n1,\xff\xfe,3\n")
    (copy / "trials_to_train.txt").unlink()
    (copy / "trials_to_train.txt").mkdir()
    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 2
    assert f"{lab.name}: labels file is not text (byte 36)" in res["problems"]
    assert "trials_to_train.txt: trial list is a directory" in res["problems"]


def test_overlapping_labels_are_a_warning(copy, capsys):
    rec = sorted(copy.glob("*.aedat"))[0]
    lab = copy / rec.name.replace(".aedat", "_labels.csv")
    rows = [line.split(",") for line in lab.read_text().splitlines()[1:]]
    a2, b2 = int(rows[1][1]), int(rows[1][2])
    rows[2][1] = str(b2 - 1000)  # line 4 starts 1 ms before line 3 ends
    lab.write_text("class,startTime_usec,endTime_usec\n" + "".join(",".join(r) + "\n" for r in rows))
    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 0
    assert res["warnings"] == [f"{lab.name}: line 4: label interval [{b2 - 1000}, {rows[2][2]}) us overlaps the label "
                               f"on line 3 (ends at {b2} us)"]
    assert a2 < b2


def test_empty_recording(copy, capsys):
    rec = sorted(copy.glob("*.aedat"))[0]
    rec.write_bytes(b"#!AER-DAT3.1\r\n#!END-HEADER\r\n")
    rc, res, _ = run(capsys, "check", str(copy))
    assert rc == 2
    assert f"{rec.name}: recording has no polarity events" in res["warnings"]
    n = len(rec.with_name(rec.stem + "_labels.csv").read_text().splitlines()) - 1
    assert res["problems"] == [f"{rec.stem}_labels.csv: {n} label(s) but recording {rec.name} has no polarity events"]
