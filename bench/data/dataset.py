"""Labelled samples from a DVS128 Gesture style directory.

Layout (the release's and the synthetic set's): ``userNN_<lighting>.aedat`` +
``userNN_<lighting>_labels.csv`` per recording, ``trials_to_train.txt`` and
``trials_to_test.txt`` listing the recordings of each split.

A :class:`Sample` holds the events of one labelled interval ``[start_us, end_us)`` in
dataset time (the recording's microsecond timestamps, not shifted); its label is the class
index 0..10 (the file's class minus one).

A label that reaches outside its recording's span ``[first event, last event]`` is clipped
to it (the sample holds the clipped slice and ``clipped=True``); a label wholly outside is
dropped.  Either is counted in one :class:`LabelClippedWarning` per recording, never fatal
to the split (issue 15 item 6).  ``snnbench data check`` lists each such label.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.aedat import DVS128_SENSOR, read_aedat
from bench.data.labels import labels_path_for, read_labels, read_trial_list
from bench.errors import DataFormatError, UsageError

SPLITS = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}


class LabelClippedWarning(UserWarning):
    """Labels of a recording reached outside it: clipped (or dropped when wholly outside)."""


def clip_interval(start_us: int, end_us: int, t_first: int, t_last: int) -> tuple[int, int] | None:
    """The label interval ``[start_us, end_us)`` clipped to a recording whose events span
    ``[t_first, t_last]`` us (i.e. to ``[t_first, t_last + 1)``); ``None`` when nothing of it
    lies inside the recording."""
    a, b = max(start_us, t_first), min(end_us, t_last + 1)
    return (a, b) if b > a else None


@dataclass
class Sample:
    events: np.ndarray  # EVENT_DTYPE, dataset time
    label: int  # 0..10
    source: str  # the .aedat file
    start_us: int
    end_us: int
    clipped: bool = False  # the label reached outside the recording; start/end are clipped

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us


def load_recording(
    aedat_path: str | os.PathLike,
    labels_path: str | os.PathLike | None = None,
    *,
    sensor: tuple[int, int] | None = DVS128_SENSOR,
) -> list[Sample]:
    """All labelled samples of one recording, in label-file order.

    A label reaching outside the recording's span [first event, last event] is clipped to
    it; one wholly outside is dropped; both are counted in one :class:`LabelClippedWarning`
    naming the labels file and lines.
    """
    aedat_path = Path(aedat_path)
    labels_path = Path(labels_path) if labels_path is not None else labels_path_for(aedat_path)
    if not labels_path.is_file():
        raise DataFormatError(f"{labels_path}: labels file not found (for recording {aedat_path})")
    labels = read_labels(labels_path)
    events = read_aedat(aedat_path, sensor=sensor)
    t = events["t"]
    if len(t) == 0:
        if len(labels):
            raise DataFormatError(f"{aedat_path}: recording has no polarity events but {labels_path} has labels")
        return []
    t_first, t_last = int(t[0]), int(t[-1])
    is_sorted = bool(np.all(t[1:] >= t[:-1]))
    if not is_sorted:
        t_first, t_last = int(t.min()), int(t.max())
    samples = []
    clipped_lines: list[int] = []
    dropped_lines: list[int] = []
    for i, (c, a, b) in enumerate(labels):
        a, b = int(a), int(b)
        span = clip_interval(a, b, t_first, t_last)
        if span is None:
            dropped_lines.append(i + 2)
            continue
        clipped = span != (a, b)
        if clipped:
            clipped_lines.append(i + 2)
        a, b = span
        if is_sorted:
            lo, hi = np.searchsorted(t, [a, b], side="left")
            ev = events[lo:hi]
        else:
            ev = events[(t >= a) & (t < b)]
        samples.append(Sample(events=ev, label=int(c) - 1, source=str(aedat_path), start_us=a, end_us=b,
                              clipped=clipped))
    if clipped_lines or dropped_lines:
        parts = []
        if clipped_lines:
            parts.append(f"{len(clipped_lines)} label(s) clipped to it (line(s) {_lines(clipped_lines)})")
        if dropped_lines:
            parts.append(f"{len(dropped_lines)} wholly outside it dropped (line(s) {_lines(dropped_lines)})")
        warnings.warn(
            f"{labels_path}: labels reach outside the recording {aedat_path.name} "
            f"[{t_first}, {t_last}] us: {'; '.join(parts)}",
            LabelClippedWarning, stacklevel=2,
        )
    return samples


def _lines(nums: list[int], limit: int = 10) -> str:
    head = ", ".join(str(n) for n in nums[:limit])
    return head + (f", ... ({len(nums) - limit} more)" if len(nums) > limit else "")


def split_files(data_dir: str | os.PathLike, split: str = "test") -> list[Path]:
    """The .aedat files of a split, as listed in trials_to_<split>.txt."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFormatError(f"{data_dir}: data directory not found")
    names = read_trial_list(data_dir / SPLITS[split])
    files = []
    for name in names:
        p = data_dir / name
        if not p.is_file():
            raise DataFormatError(f"{data_dir / SPLITS[split]}: listed recording {name} not found in {data_dir}")
        files.append(p)
    return files


def iter_samples(
    data_dir: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    *,
    sensor: tuple[int, int] | None = DVS128_SENSOR,
) -> Iterator[Sample]:
    """Yield the samples of a split recording by recording (each file read once)."""
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be >= 0, got {limit}")
    n = 0
    if limit == 0:
        return
    for f in split_files(data_dir, split):
        for s in load_recording(f, sensor=sensor):
            yield s
            n += 1
            if limit is not None and n >= limit:
                return


def load_split(
    data_dir: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    *,
    sensor: tuple[int, int] | None = DVS128_SENSOR,
) -> list[Sample]:
    """All samples of a split (at most ``limit``), in trial-list then label-file order."""
    return list(iter_samples(data_dir, split, limit, sensor=sensor))
