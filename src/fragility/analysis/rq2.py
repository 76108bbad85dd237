"""RQ2 — generalisation per class: train vs test accuracy (Fig 2, Table 2)."""

from __future__ import annotations

import numpy as np

from fragility.metrics import per_class_accuracy


def majority_minority(n_per_class: np.ndarray) -> tuple[int, int]:
    """``(majority, minority)`` class indices from the training class sizes (C,).

    Majority = the largest class (first on ties), minority = the smallest class (*last* on
    ties), so a balanced run gives class 0 vs class C-1 as in the paper's Fig 2.
    """
    n = np.asarray(n_per_class)
    majority = int(np.argmax(n))
    minority = int(len(n) - 1 - np.argmin(n[::-1]))
    return majority, minority


GROUP_SHARE = 0.40  # the paper contrasts classes 0-3 with 6-9 of CIFAR-10's ten


def class_groups(n_per_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(majority group, minority group)``: class indices of the largest and the smallest
    40 % of the classes by training count, at least one class each (SPEC §4).

    Classes are ranked by count, largest first, ties in class order (as
    :func:`majority_minority`): on ten classes of an exp or step split that is 0-3 and 6-9,
    on two classes one each. Both groups are returned in class order.
    """
    n = np.asarray(n_per_class)
    size = max(1, int(np.floor(GROUP_SHARE * len(n) + 1e-9)))
    ranked = np.argsort(-n, kind="stable")
    return np.sort(ranked[:size]), np.sort(ranked[len(n) - size :])


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
