"""Classification embeddings (CE) and small helpers shared by the RQ analyses.

Shapes: ``fe`` (N, H) feature embeddings, ``W`` (C, H) classifier weights, ``bias`` (C,),
``logits`` (N, C). For a normed (cosine, LDAM) classifier the classification embeddings use
``fe' = fe / ||fe||`` and ``W`` already carries the scale, so that in both cases
``sum_h CE[n, c, h] + bias[c] == logits[n, c]``.
"""

from __future__ import annotations

import numpy as np

# fe' has one definition, next to the file format it reads
from fragility.embeddings.files import prepare_fe


def classification_embeddings(fe: np.ndarray, W: np.ndarray, normed: bool = False) -> np.ndarray:
    """Full CE tensor (N, C, H): ``CE[n, c, h] = fe'[n, h] * W[c, h]``.

    Memory is N*C*H floats; prefer :func:`own_class_ce` when one row per instance suffices.
    """
    fe2 = prepare_fe(fe, normed)
    W = np.asarray(W, dtype=np.float64)
    return fe2[:, None, :] * W[None, :, :]


def own_class_ce(
    fe: np.ndarray, W: np.ndarray, classes: np.ndarray, normed: bool = False
) -> np.ndarray:
    """One CE row per instance (N, H): ``CE[n, classes[n], :]`` without the (N, C, H) tensor."""
    fe2 = prepare_fe(fe, normed)
    W = np.asarray(W, dtype=np.float64)
    return fe2 * W[np.asarray(classes, dtype=np.int64)]


def reference_and_alternative(
    logits: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(R, A, LG_R, LG_A)``, each (N,).

    ``R`` = argmax of the logits (the reference / predicted class; first index on ties),
    ``A`` = index of the largest *other* logit (the strongest adversary class).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError("logits must be (N, C) with C >= 2")
    rows = np.arange(logits.shape[0])
    ref = np.argmax(logits, axis=1)
    masked = logits.copy()
    masked[rows, ref] = -np.inf
    alt = np.argmax(masked, axis=1)
    return ref, alt, logits[rows, ref], logits[rows, alt]


def top_n_per_row(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest entries of every row: ``(vals (R, n), idx (R, n))``, largest first.

    Ties go to the lower index. Rows made of NaN (e.g. an empty class) give NaN values and
    index -1.
    """
    values = np.asarray(values, dtype=np.float64)
    n = min(n, values.shape[1])
    nan_rows = np.all(np.isnan(values), axis=1)
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), axis=1, kind="stable")[:, :n]
    vals = np.take_along_axis(values, order, axis=1)
    order = np.where(nan_rows[:, None], -1, order)
    vals = np.where(nan_rows[:, None], np.nan, vals)
    return vals, order


def class_means(
    x: np.ndarray, classes: np.ndarray, n_classes: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean rows ``(means (C, H), counts (C,))``; NaN rows for empty classes.

    ``mask`` (N,) optionally restricts which instances count.
    """
    x = np.asarray(x, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64)
    if mask is not None:
        x, classes = x[np.asarray(mask, dtype=bool)], classes[np.asarray(mask, dtype=bool)]
    counts = np.bincount(classes, minlength=n_classes)
    onehot = np.zeros((n_classes, x.shape[0]))
    onehot[classes, np.arange(x.shape[0])] = 1.0
    sums = onehot @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    means[counts == 0] = np.nan
    return means, counts


def safe_ratio(num: float, den: float) -> float:
    """``num / den`` as float; NaN when ``den`` is 0 or either side is NaN."""
    if den == 0 or np.isnan(num) or np.isnan(den):
        return float("nan")
    return float(num / den)
