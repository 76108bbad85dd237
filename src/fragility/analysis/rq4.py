"""RQ4 — diversity of classification embeddings (Figs 4-6, Tables 3-4).

Class means use the *true* class: ``mean_ce[c] = mean over {n: y_n = c} of CE[n, c, :]``.
A logit share divides one ce by the instance's own logit; the paper's logit is bias-free
(``Σ_h CE``), the head's own adds the class's bias (``_with_bias`` in the tables).

The largest class-mean ce of a class grows as the class shrinks (the largest of 64 noisy
means), so wherever classes of different sizes are compared by it, every class is drawn down
to the smallest one's size (:func:`fragility.analysis.matching.matched_class_stat`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fragility.analysis.ce import class_means, own_class_ce, safe_ratio, top_n_per_row
from fragility.analysis.columns import one_row, ranked_table, roles_row, row_max
from fragility.analysis.inputs import (
    N_TOP,
    ClaimInputs,
    Measured,
    RunInputs,
    group_mean,
    log_ratio,
    point,
)
from fragility.analysis.matching import largest_entry, matched_class_stat, matched_class_stats
from fragility.analysis.uncertainty import weighted_class_means
from fragility.catalog.claims import MIN_RATIO


def class_mean_own_ce(
    fe: np.ndarray, W: np.ndarray, labels: np.ndarray, n_classes: int, normed: bool = False
) -> np.ndarray:
    """Class-mean own-row CE (C, H); NaN rows for classes without instances."""
    ce = own_class_ce(fe, W, labels, normed)
    return class_means(ce, labels, n_classes)[0]


def top_class_mean_ce(mean_ce: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Figs 4/5: the ``n`` largest class-mean ce per class, ``(values (C, n), idx (C, n))``."""
    return top_n_per_row(mean_ce, n)


def _majority_vs_others(per_class: np.ndarray, majority: int) -> dict[str, float]:
    others = np.delete(per_class, majority)
    maj = float(per_class[majority])
    oth = float(np.nanmean(others)) if np.any(~np.isnan(others)) else float("nan")
    return {"majority": maj, "others_mean": oth, "ratio": safe_ratio(oth, maj)}


def table3(mean_ce: np.ndarray, majority: int = 0) -> dict[str, float]:
    """Table 3 from the class-mean ce (C, H).

    ``majority`` = the majority class's largest class-mean ce; ``others_mean`` = the mean over
    the other classes of *their* largest class-mean ce; ``ratio = others_mean / majority``
    (paper: CelebA 1.4945 / 0.5897 = 2.53). Empty classes are ignored.
    """
    largest = np.array([np.nan if np.all(np.isnan(r)) else np.nanmax(r) for r in mean_ce])
    return _majority_vs_others(largest, majority)


def topk_logit_share(
    fe: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    normed: bool = False,
    k: int = 7,
    rank_by: str = "instance",
) -> tuple[np.ndarray, np.ndarray]:
    """Fig 6: mean share of the own-class logit contributed by each of the top-``k`` ce.

    For instance n of true class c the logit is ``LG = sum_h CE[n, c, h] + bias[c]`` and the
    share of ce ``h`` is ``CE[n, c, h] / LG``. With ``rank_by="instance"`` (default, the
    paper's instance top-K) position j is the instance's own j-th largest ce; with
    ``rank_by="class"`` it is the class's j-th largest class-mean ce identity. Shares are
    averaged over the class's instances; instances whose own logit is <= 0 have no
    meaningful share and are left out. Returns ``(shares (C, k), n_used (C,))``, NaN rows
    for classes with no usable instance.
    """
    labels = np.asarray(labels, dtype=np.int64)
    shares, usable = instance_logit_shares(fe, W, bias, labels, n_classes, normed, k, rank_by)
    return class_means(shares, labels, n_classes, mask=usable)


def instance_logit_shares(
    fe: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    normed: bool = False,
    k: int = 7,
    rank_by: str = "instance",
) -> tuple[np.ndarray, np.ndarray]:
    """Per instance, the share of its own-class logit from each of its top-``k`` ce:
    ``(shares (N, k), usable (N,))``, ``usable`` = own logit > 0 (see :func:`topk_logit_share`)."""
    labels = np.asarray(labels, dtype=np.int64)
    ce = own_class_ce(fe, W, labels, normed)
    logit = ce.sum(axis=1) + np.asarray(bias, dtype=np.float64)[labels]
    if rank_by == "instance":
        picked = -np.sort(-ce, axis=1)[:, :k]
    elif rank_by == "class":
        _, idx = top_n_per_row(class_means(ce, labels, n_classes)[0], k)
        picked = np.take_along_axis(ce, idx[labels], axis=1)
    else:
        raise ValueError(f"rank_by must be 'instance' or 'class', got {rank_by!r}")
    usable = logit > 0
    return picked / np.where(usable, logit, 1.0)[:, None], usable


def table4(shares: np.ndarray, majority: int = 0) -> dict[str, float]:
    """Table 4 from the mean shares (C, k): largest single share of the majority class, the
    mean of the other classes' largest shares, and ``ratio = others_mean / majority``."""
    largest = np.array([np.nan if np.all(np.isnan(r)) else np.nanmax(r) for r in shares])
    return _majority_vs_others(largest, majority)


# -- the claims of RQ4 (each measured per run by the bootstrap; see fragility.catalog.claims.CLAIMS) --


def _own_ce(run: RunInputs) -> np.ndarray:
    tr = run.train
    return own_class_ce(tr["fe"], run.W, tr["label"], run.normed)


def _labels(run: RunInputs) -> np.ndarray:
    return np.asarray(run.train["label"], dtype=np.int64)


def _smallest_class(run: RunInputs) -> dict[int, int]:
    """Every class with training images, drawn down to the smallest one's count."""
    counts = np.bincount(_labels(run), minlength=run.n_classes)
    size = int(counts[counts > 0].min())
    return {int(c): size for c in np.flatnonzero(counts)}


def largest_mean_ce(run: RunInputs, weights: np.ndarray, sizes=None) -> np.ndarray:
    """Each class's largest class-mean ce ``(B, C)`` on the training images, under each
    replicate ``weights (B, N)``; with ``sizes`` (class -> count), the mean over size-matched
    draws."""
    ce, labels = _own_ce(run), _labels(run)
    if sizes is None:
        return largest_entry(weighted_class_means(weights, ce, labels, run.n_classes))
    return matched_class_stat(weights, ce, labels, run.n_classes, sizes, largest_entry)


def others_to_majority(largest: np.ndarray, majority: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean of the other classes', the majority's)`` ``(B,)`` from ``largest (B, C)``."""
    others = np.delete(largest, majority, axis=1)
    counted = np.isfinite(others).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counted > 0, np.nansum(others, axis=1) / counted, np.nan)
    return mean, largest[:, majority]


def majority_ce_smaller(data: ClaimInputs) -> Measured:
    """Table 3: log(others' mean / the majority's largest class-mean ce) − log 2, every
    class drawn down to the smallest class's size (all images in the detail)."""
    run = data.run
    majority = run.roles[0]
    sizes = _smallest_class(run)
    others, major = others_to_majority(largest_mean_ce(run, data.train_w, sizes), majority)
    others_all, major_all = others_to_majority(largest_mean_ce(run, data.train_w[:1]), majority)
    parts = {
        "majority": point(major),
        "others": point(others),
        "ratio": point(others / major),
        "size": next(iter(sizes.values())),
        "majority_all": point(major_all),
        "others_all": point(others_all),
        "ratio_all": point(others_all / major_all),
    }
    return Measured(log_ratio(others, major) - np.log(MIN_RATIO), parts)


def largest_share(run: RunInputs, weights: np.ndarray, with_bias: bool = False, k: int = 7):
    """Each class's largest class-mean single-ce share of its own logit ``(B, C)`` (instances
    whose logit is positive), bias-free unless ``with_bias``."""
    tr = run.train
    bias = run.bias if with_bias else np.zeros(run.n_classes)
    shares, usable = instance_logit_shares(tr["fe"], run.W, bias, tr["label"], run.n_classes,
                                           run.normed, k=k)  # fmt: skip
    classes = np.where(usable, tr["label"], -1)
    return largest_entry(weighted_class_means(weights, shares, classes, run.n_classes))


def majority_share_smaller(data: ClaimInputs) -> Measured:
    """Table 4 on the paper's bias-free logit: log(others' mean / the majority's largest
    single-ce share) − log 2 (the head's own logit, with its bias, in the detail)."""
    run = data.run
    majority = run.roles[0]
    others, major = others_to_majority(largest_share(run, data.train_w, k=data.k_fe), majority)
    biased = others_to_majority(largest_share(run, data.train_w[:1], True, data.k_fe), majority)
    parts = {
        "majority": point(major),
        "others": point(others),
        "ratio": point(others / major),
        "ratio_with_bias": point(biased[0] / biased[1]),
    }
    return Measured(log_ratio(others, major) - np.log(MIN_RATIO), parts)


def _range(per_class: np.ndarray) -> str:
    values = per_class[np.isfinite(per_class)]
    return f"{values.min():.2f}-{values.max():.2f}" if values.size else "none"


def _share_of_logit(means: np.ndarray) -> np.ndarray:
    """A class's largest class-mean ce as a share of its class-mean bias-free logit."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return largest_entry(means) / means.sum(axis=-1)


def fig45_magnitude(data: ClaimInputs) -> Measured:
    """Figs 4/5: log(mean over classes of each class's largest class-mean ce, imbalanced /
    balanced partner), the partner's classes drawn down to the imbalanced counts. Beside it
    (extra ``fig45_magnitude_logit_normalised``) the same with each largest ce as a share of
    its class's logit, which takes out a difference in the two models' overall scale."""
    run, partner = data.run, data.partner
    if partner is None:
        return Measured.not_measurable(data.partner_missing)
    counts = np.bincount(_labels(run), minlength=run.n_classes)
    sizes = {int(c): int(counts[c]) for c in np.flatnonzero(counts)}
    own_means = weighted_class_means(data.train_w, _own_ce(run), _labels(run), run.n_classes)
    own, own_share = largest_entry(own_means), _share_of_logit(own_means)
    other, other_share = matched_class_stats(
        data.partner_train_w, _own_ce(partner), _labels(partner), partner.n_classes, sizes,
        (largest_entry, _share_of_logit),
    )  # fmt: skip
    mean = np.nanmean(own, axis=1)
    partner_mean = np.nanmean(other, axis=1)
    normalised = log_ratio(np.nanmean(own_share, axis=1), np.nanmean(other_share, axis=1))
    parts = {
        "imbalanced": point(mean),
        "balanced": point(partner_mean),
        "imbalanced_range": _range(own[0]),
        "balanced_range": _range(other[0]),
        "logit_normalised": point(normalised),
        "partner": data.partner_name,
    }
    extra = {"fig45_magnitude_logit_normalised": normalised}
    return Measured(log_ratio(mean, partner_mean), parts, extra)


def top_share(run: RunInputs, weights: np.ndarray) -> np.ndarray:
    """Each class's class-mean top-1 share of the bias-free logit ``(B, C)``: for every
    instance with a positive logit, its largest ce over its logit."""
    tr = run.train
    shares, usable = instance_logit_shares(tr["fe"], run.W, np.zeros(run.n_classes),
                                           tr["label"], run.n_classes, run.normed, k=1)  # fmt: skip
    classes = np.where(usable, tr["label"], -1)
    return weighted_class_means(weights, shares, classes, run.n_classes)[:, :, 0]


def fig6_shares(data: ClaimInputs) -> Measured:
    """Fig 6: log(mean over classes of the class-mean top-1 share of the bias-free logit,
    imbalanced / balanced partner)."""
    if data.partner is None:
        return Measured.not_measurable(data.partner_missing)
    own = top_share(data.run, data.train_w)
    other = top_share(data.partner, data.partner_train_w)
    mean, partner_mean = np.nanmean(own, axis=1), np.nanmean(other, axis=1)
    parts = {
        "imbalanced": point(mean),
        "balanced": point(partner_mean),
        "above_35": int(np.sum(own[0] > 0.35)),
        "balanced_above_26": int(np.sum(other[0] > 0.26)),
        "partner": data.partner_name,
    }
    return Measured(log_ratio(mean, partner_mean), parts)


def minority_ce_larger(data: ClaimInputs) -> Measured:
    """§5.4: log(minority group's mean largest class-mean ce / the other classes'), every
    class drawn down to the smallest class's size (all images in the detail)."""
    run = data.run
    minority = run.groups[1]
    others = np.setdiff1d(np.arange(run.n_classes), minority)
    matched = largest_mean_ce(run, data.train_w, _smallest_class(run))
    plain = largest_mean_ce(run, data.train_w[:1])
    low, rest = group_mean(matched, minority), group_mean(matched, others)
    parts = {
        "minority": point(low),
        "others": point(rest),
        "minority_all": point(group_mean(plain, minority)),
        "others_all": point(group_mean(plain, others)),
        "minority_group": ",".join(str(int(c)) for c in minority),
    }
    return Measured(log_ratio(low, rest), parts)


# -- the per-run tables (fragility.catalog.outputs.RUN_TABLES["rq4"]) ----------------------


def run_tables(inputs: RunInputs, *, k_fe: int, **_) -> dict[str, pa.Table]:
    W, bias, normed = inputs.W, inputs.bias, inputs.normed
    tr, n_classes = inputs.train, inputs.n_classes
    maj, mino = inputs.majority, inputs.minority
    mean_ce = class_mean_own_ce(tr["fe"], W, tr["label"], n_classes, normed)
    vals, idx = top_class_mean_ce(mean_ce, N_TOP)
    t3 = table3(mean_ce, maj)
    largest_ce = row_max(mean_ce)
    observed = inputs.observed(k_fe)
    matched = majority_ce_smaller(observed).parts
    groups = minority_ce_larger(observed).parts
    row3 = roles_row(inputs)
    row3.update(
        majority_largest_mean_ce=t3["majority"],
        minority_largest_mean_ce=float(largest_ce[mino]),
        others_mean_largest_mean_ce=t3["others_mean"],
        ratio_others_to_majority=t3["ratio"],
        # every class drawn down to the smallest one's size (the claim's reading)
        matched_size=matched["size"],
        majority_largest_mean_ce_matched=matched["majority"],
        others_mean_largest_mean_ce_matched=matched["others"],
        ratio_others_to_majority_matched=matched["ratio"],
        minority_group=groups["minority_group"],
        minority_group_largest_mean_ce=groups["minority_all"],
        other_classes_largest_mean_ce=groups["others_all"],
        minority_group_largest_mean_ce_matched=groups["minority"],
        other_classes_largest_mean_ce_matched=groups["others"],
    )
    # Fig 6 / Table 4 on the paper's bias-free logit, the head's own logit beside it
    free = np.zeros(n_classes)
    shares, n_used = topk_logit_share(tr["fe"], W, free, tr["label"], n_classes, normed, k=k_fe)
    biased, n_biased = topk_logit_share(tr["fe"], W, bias, tr["label"], n_classes, normed, k=k_fe)
    t4, t4_bias = table4(shares, maj), table4(biased, maj)
    row4 = roles_row(inputs)
    row4.update(
        k=k_fe,
        majority_largest_share=t4["majority"],
        minority_largest_share=float(row_max(shares)[mino]),
        others_mean_largest_share=t4["others_mean"],
        ratio_others_to_majority=t4["ratio"],
        majority_largest_share_with_bias=t4_bias["majority"],
        minority_largest_share_with_bias=float(row_max(biased)[mino]),
        others_mean_largest_share_with_bias=t4_bias["others_mean"],
        ratio_others_to_majority_with_bias=t4_bias["ratio"],
    )
    share_table = ranked_table(
        inputs, shares, "share", per_class={"n_used": n_used, "n_used_with_bias": n_biased},
        extra={"share_with_bias": biased},
    )  # fmt: skip
    return {
        "class_mean_ce_top10": ranked_table(inputs, vals, "mean_ce", idx),
        "table3": one_row(row3),
        "topk_logit_share": share_table,
        "table4": one_row(row4),
    }
