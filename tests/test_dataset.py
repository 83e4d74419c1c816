"""Labels, trial lists and labelled samples; bad-input errors name the file."""
from __future__ import annotations

import numpy as np
import pytest

from bench.data.aedat import EVENT_DTYPE, write_aedat
from bench.data.dataset import LabelClippedWarning, Sample, clip_interval, iter_samples, load_recording, load_split
from bench.data.labels import read_labels, read_trial_list, write_labels, write_trial_list
from bench.errors import DataFormatError, UsageError


def _events(t0=1_000_000, t1=9_000_000, n=8000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, 128, n)
    ev["y"] = rng.integers(0, 128, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(t0, t1, n))
    ev["t"][0], ev["t"][-1] = t0, t1
    return ev


def _dataset(tmp_path, labels_a=((1, 2_000_000, 3_600_000), (11, 4_000_000, 5_500_000)),
             labels_b=((4, 1_500_000, 3_000_000),)):
    d = tmp_path / "set"
    d.mkdir(parents=True)
    write_aedat(d / "user01_led.aedat", _events(seed=1))
    write_labels(d / "user01_led_labels.csv", labels_a)
    write_aedat(d / "user02_lab.aedat", _events(seed=2))
    write_labels(d / "user02_lab_labels.csv", labels_b)
    write_trial_list(d / "trials_to_train.txt", ["user01_led.aedat"])
    write_trial_list(d / "trials_to_test.txt", ["user02_lab.aedat"])
    return d


def test_load_split_samples(tmp_path):
    d = _dataset(tmp_path)
    train = load_split(d, "train")
    assert [s.label for s in train] == [0, 10]
    s = train[0]
    assert isinstance(s, Sample) and s.start_us == 2_000_000 and s.end_us == 3_600_000
    assert s.source.endswith("user01_led.aedat")
    assert s.events.dtype == EVENT_DTYPE
    assert s.events["t"].min() >= 2_000_000 and s.events["t"].max() < 3_600_000
    full = _events(seed=1)
    assert len(s.events) == np.count_nonzero((full["t"] >= 2_000_000) & (full["t"] < 3_600_000))
    test = load_split(d)  # default split: test
    assert [x.label for x in test] == [3]
    assert len(load_split(d, "train", limit=1)) == 1
    assert load_split(d, "train", limit=0) == []
    assert len(list(iter_samples(d, "train"))) == 2


def test_missing_labels_file(tmp_path):
    d = _dataset(tmp_path)
    (d / "user02_lab_labels.csv").unlink()
    with pytest.raises(DataFormatError, match="user02_lab_labels.csv.*not found"):
        load_split(d, "test")


def test_label_partly_outside_recording_is_clipped_with_a_warning(tmp_path):
    # recording user02_lab spans [1_000_000, 9_000_000] us (first and last event, see _events)
    d = _dataset(tmp_path, labels_b=((4, 8_500_000, 9_900_000), (2, 3_000_000, 4_000_000),
                                     (7, 400_000, 2_000_000)))
    with pytest.warns(LabelClippedWarning) as rec:
        test = load_split(d, "test")
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "user02_lab_labels.csv" in msg and "2 label(s) clipped" in msg and "line(s) 2, 4" in msg
    assert [s.label for s in test] == [3, 1, 6]
    full = _events(seed=2)
    t = full["t"]
    late, mid, early = test
    assert (late.start_us, late.end_us, late.clipped) == (8_500_000, 9_000_001, True)
    assert len(late.events) == np.count_nonzero(t >= 8_500_000)  # includes the last event
    assert late.events["t"].max() == 9_000_000
    assert (mid.start_us, mid.end_us, mid.clipped) == (3_000_000, 4_000_000, False)
    assert (early.start_us, early.end_us, early.clipped) == (1_000_000, 2_000_000, True)
    assert len(early.events) == np.count_nonzero(t < 2_000_000)
    assert load_split(d, "train")  # the other split is untouched and warns nothing


def test_label_wholly_outside_recording_is_dropped_with_a_warning(tmp_path):
    d = _dataset(tmp_path, labels_b=((4, 10, 500_000), (5, 2_000_000, 3_000_000), (6, 9_000_001, 9_500_000)))
    with pytest.warns(LabelClippedWarning, match=r"2 wholly outside it dropped \(line\(s\) 2, 4\)"):
        test = load_split(d, "test")
    assert [s.label for s in test] == [4]


def test_clip_interval():
    assert clip_interval(5, 10, 0, 100) == (5, 10)
    assert clip_interval(0, 10, 3, 100) == (3, 10)
    assert clip_interval(90, 200, 3, 100) == (90, 101)
    assert clip_interval(101, 200, 3, 100) is None
    assert clip_interval(0, 3, 3, 100) is None
    assert clip_interval(0, 4, 3, 100) == (3, 4)


def test_corrupted_event_header_in_split(tmp_path):
    d = _dataset(tmp_path)
    f = d / "user02_lab.aedat"
    f.write_bytes(b"#!AER-DAT3.1\r\n#x\r\nbroken" + f.read_bytes()[40:])
    with pytest.raises(DataFormatError, match=r"user02_lab\.aedat.*byte 18"):
        load_split(d, "test")


def test_wrong_sensor_size_in_split(tmp_path):
    d = _dataset(tmp_path)
    ev = _events(seed=2)
    ev["x"][100] = 300
    write_aedat(d / "user02_lab.aedat", ev)
    with pytest.raises(DataFormatError, match=r"user02_lab\.aedat.*byte \d+.*x=300.*128x128"):
        load_split(d, "test")


@pytest.mark.parametrize(
    "text, match",
    [
        ("class,start,end\n1,1,2\n", "line 1"),
        ("class,startTime_usec,endTime_usec\n12,1,2\n", "line 2: class 12"),
        ("class,startTime_usec,endTime_usec\n1,1,2\n3,5,5\n", "line 3: bad interval"),
        ("class,startTime_usec,endTime_usec\n1,a,2\n", "line 2: non-integer"),
        ("class,startTime_usec,endTime_usec\n1,2\n", "line 2: expected 3 fields"),
    ],
)
def test_bad_labels(tmp_path, text, match):
    f = tmp_path / "x_labels.csv"
    f.write_text(text)
    with pytest.raises(DataFormatError, match=match) as e:
        read_labels(f)
    assert "x_labels.csv" in str(e.value)


def test_labels_crlf_and_trailing_lines(tmp_path):
    f = tmp_path / "y_labels.csv"
    f.write_bytes(b"class,startTime_usec,endTime_usec\r\n1,80048239,85092709\r\n2,89431170,95231007\r\n\r\n")
    lab = read_labels(f)
    assert lab["cls"].tolist() == [1, 2] and lab["start"].tolist() == [80048239, 89431170]


def test_trial_lists(tmp_path):
    f = tmp_path / "trials_to_test.txt"
    f.write_text("user24_fluorescent.aedat\nuser24_led.aedat\n\n")
    assert read_trial_list(f) == ["user24_fluorescent.aedat", "user24_led.aedat"]
    f.write_text("user24_fluorescent.aedat\nrandom text\n")
    with pytest.raises(DataFormatError, match="trials_to_test.txt: line 2"):
        read_trial_list(f)


def test_missing_trial_list_recording_and_bad_split(tmp_path):
    d = _dataset(tmp_path)
    with pytest.raises(UsageError, match="unknown split"):
        load_split(d, "valid")
    (d / "user01_led.aedat").unlink()
    with pytest.raises(DataFormatError, match="trials_to_train.txt: listed recording user01_led.aedat not found"):
        load_split(d, "train")
    (d / "trials_to_test.txt").unlink()
    with pytest.raises(DataFormatError, match="trials_to_test.txt: trial list not found"):
        load_split(d, "test")
    with pytest.raises(DataFormatError, match="data directory not found"):
        load_split(tmp_path / "nothing")


def test_load_recording_explicit_labels(tmp_path):
    d = _dataset(tmp_path)
    s = load_recording(d / "user01_led.aedat", d / "user02_lab_labels.csv")
    assert [x.label for x in s] == [3]
