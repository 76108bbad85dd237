"""RQ3 — how many classification embeddings does a prediction rest on? (Fig 3)

Instance top-K: for instance n with reference class ``R`` (its prediction), sort
``CE[n, R, :]`` descending; n is *covered at K* when the sum of its top K ce exceeds the
strongest adversary's logit. Two readings:

- **bias-free** (the paper's: ``LG = Σ_h CE``, prediction ``argmax LG``): R is the argmax of
  the bias-free logits and n is covered when ``Σ top-K CE[n, R] > max_{c≠R} Σ_h CE[n, c, h]``.
  The claims use this one.
- **with bias** (the head's real decision): R is the argmax of the model's logits and n is
  covered when ``Σ top-K CE[n, R] + b_R > max_{c≠R} logit[n, c]``.

Class coverage groups instances by their R in the same reading. Every K in 1..H is
evaluated; a tie is never covered; at K = H every instance is covered in either reading
(the full sum is its reference logit), unless it ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fragility.analysis.ce import own_class_ce
from fragility.analysis.columns import class_columns, float_column, groups_row, int_column, one_row
from fragility.analysis.inputs import ClaimInputs, Measured, RunInputs, group_mean, point
from fragility.analysis.uncertainty import weighted_class_means
from fragility.catalog.claims import FEW_FEATURES_COVERAGE, FEW_FEATURES_SHARE
from fragility.embeddings.files import prepare_fe

THRESHOLDS = (0.94, 0.90)  # the paper's "over 94 %" (CE, K = 7) and "over 90 %" (focal)


def _adversary(scores: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The largest entry of every row of ``scores (N, C)`` outside column ``ref[n]``."""
    masked = np.array(scores, dtype=np.float64)
    masked[np.arange(len(ref)), ref] = -np.inf
    return masked.max(axis=1)


def reference_classes(
    fe: np.ndarray, W: np.ndarray, logits: np.ndarray, normed: bool = False, with_bias=False
) -> np.ndarray:
    """Every instance's reference class R (N,): the argmax of the bias-free logit (the
    paper's prediction), or ``with_bias`` of the model's own logits."""
    if with_bias:
        return np.argmax(np.asarray(logits, dtype=np.float64), axis=1)
    return np.argmax(prepare_fe(fe, normed) @ np.asarray(W, dtype=np.float64).T, axis=1)


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
    ref = reference_classes(fe, W, logits, normed, with_bias)
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


@dataclass
class CoverageResult:
    """RQ3 output, each array bias-free and ``*_with_bias``: ``class_ratio`` (C, len(ks)),
    ``overall_by_k`` (H,) coverage of all instances for K = 1..H; ``n_per_class`` (C,)
    predicted counts; ``n_changed`` instances whose predicted class the bias changes."""

    ks: tuple[int, ...]
    class_ratio: np.ndarray
    class_ratio_with_bias: np.ndarray
    n_per_class: np.ndarray
    n_per_class_with_bias: np.ndarray
    overall_by_k: np.ndarray
    overall_by_k_with_bias: np.ndarray
    n_changed: int

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
    """All RQ3 figures for one embedding set, in both readings."""
    logits = np.asarray(logits)
    n_classes, width = logits.shape[1], np.asarray(fe).shape[1]
    if any(k < 1 or k > width for k in ks):
        raise ValueError(f"every K must lie in 1..{width}, got {ks}")
    free_pred = reference_classes(fe, W, logits, normed)
    pred = reference_classes(fe, W, logits, normed, with_bias=True)
    free = topk_coverage_matrix(fe, W, bias, logits, normed)
    biased = topk_coverage_matrix(fe, W, bias, logits, normed, with_bias=True)
    return CoverageResult(
        ks=tuple(ks),
        class_ratio=class_topk_coverage(free, free_pred, n_classes, ks),
        class_ratio_with_bias=class_topk_coverage(biased, pred, n_classes, ks),
        n_per_class=np.bincount(free_pred, minlength=n_classes),
        n_per_class_with_bias=np.bincount(pred, minlength=n_classes),
        overall_by_k=free.mean(axis=0),
        overall_by_k_with_bias=biased.mean(axis=0),
        n_changed=int(np.sum(free_pred != pred)),
    )


# -- the claims of RQ3 (each measured per run by the bootstrap; see fragility.catalog.claims.CLAIMS) --


def _covered(run: RunInputs) -> np.ndarray:
    tr = run.train
    return topk_coverage_matrix(tr["fe"], run.W, run.bias, tr["logits"], run.normed)


def few_features_decide(data: ClaimInputs) -> Measured:
    """H/5 − the smallest K whose bias-free coverage of all training instances reaches 90 %,
    per replicate; a replicate where no K does counts K = H + 1."""
    run, w = data.run, data.train_w
    coverage = (w @ _covered(run).astype(np.float64)) / w.sum(axis=1, keepdims=True)  # (B, H)
    reached = coverage >= FEW_FEATURES_COVERAGE
    k = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, run.width + 1)
    bound = FEW_FEATURES_SHARE * run.width
    found = bool(reached[0].any())
    parts = {
        "k": int(k[0]) if found else None,
        "coverage": float(coverage[0, k[0] - 1]) if found else None,
        "width": run.width,
        "bound": bound,
    }
    return Measured(bound - k, parts)


def group_trend(run: RunInputs, weights: np.ndarray, k: int, groups) -> tuple[np.ndarray, ...]:
    """``(minority − majority, minority, majority)`` group mean class coverage ``(B,)`` at
    ``k``, classes by the paper's prediction, ``groups`` = (majority, minority) classes."""
    covered = _covered(run)[:, [k - 1]].astype(np.float64)
    ratio = weighted_class_means(weights, covered, run.paper_pred(), run.n_classes)[:, :, 0]
    majority, minority = groups
    low, high = group_mean(ratio, minority), group_mean(ratio, majority)
    return low - high, low, high


def _classes(group) -> str:
    return ",".join(str(int(c)) for c in group)


def minority_smaller_k(data: ClaimInputs) -> Measured:
    """Mean class coverage at the smallest configured K over the minority group minus the
    majority group's (classes never predicted in a replicate left out)."""
    run, k = data.run, min(data.ks)
    trend, minority, majority = group_trend(run, data.train_w, k, run.groups)
    changed = int(np.sum(run.paper_pred() != np.argmax(run.train["logits"], axis=1)))
    parts = {
        "k": k,
        "minority": point(minority),
        "majority": point(majority),
        "minority_group": _classes(run.groups[1]),
        "majority_group": _classes(run.groups[0]),
        "changed": changed,
        "n": len(run.train["label"]),
    }
    return Measured(trend, parts)


def fig3_trend(data: ClaimInputs) -> Measured:
    """The same trend on the imbalanced model minus on its balanced partner, both with the
    imbalanced split's groups; each model's training images resampled on their own."""
    run, k = data.run, min(data.ks)
    if data.partner is None:
        return Measured.not_measurable(data.partner_missing)
    trend = group_trend(run, data.train_w, k, run.groups)[0]
    partner = group_trend(data.partner, data.partner_train_w, k, run.groups)[0]
    parts = {"k": k, "trend": point(trend), "partner_trend": point(partner)}
    parts["partner"] = data.partner_name
    return Measured(trend - partner, parts)


# -- the per-run tables (fragility.catalog.outputs.RUN_TABLES["rq3"]) ----------------------


def _smallest_k_row(inputs: RunInputs, res) -> dict:
    """The smallest K covering each threshold of all training instances, bias-free (the
    claims' reading) and with the bias; ``few_features_bound`` = H/5, the claim's K << H."""
    row: dict = {
        "n_features": inputs.width,
        "n_instances": len(inputs.train["label"]),
        "few_features_bound": FEW_FEATURES_SHARE * inputs.width,
    }
    for suffix, with_bias in (("", False), ("_with_bias", True)):
        for threshold in THRESHOLDS:
            k = res.smallest_k(threshold, with_bias)
            pct = round(100 * threshold)
            row[f"smallest_k_{pct}{suffix}"] = k
            row[f"coverage_k_{pct}{suffix}"] = res.coverage_at(k, with_bias)
    return row


def run_tables(inputs: RunInputs, *, ks: Sequence[int], **_) -> dict[str, pa.Table]:
    W, bias, normed = inputs.W, inputs.bias, inputs.normed
    tr = inputs.train
    res = rq3_coverage(tr["fe"], W, bias, tr["logits"], normed, tuple(ks))
    n_classes, n_k = res.class_ratio.shape
    classes = np.repeat(np.arange(n_classes), n_k)
    cols = class_columns(inputs, classes)
    cols["n_pred"] = int_column(res.n_per_class[classes])
    cols["n_pred_with_bias"] = int_column(res.n_per_class_with_bias[classes])
    cols["k"] = int_column(np.tile(np.asarray(res.ks), n_classes))
    cols["coverage_ratio"] = float_column(res.class_ratio.ravel())
    cols["coverage_ratio_with_bias"] = float_column(res.class_ratio_with_bias.ravel())
    row = _smallest_k_row(inputs, res)
    # the paper's prediction ignores the bias: how many instances it moves to another class
    row["n_changed_by_bias"] = res.n_changed
    smallest = one_row(row, int_keys=tuple(k for k in row if k.startswith("smallest_k")))
    majority, minority = inputs.groups
    group_cols: dict[str, pa.Array] = {"k": int_column(np.asarray(res.ks))}
    for name, value in groups_row(inputs).items():
        group_cols[name] = pa.array([value] * n_k, type=pa.string())
    for suffix, ratio in (("", res.class_ratio), ("_with_bias", res.class_ratio_with_bias)):
        for name, group in (("majority", majority), ("minority", minority)):
            group_cols[f"coverage_{name}_group{suffix}"] = float_column(group_mean(ratio.T, group))
    return {
        "topk_coverage": pa.table(cols),
        "smallest_k": smallest,
        "group_coverage": pa.table(group_cols),
    }
