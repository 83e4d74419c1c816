import numpy as np
import pytest

from bench.network.model import predict as model_predict
from bench.scoring import Comparison, confusion_matrix, predict, score


def _spikes(trains, t=10):
    s = np.zeros((1, t, len(trains)), bool)
    for k, steps in enumerate(trains):
        s[0, steps, k] = True
    return s


def test_most_spikes_wins():
    assert predict(_spikes([[1], [2, 3, 4], [5, 6]]))[0] == 1


def test_tie_goes_to_earliest_first_spike():
    assert predict(_spikes([[5, 6], [2, 9], [7]]))[0] == 1
    assert predict(_spikes([[3, 4], [3, 9], [0]]))[0] == 0  # same first spike: lowest index
    assert predict(_spikes([[], [], []]))[0] == 0


def test_n_classes_ignores_spare_neuron():
    s = _spikes([[1], [2], [1, 2, 3]])
    assert predict(s)[0] == 2
    assert predict(s, n_classes=2)[0] == 0


def test_agrees_with_network_model_rule():
    rng = np.random.default_rng(1)
    s = rng.random((500, 20, 11)) < 0.05
    np.testing.assert_array_equal(predict(s), model_predict(s))


def test_confusion_and_accuracy():
    y = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    from bench.scoring import Score
    sc = Score(p, y, 4)
    assert sc.accuracy == pytest.approx(4 / 6)
    pc = sc.per_class
    assert pc[:3].tolist() == pytest.approx([0.5, 1.0, 2 / 3]) and np.isnan(pc[3])
    assert sc.as_dict()["per_class_accuracy"][3] is None


def test_comparison_drop():
    y = np.arange(10) % 2
    sw = np.zeros((10, 5, 2), bool)
    sw[np.arange(10), 0, y] = True
    ch = sw.copy()
    ch[:3] = False  # three samples -> class 0
    cmp = Comparison(score(sw, y, 2), score(ch, y, 2))
    assert cmp.software.accuracy == 1.0
    wrong = int(np.sum(y[:3] != 0))
    assert cmp.chip.accuracy == pytest.approx(1 - wrong / 10)
    assert cmp.drop_points == pytest.approx(100 * wrong / 10)
    assert "all" in cmp.table()
    d = cmp.as_dict()
    assert set(d) >= {"accuracy", "software_accuracy", "drop_points"}


def test_bad_inputs():
    with pytest.raises(ValueError):
        confusion_matrix([0, 5], [0, 1], 3)
    with pytest.raises(ValueError):
        predict(np.zeros((3, 4)))
