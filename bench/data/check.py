"""Inspect a DVS128 Gesture release directory: what it holds and what is wrong with it.

Layout (the IBM DvsGesture release, and ``snnbench data synth``): ``userNN_<lighting>.aedat``
(AEDAT 3.1) + ``userNN_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``, class
1..11) per recording, and ``trials_to_train.txt`` / ``trials_to_test.txt`` listing the
recordings of each split, one ``.aedat`` file name a line.  Other files (README, LICENSE,
errata, gesture_mapping.csv, synth.json) are ignored.

:func:`scan_release` reads every recording and labels file once and returns a
:class:`ReleaseReport`: per recording its events, span, event rate and labels; per split the
per-class sample counts; and every problem found, each one line naming the file, where in
it (line, byte) and the value.  *Problems* make the set unusable as it stands (a loader would
fail or lose data): missing or unreadable files, bad lines, truncated or corrupted
recordings, events outside the sensor, labels wholly outside their recording, a recording
in both splits.  *Warnings* are what a loader tolerates: labels partly outside their
recording (clipped on load, see :mod:`bench.data.dataset`), unsorted timestamps, recordings
in no split, labels files without a recording, overlapping labels.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.aedat import DVS128_SENSOR, read_aedat
from bench.data.dataset import SPLITS, clip_interval
from bench.data.labels import CLASS_NAMES, N_CLASSES, labels_path_for, scan_labels, scan_trial_list
from bench.errors import DataFormatError

_NAME = re.compile(r"^user(\d+)_(.+)\.aedat$")
_LABELS_SUFFIX = "_labels.csv"


@dataclass(frozen=True)
class Finding:
    """One problem or warning: ``file`` (name inside the directory), ``where`` (``line N``,
    ``byte N`` or empty) and the message (naming the field and value)."""

    file: str
    where: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.where}: {self.message}" if self.where else f"{self.file}: {self.message}"


@dataclass
class RecordingInfo:
    """One recording: events, time span (us), event rate (events/s) and labels."""

    file: str
    subject: int | None = None
    lighting: str | None = None
    split: str | None = None  # "train", "test" or None (in no trial list)
    readable: bool = False
    events: int = 0
    on_fraction: float | None = None
    first_us: int | None = None
    last_us: int | None = None
    duration_s: float = 0.0
    event_rate_per_s: float | None = None
    labels: int = 0  # usable labels (inside the recording, possibly clipped)
    label_seconds: float = 0.0
    label_events: int = 0  # events inside the (clipped) labels
    per_class: list[int] = field(default_factory=lambda: [0] * N_CLASSES)


@dataclass
class ReleaseReport:
    directory: str
    recordings: list[RecordingInfo]
    trial_lists: dict[str, int | None]  # split -> entries (None: list missing/unreadable)
    problems: list[Finding]
    warnings: list[Finding]

    def split_summary(self, split: str) -> dict[str, Any]:
        recs = [r for r in self.recordings if r.split == split]
        per_class = [sum(r.per_class[k] for r in recs) for k in range(N_CLASSES)]
        ev = sum(r.events for r in recs)
        dur = sum(r.duration_s for r in recs)
        lev = sum(r.label_events for r in recs)
        lsec = sum(r.label_seconds for r in recs)
        return {
            "recordings": len(recs),
            "subjects": sorted({r.subject for r in recs if r.subject is not None}),
            "samples": sum(per_class),
            "per_class": dict(zip(CLASS_NAMES, per_class)),
            "events": ev,
            "recorded_s": round(dur, 3),
            "event_rate_per_s": round(ev / dur, 1) if dur > 0 else None,
            "labelled_s": round(lsec, 3),
            "labelled_event_rate_per_s": round(lev / lsec, 1) if lsec > 0 else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dir": self.directory,
            "ok": not self.problems,
            "recordings": len(self.recordings),
            "trial_lists": self.trial_lists,
            "splits": {s: self.split_summary(s) for s in SPLITS},
            "events": sum(r.events for r in self.recordings),
            "problems": [p.line() for p in self.problems],
            "warnings": [w.line() for w in self.warnings],
            "recording_details": [asdict(r) for r in self.recordings],
        }


def _strip_path(msg: str, path: Path) -> str:
    """A DataFormatError message without its leading ``<path>: ``."""
    for prefix in (f"{path}: ", f"{path.name}: "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def _where(msg: str) -> tuple[str, str]:
    """Split 'line N: rest' / '... at byte N ...' messages into (where, message)."""
    m = re.match(r"^(line \d+): (.*)$", msg)
    if m:
        return m.group(1), m.group(2)
    m = re.search(r"\bat byte (\d+)", msg)
    if m:
        return f"byte {m.group(1)}", msg
    return "", msg


def scan_release(
    data_dir: str | os.PathLike,
    *,
    sensor: tuple[int, int] | None = DVS128_SENSOR,
) -> ReleaseReport:
    """Read every trial list, recording and labels file of a release directory once and
    report what it holds and every problem found (see the module docstring).

    A directory that does not exist is a DataFormatError (nothing to report on)."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataFormatError(f"{d}: data directory not found" if not d.exists() else f"{d}: not a directory")
    problems: list[Finding] = []
    warns: list[Finding] = []

    # -- trial lists
    split_of: dict[str, str] = {}
    trial_lists: dict[str, int | None] = {}
    for split, list_name in SPLITS.items():
        lp = d / list_name
        try:
            names, bad = scan_trial_list(lp)
        except DataFormatError as exc:
            problems.append(Finding(list_name, "", _strip_path(str(exc), lp)))
            trial_lists[split] = None
            continue
        trial_lists[split] = len(names)
        for line, msg in bad:
            problems.append(Finding(list_name, f"line {line}", msg))
        seen: dict[str, int] = {}
        for line, name in names:
            if name in seen:
                problems.append(Finding(list_name, f"line {line}", f"recording {name} listed again (first on line {seen[name]})"))
                continue
            seen[name] = line
            if not (d / name).is_file():
                problems.append(Finding(list_name, f"line {line}", f"listed recording {name} not found in {d}"))
                continue
            other = split_of.get(name)
            if other is not None and other != split:
                problems.append(Finding(list_name, f"line {line}",
                                        f"recording {name} is in both splits ({SPLITS[other]} too)"))
                continue
            split_of[name] = split

    # -- recordings (every .aedat in the directory)
    recordings: list[RecordingInfo] = []
    for f in sorted(p for p in d.iterdir() if p.suffix == ".aedat" and p.is_file()):
        info = RecordingInfo(file=f.name, split=split_of.get(f.name))
        m = _NAME.match(f.name)
        if m:
            info.subject, info.lighting = int(m.group(1)), m.group(2)
        if info.split is None:
            warns.append(Finding(f.name, "", "recording is in no trial list (neither split uses it)"))
        _scan_recording(f, info, problems, warns, sensor)
        recordings.append(info)

    # -- labels files without a recording
    for lf in sorted(d.glob(f"*{_LABELS_SUFFIX}")):
        rec = lf.name[: -len(_LABELS_SUFFIX)] + ".aedat"
        if not (d / rec).is_file():
            warns.append(Finding(lf.name, "", f"labels file without a recording ({rec} not found)"))
    return ReleaseReport(str(d), recordings, trial_lists, problems, warns)


def _scan_recording(f: Path, info: RecordingInfo, problems: list[Finding], warns: list[Finding],
                    sensor: tuple[int, int] | None) -> None:
    """Fill ``info`` from the recording and its labels file; append what is wrong."""
    try:
        ev = read_aedat(f, sensor=sensor)
    except DataFormatError as exc:
        problems.append(Finding(f.name, *_where(_strip_path(str(exc), f))))
        ev = None
    except OSError as exc:
        problems.append(Finding(f.name, "", f"cannot read: {exc.strerror or exc}"))
        ev = None
    t = None
    if ev is not None:
        info.readable = True
        info.events = len(ev)
        if not len(ev):
            warns.append(Finding(f.name, "", "recording has no polarity events"))
        else:
            t = ev["t"]
            steps_back = int(np.count_nonzero(t[1:] < t[:-1]))
            if steps_back:
                warns.append(Finding(f.name, "", f"timestamps not sorted: {steps_back} step(s) back in time"))
                order = np.argsort(t, kind="stable")
                t = t[order]
            info.first_us, info.last_us = int(t[0]), int(t[-1])
            info.duration_s = (info.last_us - info.first_us) / 1e6
            info.on_fraction = round(float(np.count_nonzero(ev["p"])) / len(ev), 4)
            if info.duration_s > 0:
                info.event_rate_per_s = round(info.events / info.duration_s, 1)
    lp = labels_path_for(f)
    try:
        labels, label_lines, bad = scan_labels(lp)
    except DataFormatError as exc:
        problems.append(Finding(lp.name, "", _strip_path(str(exc), lp)))
        return
    for line, msg in bad:
        problems.append(Finding(lp.name, f"line {line}", msg))
    if ev is None:
        return
    _overlaps(labels, label_lines, lp.name, warns)
    if t is None:
        if len(labels):
            problems.append(Finding(lp.name, "", f"{len(labels)} label(s) but recording {f.name} has no polarity events"))
        return
    for (c, a, b), line in zip(labels, label_lines):
        a, b = int(a), int(b)
        where = f"line {line}"
        span = clip_interval(a, b, info.first_us, info.last_us)
        if span is None:
            problems.append(Finding(lp.name, where, f"label class {int(c)} interval [{a}, {b}) us wholly outside the "
                                                    f"recording {f.name} [{info.first_us}, {info.last_us}] us"))
            continue
        if span != (a, b):
            warns.append(Finding(lp.name, where, f"label class {int(c)} interval [{a}, {b}) us reaches outside the "
                                                 f"recording {f.name} [{info.first_us}, {info.last_us}] us: "
                                                 f"clipped to [{span[0]}, {span[1]}) on load"))
        lo, hi = np.searchsorted(t, span, side="left")
        info.labels += 1
        info.per_class[int(c) - 1] += 1
        info.label_seconds += (span[1] - span[0]) / 1e6
        info.label_events += int(hi - lo)
    info.label_seconds = round(info.label_seconds, 6)


def _overlaps(labels: np.ndarray, lines: list[int], name: str, warns: list[Finding]) -> None:
    """A warning for each label that starts before an earlier-starting one has ended (the
    events in the overlap would be in two samples)."""
    order = np.argsort(labels["start"], kind="stable")
    latest_end, latest_line = None, None
    for k in order.tolist():
        a, b = int(labels["start"][k]), int(labels["end"][k])
        if latest_end is not None and a < latest_end:
            warns.append(Finding(name, f"line {lines[k]}", f"label interval [{a}, {b}) us overlaps the label on "
                                                           f"line {latest_line} (ends at {latest_end} us)"))
        if latest_end is None or b > latest_end:
            latest_end, latest_line = b, lines[k]
