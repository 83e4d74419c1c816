"""Scoring classifier outputs: class per sample, accuracy, confusion matrix, the drop.

Decision rule (the reference's): the class is the output neuron with the most spikes;
ties go to the neuron whose first spike came earliest; remaining ties (including no spikes
at all) go to the lowest index.  This is the same rule as
:func:`bench.network.model.predict` (tested to agree).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def predict(out_spikes: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Class per sample from output spikes (B, T, K) (bool or 0/1).  Returns int64 (B,).

    Only the first ``n_classes`` neurons vote (a chip PE has 12 neurons; 11 are classes).
    """
    s = np.asarray(out_spikes)
    if s.ndim != 3:
        raise ValueError(f"output spikes must be (samples, steps, neurons), got shape {s.shape}")
    if n_classes is not None:
        s = s[:, :, :n_classes]
    s = s.astype(bool, copy=False)
    b, t, k = s.shape
    if k == 0:
        raise ValueError("no output neurons to score")
    counts = s.sum(axis=1, dtype=np.int64)
    fired = s.any(axis=1)
    first = np.where(fired, s.argmax(axis=1), t)
    key = counts * (t + 1) + (t - first)  # more spikes first, then earlier first spike
    return np.argmax(key, axis=1).astype(np.int64)  # argmax: lowest index on remaining ties


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64; row = true class, column = predicted class."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    p = np.asarray(predictions, dtype=np.int64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} predictions")
    for name, a in (("label", y), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} outside 0..{n_classes - 1}")
    return np.bincount(y * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@dataclass
class Score:
    """Accuracy figures of one set of predictions."""

    predictions: np.ndarray
    labels: np.ndarray
    n_classes: int
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.predictions = np.asarray(self.predictions, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.confusion = confusion_matrix(self.labels, self.predictions, self.n_classes)

    @property
    def samples(self) -> int:
        return int(self.labels.size)

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def accuracy(self) -> float:
        """Fraction correct (nan for no samples)."""
        return self.correct / self.samples if self.samples else float("nan")

    @property
    def per_class(self) -> np.ndarray:
        """Accuracy per true class (nan where a class has no samples)."""
        support = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.confusion) / np.maximum(support, 1), np.nan)

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "correct": self.correct, "accuracy": _f(self.accuracy),
                "per_class_accuracy": [_f(v) for v in self.per_class],
                "confusion": self.confusion.tolist()}


def score(out_spikes: np.ndarray, labels: np.ndarray, n_classes: int) -> Score:
    return Score(predict(out_spikes, n_classes), labels, n_classes)


@dataclass
class Comparison:
    """Software-only and chip accuracy side by side."""

    software: Score
    chip: Score

    @property
    def drop_points(self) -> float:
        """Software accuracy minus chip accuracy, in percentage points."""
        return 100.0 * (self.software.accuracy - self.chip.accuracy)

    @property
    def agreement(self) -> float:
        """Fraction of samples where chip and software predict the same class."""
        n = self.chip.samples
        return float(np.mean(self.chip.predictions == self.software.predictions)) if n else float("nan")

    def table(self, class_names: list[str] | None = None) -> str:
        """A plain-text side-by-side table (overall and per class)."""
        k = self.chip.n_classes
        names = class_names or [str(i) for i in range(k)]
        support = self.chip.confusion.sum(axis=1)
        w = max(5, max(len(n) for n in names))
        lines = [f"{'class':<{w}}  {'n':>5}  {'software':>8}  {'chip':>8}  {'drop pp':>8}"]
        for i in range(k):
            s, c = self.software.per_class[i], self.chip.per_class[i]
            lines.append(f"{names[i]:<{w}}  {support[i]:>5d}  {_pct(s):>8}  {_pct(c):>8}  {_pp(s, c):>8}")
        s, c = self.software.accuracy, self.chip.accuracy
        lines.append(f"{'all':<{w}}  {self.chip.samples:>5d}  {_pct(s):>8}  {_pct(c):>8}  {_pp(s, c):>8}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": _f(self.chip.accuracy), "software_accuracy": _f(self.software.accuracy),
                "drop_points": _f(self.drop_points), "agreement": _f(self.agreement),
                "per_class_accuracy": [_f(v) for v in self.chip.per_class],
                "software_per_class_accuracy": [_f(v) for v in self.software.per_class]}


def _f(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%" if np.isfinite(v) else "-"


def _pp(s: float, c: float) -> str:
    return f"{100 * (s - c):+.2f}" if np.isfinite(s) and np.isfinite(c) else "-"
