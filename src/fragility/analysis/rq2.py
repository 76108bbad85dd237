"""RQ2 — generalisation per class: train vs test accuracy (Fig 2, Table 2)."""

from __future__ import annotations

import numpy as np

from fragility.analysis.inputs import ClaimInputs, Measured, majority_minority, point
from fragility.analysis.uncertainty import confusion_metrics, weighted_confusion
from fragility.catalog.claims import MIN_MINORITY_GAP
from fragility.metrics import per_class_accuracy


def per_class_train_test_accuracy(
    train_labels: np.ndarray,
    train_preds: np.ndarray,
    test_labels: np.ndarray,
    test_preds: np.ndarray,
    n_classes: int,
) -> dict[str, list]:
    """Fig 2 table: columns ``class``, ``n_train``, ``n_test``, ``train_acc``, ``test_acc``.

    Accuracies are per-class recalls in [0, 1] (NaN where a class has no instance).
    """
    train_acc = per_class_accuracy(train_labels, train_preds, n_classes)
    test_acc = per_class_accuracy(test_labels, test_preds, n_classes)
    return {
        "class": list(range(n_classes)),
        "n_train": np.bincount(np.asarray(train_labels), minlength=n_classes).tolist(),
        "n_test": np.bincount(np.asarray(test_labels), minlength=n_classes).tolist(),
        "train_acc": [float(a) for a in train_acc],
        "test_acc": [float(a) for a in test_acc],
    }


def table2(
    train_acc: np.ndarray,
    test_acc: np.ndarray,
    n_per_class: np.ndarray,
    description: str = "",
) -> dict[str, list]:
    """Table 2 row: train/test accuracy of the largest and the smallest class.

    ``train_acc``/``test_acc`` (C,) per-class accuracies, ``n_per_class`` (C,) training class
    sizes. Values are returned unchanged (fractions if given fractions).
    """
    train_acc = np.asarray(train_acc, dtype=np.float64)
    test_acc = np.asarray(test_acc, dtype=np.float64)
    majority, minority = majority_minority(n_per_class)
    return {
        "description": [description],
        "majority_class": [majority],
        "minority_class": [minority],
        "train_majority": [float(train_acc[majority])],
        "test_majority": [float(test_acc[majority])],
        "train_minority": [float(train_acc[minority])],
        "test_minority": [float(test_acc[minority])],
    }


def minority_overfits(data: ClaimInputs) -> Measured:
    """Table 2's claim: the minority's train-test gap is above the majority's and at least
    :data:`~fragility.catalog.claims.MIN_MINORITY_GAP` (both conditions, as the smaller of the two
    differences). Train accuracy is the run's own, held fixed; test accuracy is resampled."""
    view = data.view
    maj, mino = view.roles
    c = view.n_classes
    train = confusion_metrics(
        weighted_confusion(np.ones((1, len(view.train["label"]))), view.train["label"],
                           view.train["pred"], c), maj, mino,
    )  # fmt: skip
    test = confusion_metrics(
        weighted_confusion(data.test_w, view.test["label"], view.test["pred"], c), maj, mino
    )
    gap_min = train["minority_acc"][0] - test["minority_acc"]
    gap_maj = train["majority_acc"][0] - test["majority_acc"]
    parts = {
        "train_acc_minority": point(train["minority_acc"]),
        "test_acc_minority": point(test["minority_acc"]),
        "train_acc_majority": point(train["majority_acc"]),
        "test_acc_majority": point(test["majority_acc"]),
    }
    return Measured(np.minimum(gap_min - gap_maj, gap_min - MIN_MINORITY_GAP), parts)
