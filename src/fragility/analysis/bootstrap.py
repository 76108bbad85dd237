"""One run's headline numbers and claim statistics with a stratified bootstrap (SPEC §4).

Each of the paper's claims (:data:`fragility.catalog.CLAIMS`) is a signed difference that is
positive when the claim holds; a claim that joins two conditions ("imbalanced < retrained <
balanced") takes the smaller of its two differences, so it is positive exactly when both
hold. Logits are the paper's bias-free ``LG = Σ_h CE`` (§3.1). The majority and minority
*groups* are the largest and the smallest 40 % of the classes by training count, "majority"
and "minority" alone the largest and the smallest class. The differences, on the run's files:

================================  ===============================================  =========
claim                             difference                                       resampled
================================  ===============================================  =========
``bac_order``                     min(retrained − imbalanced, balanced −           test
                                  retrained) BAC (the first without a balanced run)
``minority_overfits``             min(minority gap − majority gap, minority gap −  test
                                  0.10); gap = train − test accuracy
``few_features_decide``           H/5 − smallest K whose top-K ce cover 90 % of    train
                                  the instances (H + 1 when no K does)
``minority_smaller_k``            minority- − majority-group mean class coverage   train
                                  at the smallest configured K
``majority_ce_smaller``           log(others' mean / majority largest class-mean   train
                                  ce) − log 2 (Table 3)
``majority_share_smaller``        log(others' mean / majority largest logit        train
                                  share) − log 2 (Table 4)
``majority_weights_larger``       majority − minority sum of the ten largest |W|   none
``ce_far_above_weights``             log(largest class-mean ce / largest |W|) − log 2  train
``minority_features_frequent``    minority- − majority-group share of instances    train
                                  holding the class's most frequent top-K feature
``majority_needs_more_members``   majority − minority top-K members needed to      train
                                  cover every instance
``tp_closer_than_fp``             FB(FP) − FB(TP subsampled to the FP size)        test
``identity_overlap_ce`` / ``_fe``  overlap(train, TP) − overlap(train, FP) of the   test
                                  class top-10 CE / FE identities
================================  ===============================================  =========

"Resampled" names the instances the bootstrap redraws (per class): the test images for the
statistics of test predictions, the training images for those measured on the training
subset (RQ3-RQ6). The other side is held fixed, and so is the trained model: the interval
says how much the number moves with the images, not with training randomness. The weight
sums of RQ5 depend on no image: they have no bootstrap interval (``none``), and a verdict on
them needs seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fragility.analysis.embeddings import class_means, own_class_ce, top_n_per_row
from fragility.analysis.rq2 import class_groups, majority_minority
from fragility.analysis.rq3 import group_mean, topk_coverage_matrix
from fragility.analysis.rq4 import instance_logit_shares
from fragility.analysis.rq6 import instance_topk_fe, topk_indicator
from fragility.analysis.rq7 import at_class_top, control_subsets, matched_gap
from fragility.analysis.tables import N_TOP  # the per-run tables' own
from fragility.analysis.uncertainty import (
    N_BOOT,
    confusion_metrics,
    percentile_interval,
    stratified_weights,
    weighted_class_means,
    weighted_confusion,
)
from fragility.catalog import (
    CLAIMS,
    FAR_LARGER,
    FEW_FEATURES_COVERAGE,
    FEW_FEATURES_SHARE,
    MIN_MINORITY_GAP,
    MIN_RATIO,
    N_CONTROL_DRAWS,
)

CLAIM_NAMES = tuple(CLAIMS)
HEADLINE = ("bac", "macro_f1", "gmean", "accuracy", "minority_acc", "majority_acc")
KIND = {
    "test": "bootstrap over test images",
    "train": "bootstrap over training images",
    "model": "none: a property of the trained weights, no image to resample",
}


@dataclass
class ModelView:
    """What the statistics read of one model: ``train``/``test`` embedding dicts
    (:func:`fragility.embeddings.read_embeddings`), the classifier ``W (C, H)``, ``bias
    (C,)``, ``normed``, and the training class sizes ``counts (C,)``."""

    train: dict
    test: dict
    W: np.ndarray
    bias: np.ndarray
    normed: bool
    counts: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.W.shape[0])

    @property
    def width(self) -> int:
        return int(self.W.shape[1])

    @property
    def roles(self) -> tuple[int, int]:
        """``(majority, minority)`` as every per-run table names them (rq2.majority_minority)."""
        return majority_minority(self.counts)

    @property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """The majority and minority groups (rq2.class_groups)."""
        return class_groups(self.counts)


def _split(values: np.ndarray) -> tuple[float | None, np.ndarray]:
    estimate = float(values[0])
    return (estimate if np.isfinite(estimate) else None), np.asarray(values[1:], dtype=float)


def headline_statistics(view: ModelView, test_w: np.ndarray) -> dict[str, np.ndarray]:
    """BAC, macro-F1, G-mean, accuracy, minority and majority test accuracy under each row
    of ``test_w`` (R, N_test)."""
    maj, mino = view.roles
    conf = weighted_confusion(test_w, view.test["label"], view.test["pred"], view.n_classes)
    return confusion_metrics(conf, maj, mino)


def bac_order(
    view: ModelView,
    test_w: np.ndarray,
    retrained_pred: np.ndarray,
    balanced: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """RQ1 under each row of ``test_w``: the three BACs and the claim's difference.
    ``balanced`` = (labels, preds, weights) of the balanced model's test images, weights
    aligned with ``test_w`` when both models saw the same test images."""
    labels, c = view.test["label"], view.n_classes
    imb = confusion_metrics(weighted_confusion(test_w, labels, view.test["pred"], c), 0, 0)["bac"]
    ret = confusion_metrics(weighted_confusion(test_w, labels, retrained_pred, c), 0, 0)["bac"]
    out = {
        "bac_imbalanced": imb,
        "bac_retrained": ret,
        "bac_retrained_gain": ret - imb,
        "bac_order": ret - imb,
    }
    if balanced is not None:
        b_labels, b_preds, b_w = balanced
        bal = confusion_metrics(weighted_confusion(b_w, b_labels, b_preds, c), 0, 0)["bac"]
        out["bac_balanced"] = bal
        out["bac_order"] = np.minimum(ret - imb, bal - ret)
    return out


def minority_overfits(view: ModelView, test_w: np.ndarray) -> np.ndarray:
    """Train accuracy fixed (the run's training images), test accuracy resampled."""
    maj, mino = view.roles
    c = view.n_classes
    train_rec = confusion_metrics(
        weighted_confusion(np.ones((1, len(view.train["label"]))), view.train["label"],
                           view.train["pred"], c), maj, mino,
    )  # fmt: skip
    test_rec = confusion_metrics(
        weighted_confusion(test_w, view.test["label"], view.test["pred"], c), maj, mino
    )
    gap_min = train_rec["minority_acc"][0] - test_rec["minority_acc"]
    gap_maj = train_rec["majority_acc"][0] - test_rec["majority_acc"]
    return np.minimum(gap_min - gap_maj, gap_min - MIN_MINORITY_GAP)


def _train_coverage(view: ModelView) -> np.ndarray:
    tr = view.train
    return topk_coverage_matrix(tr["fe"], view.W, view.bias, tr["logits"], view.normed)


def few_features_decide(view: ModelView, train_w: np.ndarray) -> np.ndarray:
    """H/5 − the smallest K whose (bias-free) coverage of all instances reaches 90 %, per
    replicate; a replicate where no K does counts K = H + 1."""
    covered = _train_coverage(view).astype(np.float64)
    coverage = (train_w @ covered) / train_w.sum(axis=1, keepdims=True)  # (B, H)
    reached = coverage >= FEW_FEATURES_COVERAGE
    k = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, view.width + 1)
    return FEW_FEATURES_SHARE * view.width - k


def minority_smaller_k(view: ModelView, train_w: np.ndarray, k: int) -> np.ndarray:
    """Mean class coverage ratio (per *predicted* class) at ``k`` over the minority group,
    minus the majority group's; classes never predicted in a replicate are left out."""
    majority, minority = view.groups
    covered = _train_coverage(view)[:, [k - 1]].astype(np.float64)
    preds = np.argmax(view.train["logits"], axis=1)
    ratio = weighted_class_means(train_w, covered, preds, view.n_classes)[:, :, 0]
    return group_mean(ratio, minority) - group_mean(ratio, majority)


def _largest(means: np.ndarray) -> np.ndarray:
    """``(B, C, H)`` → largest entry per class ``(B, C)``, NaN for an empty class."""
    filled = np.where(np.isnan(means), -np.inf, means)
    out = filled.max(axis=2)
    return np.where(np.isneginf(out), np.nan, out)


def _log_ratio_excess(num: np.ndarray, den: np.ndarray, bound: float) -> np.ndarray:
    """``log(num / den) − log(bound)``, NaN unless both are positive (a ratio of sizes)."""
    ok = (num > 0) & (den > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.log(np.where(ok, num / np.where(ok, den, 1.0), 1.0)), np.nan) - (
            np.log(bound)
        )


def _others_to_majority(largest: np.ndarray, majority: int) -> np.ndarray:
    """Tables 3 and 4 per replicate: log(mean of the other classes' largest / the majority's)
    − log 2, from ``largest (B, C)``."""
    others = np.delete(largest, majority, axis=1)
    counted = np.isfinite(others).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counted > 0, np.nansum(others, axis=1) / counted, np.nan)
    return _log_ratio_excess(mean, largest[:, majority], MIN_RATIO)


def _train_class_mean_ce(view: ModelView, train_w: np.ndarray) -> np.ndarray:
    tr = view.train
    ce = own_class_ce(tr["fe"], view.W, tr["label"], view.normed)
    return weighted_class_means(train_w, ce, tr["label"], view.n_classes)


def majority_ce_smaller(view: ModelView, train_w: np.ndarray) -> np.ndarray:
    largest = _largest(_train_class_mean_ce(view, train_w))
    return _others_to_majority(largest, view.roles[0])


def majority_share_smaller(view: ModelView, train_w: np.ndarray, k_fe: int) -> np.ndarray:
    tr, c = view.train, view.n_classes
    shares, usable = instance_logit_shares(tr["fe"], view.W, view.bias, tr["label"], c,
                                           view.normed, k=k_fe)  # fmt: skip
    classes = np.where(usable, tr["label"], -1)
    largest = _largest(weighted_class_means(train_w, shares, classes, c))
    return _others_to_majority(largest, view.roles[0])


def majority_weights_larger(view: ModelView) -> float:
    """Sum of the ten largest |W| of the majority class minus the minority class's: a number
    of the trained weights alone."""
    maj, mino = view.roles
    top = top_n_per_row(np.abs(np.asarray(view.W, dtype=np.float64)), N_TOP)[0]
    return float(top[maj].sum() - top[mino].sum())


def ce_far_above_weights(view: ModelView, train_w: np.ndarray) -> np.ndarray:
    """log(largest class-mean ce / largest |W|) − log 2; the weights are fixed, the class
    means resampled."""
    mean_ce = _train_class_mean_ce(view, train_w)
    largest_ce = np.nanmax(np.where(np.isnan(mean_ce), -np.inf, mean_ce), axis=(1, 2))
    largest_w = np.full(len(largest_ce), float(np.max(np.abs(view.W))))
    return _log_ratio_excess(largest_ce, largest_w, FAR_LARGER)


def _member_shares(view: ModelView, train_w: np.ndarray, k_fe: int):
    """Instance top-K FE of the training images, and per replicate and predicted class the
    share of its instances holding each feature ``(B, C, H)``."""
    tr = view.train
    topk = instance_topk_fe(tr["fe"], k_fe)
    indicator = topk_indicator(topk, view.width)
    return topk, weighted_class_means(train_w, indicator, tr["pred"], view.n_classes)


def minority_features_frequent(view: ModelView, train_w: np.ndarray, k_fe: int) -> np.ndarray:
    """Fig 8: the share of a class's instances holding its most frequent top-K feature,
    minority-group mean minus majority-group mean."""
    majority, minority = view.groups
    top_share = _member_shares(view, train_w, k_fe)[1].max(axis=2)  # (B, C), NaN if empty
    return group_mean(top_share, minority) - group_mean(top_share, majority)


def _members_needed(
    shares: np.ndarray, topk: np.ndarray, classes: np.ndarray, c: int, train_w: np.ndarray
) -> np.ndarray:
    """Fig 9 for class ``c`` per replicate: members taken in the replicate's frequency order
    (lower index on ties) until every instance with weight holds one; NaN when none has."""
    members = np.flatnonzero(classes == c)
    out = np.full(len(train_w), np.nan)
    if len(members) == 0:
        return out
    order = np.argsort(-np.nan_to_num(shares[:, c, :], nan=0.0), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
    best = rank[:, topk[members]].min(axis=2) + 1  # (B, n_members)
    drawn = train_w[:, members] > 0
    needed = np.where(drawn, best, 0).max(axis=1)
    return np.where(drawn.any(axis=1), needed, np.nan).astype(np.float64)


def majority_needs_more_members(view: ModelView, train_w: np.ndarray, k_fe: int) -> np.ndarray:
    maj, mino = view.roles
    topk, shares = _member_shares(view, train_w, k_fe)
    preds = np.asarray(view.train["pred"], dtype=np.int64)
    return _members_needed(shares, topk, preds, maj, train_w) - _members_needed(
        shares, topk, preds, mino, train_w
    )


def _train_top(view: ModelView) -> tuple[np.ndarray, np.ndarray]:
    """The training FE class means at each class's ten largest, and those features' indices."""
    tr = view.train
    mu_train = class_means(tr["fe"], tr["label"], view.n_classes)[0]
    top = top_n_per_row(mu_train, N_TOP)[1]
    return np.take_along_axis(mu_train, np.maximum(top, 0), axis=1), top


def tp_closer_than_fp(view: ModelView, test_w: np.ndarray) -> np.ndarray:
    """FB(FP) − FB(size-matched TP control): train means fixed, the test images resampled,
    the control's subsets fixed (rq7.control_subsets, the per-run table's own draws)."""
    te = view.test
    ref, top = _train_top(view)
    tp = te["pred"] == te["label"]
    control = control_subsets(te["pred"], tp, view.n_classes, N_CONTROL_DRAWS)
    fb_fp, fb_tp = matched_gap(test_w, at_class_top(te["fe"], te["pred"], top), te["pred"], tp,
                               ref, control)  # fmt: skip
    return fb_fp - fb_tp


def _top_members(shares: np.ndarray, n_top: int) -> np.ndarray:
    """``(B, C, n_top)`` most frequent members per replicate and class, lower index on ties,
    -1 where no instance holds one (as rq7.top_identities)."""
    order = np.argsort(-np.nan_to_num(shares, nan=0.0), axis=2, kind="stable")[:, :, :n_top]
    held = np.take_along_axis(np.nan_to_num(shares, nan=0.0), order, axis=2) > 0
    return np.where(held, order, -1)


def _overlap(train_top: np.ndarray, test_top: np.ndarray, n_top: int) -> np.ndarray:
    """Mean over classes of |train set ∩ replicate set| / n_top, classes with an empty set
    on either side left out (rq7.identity_overlap and Rq7Result.summary)."""
    c = train_top.shape[0]
    member = np.zeros((c, int(max(train_top.max(), test_top.max(), 0)) + 1), dtype=bool)
    rows, cols = np.nonzero(train_top >= 0)
    member[rows, train_top[rows, cols]] = True
    shared = (member[np.arange(c)[None, :, None], np.maximum(test_top, 0)] & (test_top >= 0)).sum(2)
    ok = (test_top >= 0).any(axis=2) & (train_top >= 0).any(axis=1)[None]
    counted = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, np.where(ok, shared, 0).sum(1) / counted / n_top, np.nan)


def identity_overlap(view: ModelView, test_w: np.ndarray, k_fe: int, kind: str) -> np.ndarray:
    """overlap(train, TP) − overlap(train, FP) of the class top-10 ``kind`` ("ce" or "fe")
    identities (members of the instances' top-K sets), the training side fixed."""
    tr, te, c, h = view.train, view.test, view.n_classes, view.width
    if kind == "ce":
        x_train = own_class_ce(tr["fe"], view.W, tr["label"], view.normed)
        x_test = own_class_ce(te["fe"], view.W, te["pred"], view.normed)
    else:
        x_train, x_test = tr["fe"], te["fe"]
    ones = np.ones((1, len(tr["label"])))
    train_ind = topk_indicator(instance_topk_fe(x_train, k_fe), h)
    train_top = _top_members(weighted_class_means(ones, train_ind, tr["label"], c), N_TOP)[0]
    test_ind = topk_indicator(instance_topk_fe(x_test, k_fe), h)
    tp = te["pred"] == te["label"]
    out = []
    for mask in (tp, ~tp):
        shares = weighted_class_means(test_w, test_ind, np.where(mask, te["pred"], -1), c)
        out.append(_overlap(train_top, _top_members(shares, N_TOP), N_TOP))
    return out[0] - out[1]


def claim_rows(
    view: ModelView, test_w: np.ndarray, train_w: np.ndarray, *, ks, k_fe: int
) -> list[tuple[str, np.ndarray, str]]:
    """``(claim, values (1 + B,), side)`` of every claim but RQ1's, in catalog order; a
    statistic of the weights alone repeats its value with NaN replicates (no interval)."""
    fixed = np.full(len(test_w), np.nan)
    fixed[0] = majority_weights_larger(view)
    rows = {
        "minority_overfits": (minority_overfits(view, test_w), "test"),
        "few_features_decide": (few_features_decide(view, train_w), "train"),
        "minority_smaller_k": (minority_smaller_k(view, train_w, min(ks)), "train"),
        "majority_ce_smaller": (majority_ce_smaller(view, train_w), "train"),
        "majority_share_smaller": (majority_share_smaller(view, train_w, k_fe), "train"),
        "majority_weights_larger": (fixed, "model"),
        "ce_far_above_weights": (ce_far_above_weights(view, train_w), "train"),
        "minority_features_frequent": (minority_features_frequent(view, train_w, k_fe), "train"),
        "majority_needs_more_members": (majority_needs_more_members(view, train_w, k_fe), "train"),
        "tp_closer_than_fp": (tp_closer_than_fp(view, test_w), "test"),
        "identity_overlap_ce": (identity_overlap(view, test_w, k_fe, "ce"), "test"),
        "identity_overlap_fe": (identity_overlap(view, test_w, k_fe, "fe"), "test"),
    }
    return [(name, *rows[name]) for name in CLAIM_NAMES if name in rows]


def run_bootstrap(
    view: ModelView,
    *,
    seed: int,
    n_boot: int = N_BOOT,
    retrained_pred: np.ndarray | None = None,
    balanced_test: dict | None = None,
    ks=(2, 3, 5, 7),
    k_fe: int = 7,
    claims: bool = True,
    confidence: float = 0.95,
) -> pa.Table:
    """One row per statistic: ``statistic``, ``estimate``, ``ci_low``, ``ci_high``, ``n``
    (instances resampled), ``n_boot``, ``interval`` (its kind) and ``replicates`` (list).

    Headline metrics always; with ``claims`` (an imbalanced run) every claim's difference,
    and with ``retrained_pred`` (the RQ1 classifier's test predictions) the RQ1 BACs and
    ``bac_order``. ``balanced_test`` is the balanced model's test embedding dict: paired by
    image when it holds the same test images, else resampled on its own."""
    test_labels = view.test["label"]
    test_w = stratified_weights(test_labels, n_boot, (seed, 0), observed_first=True)
    rows: list[tuple[str, np.ndarray, str]] = []
    for name, values in headline_statistics(view, test_w).items():
        rows.append((name, values, "test"))
    if claims:
        train_w = stratified_weights(view.train["label"], n_boot, (seed, 1), observed_first=True)
        if retrained_pred is not None:
            balanced = None
            if balanced_test is not None:
                same = np.array_equal(np.sort(balanced_test["index"]), np.sort(view.test["index"]))
                if same:  # the same images: reorder the balanced model's rows to ours
                    where = {int(i): r for r, i in enumerate(balanced_test["index"])}
                    order = np.array([where[int(i)] for i in view.test["index"]])
                    balanced = (balanced_test["label"][order], balanced_test["pred"][order], test_w)
                else:
                    b_w = stratified_weights(
                        balanced_test["label"], n_boot, (seed, 2), observed_first=True
                    )
                    balanced = (balanced_test["label"], balanced_test["pred"], b_w)
            for name, values in bac_order(view, test_w, retrained_pred, balanced).items():
                rows.append((name, values, "test"))
        rows += claim_rows(view, test_w, train_w, ks=ks, k_fe=k_fe)
    n_of = {"test": len(test_labels), "train": len(view.train["label"]), "model": 1}
    out: dict[str, list] = {k: [] for k in
                            ("statistic", "estimate", "ci_low", "ci_high", "n", "n_boot",
                             "interval", "replicates")}  # fmt: skip
    for name, values, side in rows:
        estimate, replicates = _split(values)
        iv = percentile_interval(replicates, estimate, n_of[side], KIND[side], confidence)
        out["statistic"].append(name)
        out["estimate"].append(iv.estimate)
        out["ci_low"].append(iv.low)
        out["ci_high"].append(iv.high)
        out["n"].append(iv.n)
        out["n_boot"].append(n_boot)
        out["interval"].append(iv.kind)
        out["replicates"].append([None if not np.isfinite(v) else float(v) for v in replicates])
    return pa.table(
        out,
        schema=pa.schema(
            [
                ("statistic", pa.string()),
                ("estimate", pa.float64()),
                ("ci_low", pa.float64()),
                ("ci_high", pa.float64()),
                ("n", pa.int64()),
                ("n_boot", pa.int64()),
                ("interval", pa.string()),
                ("replicates", pa.list_(pa.float64())),
            ]
        ),
    )
