"""Uncertainty of every finding (docs/metrics-and-claims.md): bootstrap and
t-intervals, and the three-way verdict on a signed difference.

Two kinds of interval, never mixed silently:

- **over seeds**: a Student-t interval of the mean of per-seed values (n ≥ 2). It contains
  training randomness (initialisation, order, float kernels) as well as the test sample.
- **bootstrap**: a stratified bootstrap over the instances a statistic is measured on
  (per class, seeded). It contains only the sampling of those images: a single trained
  model is taken as fixed, so it is narrower than the seed-to-seed spread.

A bootstrap replicate is a vector of multiplicities ``w (N,)`` (how often each instance is
drawn), so a statistic that is a (weighted) mean per class is computed for all replicates at
once as a matrix product: ``weights (B, N) @ x (N, ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
N_BOOT = 1000
MIN_SEEDS_FOR_VERDICT = 3  # below this a verdict rests on the bootstrap over images

VERDICTS = ("holds", "fails", "inconclusive", "n/a")


@dataclass(frozen=True)
class Interval:
    """``estimate`` with its ``[low, high]`` interval, over ``n`` units of ``kind``."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    kind: str  # "t over seeds", "bootstrap over test images", ..., or "none"


# -- intervals -------------------------------------------------------------------------------


def t_interval(values: Sequence[float | None], confidence: float = CONFIDENCE) -> Interval:
    """Mean of the finite ``values`` with its Student-t interval (n ≥ 2; else no interval)."""
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(None, None, None, 0, "none")
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, None, None, 1, "none (1 seed)")
    from scipy.stats import t as student_t  # here: 0.7 s to import, and start-up needs none

    quantile = float(student_t.ppf(0.5 + confidence / 2, n - 1))
    half = quantile * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, f"t over {n} seeds")


def percentile_interval(
    replicates: np.ndarray, estimate: float | None, n: int, kind: str, confidence=CONFIDENCE
) -> Interval:
    """Percentile interval of bootstrap ``replicates`` (B,) around ``estimate``; replicates
    that are not finite (a class drawn out of a group) are left out, and with none left the
    estimate stands without an interval."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if estimate is None or not np.isfinite(estimate):
        return Interval(None, None, None, n, kind)
    if len(r) == 0:
        return Interval(float(estimate), None, None, n, kind)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(r, [alpha, 1 - alpha])
    return Interval(float(estimate), float(low), float(high), n, kind)


def bootstrap_note(kind: str, n_seeds: int) -> str:
    """The interval label of a verdict that rests on the bootstrap: what it leaves out."""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if kind.startswith("none"):  # nothing to resample: only seeds give an interval
        return f"{kind} ({seeds}; an interval needs {MIN_SEEDS_FOR_VERDICT} seeds)"
    return f"{kind} ({seeds}; training randomness not included)"


def combine_seeds(
    estimates: list[float | None], replicates: list[np.ndarray], kind: str
) -> Interval:
    """The interval of a difference measured on several seeds of one group: a t-interval
    over the seeds that measured it when there are at least
    :data:`~fragility.analysis.uncertainty.MIN_SEEDS_FOR_VERDICT`, else the percentile
    interval of the seeds' mean bootstrap replicate (replicate b of every seed averaged)."""
    measured = [i for i, e in enumerate(estimates) if e is not None and np.isfinite(e)]
    if len(measured) >= MIN_SEEDS_FOR_VERDICT:
        return t_interval([estimates[i] for i in measured])
    if not measured:
        return Interval(None, None, None, 0, "none")
    mean = float(np.mean([estimates[i] for i in measured]))
    stacked = np.vstack([replicates[i] for i in measured])
    return percentile_interval(
        stacked.mean(axis=0), mean, len(measured), bootstrap_note(kind, len(measured))
    )


# -- verdicts --------------------------------------------------------------------------------


def verdict(low: float | None, high: float | None, estimate: float | None = None) -> str:
    """The verdict on a claim stated as ``difference > 0``: *holds* when the whole interval
    lies above 0, *fails* when it lies wholly below, *inconclusive* when it straddles 0 (or
    touches it), *n/a* when nothing was measured. Without an interval (one seed and no
    bootstrap), a measured estimate is inconclusive: a single number is no evidence."""
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return "n/a" if estimate is None or not np.isfinite(estimate) else "inconclusive"
    if low > 0:
        return "holds"
    if high < 0:
        return "fails"
    return "inconclusive"


# -- the stratified bootstrap ----------------------------------------------------------------


def stratified_weights(
    labels: np.ndarray, n_boot: int, seed, observed_first: bool = False
) -> np.ndarray:
    """Bootstrap multiplicities ``(n_boot, N)`` float64: each replicate redraws, within every
    class of ``labels``, as many instances as the class has, with replacement. Seeded, so
    the same labels and seed give the same replicates on every machine. With
    ``observed_first`` a row of ones (the data as observed) comes first: ``(1 + n_boot, N)``."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    start = 1 if observed_first else 0
    weights = np.zeros((start + n_boot, len(labels)))
    weights[:start] = 1.0
    rows = np.arange(n_boot)[:, None]
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = len(members)
        # n draws with replacement per replicate, counted per (replicate, instance) at once
        draws = rng.integers(0, n, size=(n_boot, n)) + rows * n
        counts = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n)
        weights[start:, members] = counts
    return weights


def weighted_confusion(
    weights: np.ndarray, labels: np.ndarray, preds: np.ndarray, n_classes: int
) -> np.ndarray:
    """``(B, C, C)`` confusion matrices (rows true, columns predicted) under each replicate's
    multiplicities ``weights (B, N)``; ``weights`` of ones gives the plain counts."""
    codes = np.asarray(labels, dtype=np.int64) * n_classes + np.asarray(preds, dtype=np.int64)
    onehot = np.zeros((len(codes), n_classes * n_classes))
    onehot[np.arange(len(codes)), codes] = 1.0
    return (np.atleast_2d(weights) @ onehot).reshape(-1, n_classes, n_classes)


def recalls(confusion: np.ndarray) -> np.ndarray:
    """Per-class recall ``(B, C)`` of ``(B, C, C)`` confusions; NaN for an absent class."""
    support = confusion.sum(axis=2)
    diag = np.diagonal(confusion, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, diag / support, np.nan)


def confusion_metrics(confusion: np.ndarray, majority: int, minority: int) -> dict[str, np.ndarray]:
    """The headline metrics of every replicate, each ``(B,)``: ``bac``, ``macro_f1``,
    ``gmean``, ``accuracy``, ``minority_acc``, ``majority_acc`` — the definitions of
    :mod:`fragility.metrics`, batched."""
    rec = recalls(confusion)
    present = confusion.sum(axis=2) > 0
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    denom = confusion.sum(axis=2) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=np.float64), where=denom > 0)
    with np.errstate(divide="ignore"):
        log_rec = np.where(present, np.log(np.where(present, rec, 1.0)), 0.0)
    any_zero = np.any(present & (np.nan_to_num(rec, nan=1.0) == 0), axis=1)
    gmean = np.where(any_zero, 0.0, np.exp(log_rec.sum(axis=1) / present.sum(axis=1)))
    return {
        "bac": np.nanmean(rec, axis=1),
        "macro_f1": (f1 * present).sum(axis=1) / present.sum(axis=1),
        "gmean": gmean,
        "accuracy": tp.sum(axis=1) / confusion.sum(axis=(1, 2)),
        "minority_acc": rec[:, minority],
        "majority_acc": rec[:, majority],
    }


def weighted_class_means(
    weights: np.ndarray, x: np.ndarray, classes: np.ndarray, n_classes: int
) -> np.ndarray:
    """``(B, C, H)`` per-class means of ``x (N, H)`` under each replicate's multiplicities
    ``weights (B, N)``; NaN where a class has no weight. ``classes`` (N,) may hold -1 for
    instances that belong to no class (left out)."""
    x = np.asarray(x, dtype=np.float64)
    classes = np.asarray(classes, dtype=np.int64)
    weights = np.atleast_2d(weights)
    out = np.full((weights.shape[0], n_classes, x.shape[1]), np.nan)
    for c in range(n_classes):
        members = np.flatnonzero(classes == c)
        if len(members) == 0:
            continue
        w = weights[:, members]
        total = w.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, c] = np.where(total > 0, (w @ x[members]) / total, np.nan)
    return out
