"""Time-collapsed baselines: how far a classifier gets without any timing.

Each sample becomes its pooled event counts summed over the network's window (the 2 x 20 x 20
= 800 input cells of the reference preprocessing, ON and OFF apart), normalised to sum 1 so
that overall event rate (lighting, distance) does not help. Two classifiers:

* nearest centroid (Euclidean distance to the per-class mean count image);
* multinomial logistic regression (standardised features, L2, full-batch gradient descent).

A set is "as hard as the real one" when these stay well below the reference network: the
classes that differ only in direction, phase or tempo (clockwise vs counter-clockwise, clap vs
arm roll) look the same here.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.data.preprocess import PreprocessConfig, to_counts


def collapsed_counts(samples: Sequence, cfg: PreprocessConfig | None = None) -> np.ndarray:
    """(n, n_inputs) pooled counts over each sample's window, each row normalised to sum 1."""
    cfg = cfg or PreprocessConfig()
    X = np.stack([to_counts(s, cfg).sum(0) for s in samples]).astype(np.float64)
    return X / np.maximum(X.sum(1, keepdims=True), 1.0)


def nearest_centroid(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, n_classes: int) -> np.ndarray:
    """Predicted labels of ``Xte``: the class whose training mean is nearest (Euclidean)."""
    cents = np.stack([Xtr[ytr == c].mean(0) if np.any(ytr == c) else np.full(Xtr.shape[1], np.inf)
                      for c in range(n_classes)])
    d = ((Xte[:, None, :] - cents[None]) ** 2).sum(-1)
    return np.nan_to_num(d, nan=np.inf).argmin(1)


def logistic_regression(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, n_classes: int, *,
                        iters: int = 400, lr: float = 0.5, lam: float = 1e-3) -> np.ndarray:
    """Predicted labels of ``Xte`` by softmax regression trained on ``(Xtr, ytr)``."""
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-9
    A, B = (Xtr - mu) / sd, (Xte - mu) / sd
    W = np.zeros((A.shape[1], n_classes))
    b = np.zeros(n_classes)
    Y = np.eye(n_classes)[ytr]
    for _ in range(iters):
        z = A @ W + b
        P = np.exp(z - z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        W -= lr * (A.T @ (P - Y) / len(A) + lam * W)
        b -= lr * (P - Y).mean(0)
    return (B @ W + b).argmax(1)


def collapsed_accuracy(train: Sequence, test: Sequence, n_classes: int = 11,
                       cfg: PreprocessConfig | None = None) -> dict[str, float]:
    """Test accuracy (fractions) of both time-collapsed classifiers."""
    Xtr, Xte = collapsed_counts(train, cfg), collapsed_counts(test, cfg)
    ytr = np.array([s.label for s in train])
    yte = np.array([s.label for s in test])
    return {
        "nearest_centroid": float((nearest_centroid(Xtr, ytr, Xte, n_classes) == yte).mean()),
        "logistic_regression": float((logistic_regression(Xtr, ytr, Xte, n_classes) == yte).mean()),
    }
