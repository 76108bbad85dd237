"""RQ3 — how many classification embeddings does a prediction rest on? (Fig 3)

Instance top-K: for instance n with reference class ``R`` (its prediction, the argmax of the
model's logits), sort ``CE[n, R, :]`` descending; n is *covered at K* when the sum of its top
K ce exceeds the strongest adversary's logit. Two readings of "logit":

- **bias-free** (the paper's, §3.1: ``LG = Σ_h CE``): ``Σ top-K CE[n, R] > max_{c≠R} Σ_h
  CE[n, c, h]``. The claims use this one.
- **with bias** (the head's real decision): ``Σ top-K CE[n, R] + b_R > max_{c≠R} logit[n, c]``.

Every K in 1..H is evaluated; a tie is never covered. With the bias K = H covers every
instance whose logit beats the others (the full sum is the logit); bias-free, an instance that
the bias decided is covered at no K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fragility.analysis.embeddings import own_class_ce, prepare_fe

THRESHOLDS = (0.94, 0.90)  # the paper's "over 94 %" (CE, K = 7) and "over 90 %" (focal)


def _adversary(scores: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The largest entry of every row of ``scores (N, C)`` outside column ``ref[n]``."""
    masked = np.array(scores, dtype=np.float64)
    masked[np.arange(len(ref)), ref] = -np.inf
    return masked.max(axis=1)


def topk_coverage_matrix(
    fe: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    logits: np.ndarray,
    normed: bool = False,
    with_bias: bool = False,
) -> np.ndarray:
    """Covered flags (N, H): column ``K-1`` says whether instance n is covered at K, bias-free
    (default) or ``with_bias`` (see the module docstring)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError("logits must be (N, C) with C >= 2")
    ref = np.argmax(logits, axis=1)
    ce = own_class_ce(fe, W, ref, normed)
    partial = np.cumsum(-np.sort(-ce, axis=1), axis=1)
    if with_bias:
        partial = partial + np.asarray(bias, dtype=np.float64)[ref][:, None]
        return partial > _adversary(logits, ref)[:, None]
    bias_free = prepare_fe(fe, normed) @ np.asarray(W, dtype=np.float64).T
    return partial > _adversary(bias_free, ref)[:, None]


def class_topk_coverage(
    covered: np.ndarray,
    preds: np.ndarray,
    n_classes: int,
    ks: tuple[int, ...] = (2, 3, 5, 7),
) -> np.ndarray:
    """Class top-K coverage ratio (C, len(ks)): share of covered instances per *predicted*
    class; NaN for a class nothing is predicted as."""
    preds = np.asarray(preds, dtype=np.int64)
    cols = covered[:, [k - 1 for k in ks]].astype(np.float64)
    counts = np.bincount(preds, minlength=n_classes)
    hits = np.stack(
        [np.bincount(preds, weights=cols[:, j], minlength=n_classes) for j in range(len(ks))],
        axis=1,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, None] > 0, hits / counts[:, None], np.nan)


def smallest_k(covered: np.ndarray, threshold: float = 0.94) -> int | None:
    """Smallest K whose coverage over all instances is >= ``threshold``; None if none."""
    return smallest_k_of(covered.mean(axis=0), threshold)


def smallest_k_of(overall_by_k: np.ndarray, threshold: float) -> int | None:
    """Smallest K (1-based) whose entry of ``overall_by_k (H,)`` is >= ``threshold``."""
    hit = np.nonzero(np.asarray(overall_by_k) >= threshold)[0]
    return int(hit[0]) + 1 if hit.size else None


def group_mean(per_class: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Mean over the classes of ``group`` of ``per_class (..., C)``, classes that are NaN
    (never predicted) left out; NaN when none is measured."""
    part = np.asarray(per_class, dtype=np.float64)[..., np.asarray(group, dtype=np.int64)]
    counted = np.isfinite(part).sum(axis=-1)
    total = np.where(np.isfinite(part), part, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / counted, np.nan)


@dataclass
class CoverageResult:
    """RQ3 output, each array bias-free and ``*_with_bias``: ``class_ratio`` (C, len(ks)),
    ``overall_by_k`` (H,) coverage of all instances for K = 1..H; ``n_per_class`` (C,)
    predicted counts."""

    ks: tuple[int, ...]
    class_ratio: np.ndarray
    class_ratio_with_bias: np.ndarray
    n_per_class: np.ndarray
    overall_by_k: np.ndarray
    overall_by_k_with_bias: np.ndarray

    def smallest_k(self, threshold: float, with_bias: bool = False) -> int | None:
        """Smallest K covering ``threshold`` of all instances (None: no K does)."""
        overall = self.overall_by_k_with_bias if with_bias else self.overall_by_k
        return smallest_k_of(overall, threshold)

    def coverage_at(self, k: int | None, with_bias: bool = False) -> float | None:
        overall = self.overall_by_k_with_bias if with_bias else self.overall_by_k
        return None if k is None else float(overall[k - 1])


def rq3_coverage(
    fe: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    logits: np.ndarray,
    normed: bool = False,
    ks: tuple[int, ...] = (2, 3, 5, 7),
) -> CoverageResult:
    """All RQ3 figures for one embedding set; classes are the argmax of ``logits``."""
    logits = np.asarray(logits)
    n_classes, width = logits.shape[1], np.asarray(fe).shape[1]
    if any(k < 1 or k > width for k in ks):
        raise ValueError(f"every K must lie in 1..{width}, got {ks}")
    preds = np.argmax(logits, axis=1)
    free = topk_coverage_matrix(fe, W, bias, logits, normed)
    biased = topk_coverage_matrix(fe, W, bias, logits, normed, with_bias=True)
    return CoverageResult(
        ks=tuple(ks),
        class_ratio=class_topk_coverage(free, preds, n_classes, ks),
        class_ratio_with_bias=class_topk_coverage(biased, preds, n_classes, ks),
        n_per_class=np.bincount(preds, minlength=n_classes),
        overall_by_k=free.mean(axis=0),
        overall_by_k_with_bias=biased.mean(axis=0),
    )
