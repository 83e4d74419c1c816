"""Scoring details the mutation run found unchecked (issue 18): the class dtype, the
empty-output error, label dtypes narrower than the confusion index, the software per-class
record key and the table's column width.  Every expected value is written out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from bench.scoring import Comparison, confusion_matrix, predict, score


def test_predict_returns_int64_classes():
    """The docstring promises int64 classes (indices into class names, HDF5 int columns)."""
    s = np.zeros((2, 4, 3), bool)
    s[0, 1, 2] = True           # sample 0: only neuron 2 spikes -> class 2
    s[1, 0, 1] = True           # sample 1: only neuron 1 spikes -> class 1
    p = predict(s)
    assert p.dtype == np.int64
    assert p.tolist() == [2, 1]


def test_no_output_neurons_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="^no output neurons to score$"):
        predict(np.zeros((1, 4, 0), bool))


def test_narrow_label_dtypes_do_not_wrap_the_confusion_index():
    """Labels stored as uint8 (as a dataset file may hold them) with 20 classes: the flat
    index label*20 + prediction = 19*20 + 19 = 399 does not fit uint8; the matrix must still
    count that sample at [19, 19] (by hand), not at a wrapped-around cell."""
    labels = np.array([19, 0], dtype=np.uint8)
    preds = np.array([19, 0], dtype=np.uint8)
    m = confusion_matrix(labels, preds, 20)
    assert m[19, 19] == 1 and m[0, 0] == 1 and m.sum() == 2


def test_software_per_class_accuracy_is_in_the_record():
    y = np.array([0, 1, 1])
    sw = np.zeros((3, 2, 2), bool)
    sw[[0, 1, 2], 0, [0, 1, 0]] = True      # software: 0, 1, 0 -> class 0: 1/1, class 1: 1/2
    chip = np.zeros((3, 2, 2), bool)
    chip[[0, 1, 2], 0, [1, 1, 1]] = True    # chip: 1, 1, 1 -> class 0: 0/1, class 1: 2/2
    d = Comparison(score(sw, y, 2), score(chip, y, 2)).as_dict()
    assert d["software_per_class_accuracy"] == [1.0, 0.5]
    assert d["per_class_accuracy"] == [0.0, 1.0]


def test_table_class_column_is_as_wide_as_its_header():
    """Short class names: the first column is exactly as wide as the word 'class' (5), then
    two spaces -- so the header line starts 'class      n' (2 spaces + n right-aligned in 5)."""
    y = np.array([0])
    s = np.zeros((1, 2, 2), bool)
    s[0, 0, 0] = True
    lines = Comparison(score(s, y, 2), score(s, y, 2)).table(["a", "b"]).splitlines()
    assert lines[0].startswith("class      n  software")
    assert lines[1].startswith("a          1   100.00%")    # 100.00% right-aligned in 8


def test_whole_number_floats_count_as_class_indices():
    """Labels and predictions read back as floats (JSON, some HDF5 writers) are class indices:
    hand count: sample 0 true 1 predicted 1, sample 1 true 0 predicted 1."""
    from bench.scoring import Score

    m = confusion_matrix(np.array([1.0, 0.0]), np.array([1.0, 1.0]), 2)
    assert m.tolist() == [[0, 1], [0, 1]]
    s = Score([1.0, 1.0], [1.0, 0.0], 2)
    assert s.predictions.dtype == np.int64 and s.labels.dtype == np.int64
    assert s.correct == 1 and s.accuracy == 0.5
