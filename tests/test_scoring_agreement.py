"""Scoring on a hand-built case: accuracy, per-class accuracy, confusion, drop and agreement
of chip vs software, every figure counted by hand below."""
from __future__ import annotations

import numpy as np
import pytest

from bench.scoring import Comparison, score

#            sample: 0  1  2  3  4  5  6  7
LABELS = np.array([0, 0, 1, 1, 2, 2, 2, 0])
SOFTWARE = np.array([0, 1, 1, 1, 2, 0, 2, 0])   # right: 0 2 3 4 6 7      -> 6/8
CHIP = np.array([0, 1, 2, 1, 2, 1, 2, 0])       # right: 0 3 4 6 7        -> 5/8
# same class on both: 0 1 3 4 6 7 -> 6/8 (sample 1: both wrong, but they agree)


def _spikes(pred: np.ndarray, k: int = 3) -> np.ndarray:
    s = np.zeros((pred.size, 10, k), bool)
    s[np.arange(pred.size), 2, pred] = True          # one spike on the predicted neuron
    return s


def test_agreement_drop_and_accuracy_on_a_hand_built_confusion_case():
    """Protects Comparison.agreement (inverted, it survived the old suite) and the drop."""
    cmp = Comparison(score(_spikes(SOFTWARE), LABELS, 3), score(_spikes(CHIP), LABELS, 3))
    assert cmp.software.accuracy == 6 / 8
    assert cmp.chip.accuracy == 5 / 8
    assert cmp.agreement == 6 / 8
    assert cmp.drop_points == pytest.approx(12.5)
    assert cmp.chip.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 1, 2]]
    assert cmp.software.confusion.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert cmp.chip.per_class.tolist() == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert cmp.software.per_class.tolist() == pytest.approx([2 / 3, 1.0, 2 / 3])
    d = cmp.as_dict()
    assert (d["accuracy"], d["software_accuracy"], d["agreement"]) == (0.625, 0.75, 0.75)
    assert d["drop_points"] == pytest.approx(12.5)
    lines = cmp.table(["a", "b", "c"]).splitlines()
    assert lines[2].split() == ["b", "2", "100.00%", "50.00%", "+50.00"]
    assert lines[-1].split() == ["all", "8", "75.00%", "62.50%", "+12.50"]


def test_agreement_is_one_for_identical_and_zero_for_disjoint_predictions():
    y = np.array([0, 1, 2, 0])
    same = Comparison(score(_spikes(y), y, 3), score(_spikes(y), y, 3))
    other = Comparison(score(_spikes(y), y, 3), score(_spikes((y + 1) % 3), y, 3))
    assert same.agreement == 1.0 and same.drop_points == 0.0
    assert other.agreement == 0.0 and other.chip.accuracy == 0.0 and other.drop_points == 100.0


def test_no_samples_give_no_figures():
    empty = np.zeros(0, np.int64)
    cmp = Comparison(score(np.zeros((0, 5, 3), bool), empty, 3), score(np.zeros((0, 5, 3), bool), empty, 3))
    d = cmp.as_dict()
    assert d["accuracy"] is None and d["agreement"] is None and d["drop_points"] is None


def test_table_header_and_a_class_only_one_side_has():
    """The table names its columns, and a per-class drop needs both figures ("-" otherwise)."""
    sw = score(_spikes(np.array([0, 1, 2])), np.array([0, 1, 2]), 3)
    chip = score(_spikes(np.array([0, 1])), np.array([0, 1]), 3)      # no sample of class 2
    lines = Comparison(sw, chip).table().splitlines()
    assert lines[0].split() == ["class", "n", "software", "chip", "drop", "pp"]
    assert lines[3].split() == ["2", "0", "100.00%", "-", "-"]


@pytest.mark.parametrize("labels, preds, what", [([0, 3], [0, 1], "label"), ([0, 1], [3, 0], "prediction"),
                                                 ([-1, 0], [0, 0], "label")])
def test_labels_and_predictions_outside_the_classes_are_refused(labels, preds, what):
    from bench.scoring import confusion_matrix

    with pytest.raises(ValueError, match=f"^{what} outside 0..2$"):
        confusion_matrix(np.array(labels), np.array(preds), 3)
    assert confusion_matrix(np.array([2]), np.array([2]), 3)[2, 2] == 1     # n_classes - 1 is fine


def test_score_record_by_hand():
    s = score(_spikes(CHIP), LABELS, 3)
    d = s.as_dict()
    assert d == {"samples": 8, "correct": 5, "accuracy": 0.625,
                 "per_class_accuracy": pytest.approx([2 / 3, 0.5, 2 / 3]),
                 "confusion": [[2, 1, 0], [0, 1, 1], [0, 1, 2]]}


def test_labels_and_predictions_must_pair_up():
    from bench.scoring import confusion_matrix

    with pytest.raises(ValueError, match="^3 labels but 2 predictions$"):
        confusion_matrix(np.array([0, 1, 2]), np.array([0, 1]), 3)
