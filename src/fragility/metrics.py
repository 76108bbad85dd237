"""Classification metrics for imbalanced data, all computed from (labels, preds)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    flat = labels * n_classes + preds
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_accuracy(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class, ``(C,)``; NaN for a class with no instances."""
    cm = confusion_matrix(labels, preds, n_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> float:
    """BAC: mean of per-class recalls over the classes present in ``labels``."""
    return float(np.nanmean(per_class_accuracy(labels, preds, n_classes)))


def macro_f1(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over classes present in ``labels`` (F1 = 0 if never hit)."""
    cm = confusion_matrix(labels, preds, n_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[support > 0].mean())


def geometric_mean_recall(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> float:
    """Geometric mean of per-class recalls (0 as soon as one class is never recognised)."""
    recalls = per_class_accuracy(labels, preds, n_classes)
    recalls = recalls[~np.isnan(recalls)]
    if np.any(recalls == 0):
        return 0.0
    return float(np.exp(np.log(recalls).mean()))


def summary(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> dict:
    """The metrics every run and remedy reports, as plain Python values."""
    return {
        "bac": balanced_accuracy(labels, preds, n_classes),
        "macro_f1": macro_f1(labels, preds, n_classes),
        "gmean": geometric_mean_recall(labels, preds, n_classes),
        "accuracy": float(np.mean(np.asarray(labels) == np.asarray(preds))),
        "per_class_accuracy": [
            None if np.isnan(a) else float(a) for a in per_class_accuracy(labels, preds, n_classes)
        ],
    }
