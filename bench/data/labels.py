"""DVS128 Gesture label files and train/test trial lists.

``userNN_<lighting>_labels.csv``: header ``class,startTime_usec,endTime_usec``, then one row
per gesture: class 1..11, start and end in microseconds of the recording's timestamps.
``trials_to_train.txt`` / ``trials_to_test.txt``: one ``.aedat`` file name per line.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.errors import DataFormatError

CLASS_NAMES: tuple[str, ...] = (
    "hand_clap",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)
N_CLASSES = len(CLASS_NAMES)
LABELS_HEADER = "class,startTime_usec,endTime_usec"
LABEL_DTYPE = np.dtype([("cls", "<i4"), ("start", "<i8"), ("end", "<i8")])


def labels_path_for(aedat_path: str | os.PathLike) -> Path:
    p = Path(aedat_path)
    return p.with_name(p.stem + "_labels.csv")


def _label_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: labels file not found") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: labels file is a directory") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: labels file is not text (byte {exc.start})") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read labels file: {exc.strerror or exc}") from None


def scan_labels(
    path: str | os.PathLike, *, n_classes: int = N_CLASSES
) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Parse a labels CSV, collecting every bad line instead of stopping at the first.

    Returns (the good rows as LABEL_DTYPE with ``cls`` as in the file, 1..n_classes;
    the line number of each good row; [(line number, problem), ...]).  A missing or
    non-text file raises DataFormatError.
    """
    path = Path(path)
    lines = _label_text(path).splitlines()
    problems: list[tuple[int, str]] = []
    if not lines or lines[0].strip().replace(" ", "") != LABELS_HEADER:
        first = lines[0].strip() if lines else ""
        problems.append((1, f"expected header '{LABELS_HEADER}', found {first!r}"))
        return np.zeros(0, dtype=LABEL_DTYPE), [], problems
    rows = []
    row_lines: list[int] = []
    for i, line in enumerate(lines[1:], start=2):
        s = line.strip()
        if not s:
            continue
        parts = [q.strip() for q in s.split(",")]
        if len(parts) != 3:
            problems.append((i, f"expected 3 fields class,start,end, found {s!r}"))
            continue
        try:
            c, a, b = (int(q) for q in parts)
        except ValueError:
            problems.append((i, f"non-integer field in {s!r}"))
            continue
        if not 1 <= c <= n_classes:
            problems.append((i, f"class {c} outside 1..{n_classes}"))
        elif a < 0 or b <= a:
            problems.append((i, f"bad interval start={a} end={b} (need 0 <= start < end)"))
        else:
            rows.append((c, a, b))
            row_lines.append(i)
    return np.array(rows, dtype=LABEL_DTYPE), row_lines, problems


def read_labels(path: str | os.PathLike, *, n_classes: int = N_CLASSES) -> np.ndarray:
    """Read a labels CSV into a LABEL_DTYPE array (``cls`` as in the file: 1..n_classes).

    The first bad line is a DataFormatError naming the file and line."""
    rows, _, problems = scan_labels(path, n_classes=n_classes)
    if problems:
        line, msg = problems[0]
        raise DataFormatError(f"{path}: line {line}: {msg}")
    return rows


def write_labels(path: str | os.PathLike, labels) -> Path:
    """Write (class, start_us, end_us) rows as a labels CSV (CRLF-free, header included)."""
    path = Path(path)
    out = [LABELS_HEADER]
    for c, a, b in labels:
        out.append(f"{int(c)},{int(a)},{int(b)}")
    path.write_text("\n".join(out) + "\n", encoding="ascii")
    return path


def scan_trial_list(path: str | os.PathLike) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Parse a trials_to_{train,test}.txt file, collecting every bad line.

    Returns ([(line number, .aedat file name), ...], [(line number, problem), ...]).
    A missing or non-text file raises DataFormatError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: trial list not found") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: trial list is a directory") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: trial list is not text (byte {exc.start})") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read trial list: {exc.strerror or exc}") from None
    names: list[tuple[int, str]] = []
    problems: list[tuple[int, str]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if not s.endswith(".aedat") or "/" in s or "\\" in s:
            problems.append((i, f"expected a '.aedat' file name, found {s!r}"))
        else:
            names.append((i, s))
    return names, problems


def read_trial_list(path: str | os.PathLike) -> list[str]:
    """Read a trials_to_{train,test}.txt file: the .aedat file names, in order.

    The first bad line is a DataFormatError naming the file and line."""
    names, problems = scan_trial_list(path)
    if problems:
        line, msg = problems[0]
        raise DataFormatError(f"{path}: line {line}: {msg}")
    return [n for _, n in names]


def write_trial_list(path: str | os.PathLike, names: list[str]) -> Path:
    path = Path(path)
    path.write_text("".join(n + "\n" for n in names), encoding="ascii")
    return path
