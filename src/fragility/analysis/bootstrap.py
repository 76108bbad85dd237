"""One run's headline numbers and claim statistics with a stratified bootstrap (SPEC §4).

Each paper claim is a signed difference that is positive when the claim holds; a claim that
joins two conditions ("imbalanced < retrained < balanced") takes the smaller of its two
differences, so it is positive exactly when both hold. The differences, on the run's files:

============================  =================================================  ==========
claim                         difference                                         resampled
============================  =================================================  ==========
``bac_order``                 min(retrained − imbalanced, balanced − retrained)  test
                              BAC (retrained − imbalanced without a balanced run)
``minority_overfits``         min(minority gap − majority gap, minority gap −    test
                              0.10); gap = train − test accuracy
``few_features_decide``       max over K ≤ 7 of the top-K coverage of all        train
                              instances − 0.94
``minority_smaller_k``        minority − majority coverage ratio at the          train
                              smallest configured K
``majority_ce_smaller``       minority − majority largest class-mean ce          train
``majority_share_smaller``    minority − majority largest logit share            train
``tp_closer_than_fp``         FB(FP) − FB(TP)                                    test
============================  =================================================  ==========

"Resampled" names the instances the bootstrap redraws (per class): the test images for the
statistics of test predictions, the training images for those measured on the training
subset (RQ3, RQ4). The other side is held fixed, and so is the trained model: the interval
says how much the number moves with the images, not with training randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fragility.analysis.embeddings import class_means, own_class_ce, top_n_per_row
from fragility.analysis.rq2 import majority_minority
from fragility.analysis.rq3 import topk_coverage_matrix
from fragility.analysis.rq4 import instance_logit_shares
from fragility.analysis.tables import COVERAGE_THRESHOLD, N_TOP  # the per-run tables' own
from fragility.analysis.uncertainty import (
    N_BOOT,
    confusion_metrics,
    percentile_interval,
    stratified_weights,
    weighted_class_means,
    weighted_confusion,
)
from fragility.catalog import MAX_COVERING_K, MIN_MINORITY_GAP

CLAIM_NAMES = (
    "bac_order",
    "minority_overfits",
    "few_features_decide",
    "minority_smaller_k",
    "majority_ce_smaller",
    "majority_share_smaller",
    "tp_closer_than_fp",
)
HEADLINE = ("bac", "macro_f1", "gmean", "accuracy", "minority_acc", "majority_acc")
KIND = {"test": "bootstrap over test images", "train": "bootstrap over training images"}


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
    def roles(self) -> tuple[int, int]:
        """``(majority, minority)`` as every per-run table names them (rq2.majority_minority)."""
        return majority_minority(self.counts)


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
    covered = _train_coverage(view)[:, :MAX_COVERING_K].astype(np.float64)
    coverage = (train_w @ covered) / train_w.sum(axis=1, keepdims=True)
    return coverage.max(axis=1) - COVERAGE_THRESHOLD


def minority_smaller_k(view: ModelView, train_w: np.ndarray, k: int) -> np.ndarray:
    """Coverage ratio per *predicted* class at ``k``, minority − majority (NaN when either
    class is never predicted in a replicate)."""
    maj, mino = view.roles
    covered = _train_coverage(view)[:, [k - 1]].astype(np.float64)
    preds = np.argmax(view.train["logits"], axis=1)
    ratio = weighted_class_means(train_w, covered, preds, view.n_classes)[:, :, 0]
    return ratio[:, mino] - ratio[:, maj]


def _largest(means: np.ndarray) -> np.ndarray:
    """``(B, C, H)`` → largest entry per class ``(B, C)``, NaN for an empty class."""
    filled = np.where(np.isnan(means), -np.inf, means)
    out = filled.max(axis=2)
    return np.where(np.isneginf(out), np.nan, out)


def majority_ce_smaller(view: ModelView, train_w: np.ndarray) -> np.ndarray:
    maj, mino = view.roles
    tr = view.train
    ce = own_class_ce(tr["fe"], view.W, tr["label"], view.normed)
    largest = _largest(weighted_class_means(train_w, ce, tr["label"], view.n_classes))
    return largest[:, mino] - largest[:, maj]


def majority_share_smaller(view: ModelView, train_w: np.ndarray, k_fe: int) -> np.ndarray:
    maj, mino = view.roles
    tr, c = view.train, view.n_classes
    shares, usable = instance_logit_shares(tr["fe"], view.W, view.bias, tr["label"], c,
                                           view.normed, k=k_fe)  # fmt: skip
    classes = np.where(usable, tr["label"], -1)
    largest = _largest(weighted_class_means(train_w, shares, classes, c))
    return largest[:, mino] - largest[:, maj]


def tp_closer_than_fp(view: ModelView, test_w: np.ndarray) -> np.ndarray:
    """FB(FP) − FB(TP): train means fixed, test TP and FP means resampled; a class without
    TP (FP) instances in a replicate leaves that norm's row out, as RQ7 does."""
    tr, te, c = view.train, view.test, view.n_classes
    mu_train = class_means(tr["fe"], tr["label"], c)[0]
    top = top_n_per_row(mu_train, N_TOP)[1]
    ref = np.take_along_axis(mu_train, np.maximum(top, 0), axis=1)
    tp = te["pred"] == te["label"]
    norms = []
    for mask in (tp, ~tp):
        mu = weighted_class_means(test_w, te["fe"], np.where(mask, te["pred"], -1), c)
        at_top = np.take_along_axis(mu, np.broadcast_to(np.maximum(top, 0), mu.shape[:2] +
                                                        top.shape[1:]), axis=2)  # fmt: skip
        diff = ref[None] - at_top
        ok = (np.all(top >= 0, axis=1)[None]) & ~np.any(np.isnan(diff), axis=2)
        sq = np.where(ok[:, :, None], diff, 0.0) ** 2
        norms.append(np.where(ok.any(axis=1), np.sqrt(sq.sum(axis=(1, 2))), np.nan))
    return norms[1] - norms[0]


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
        rows += [
            ("minority_overfits", minority_overfits(view, test_w), "test"),
            ("few_features_decide", few_features_decide(view, train_w), "train"),
            ("minority_smaller_k", minority_smaller_k(view, train_w, min(ks)), "train"),
            ("majority_ce_smaller", majority_ce_smaller(view, train_w), "train"),
            ("majority_share_smaller", majority_share_smaller(view, train_w, k_fe), "train"),
            ("tp_closer_than_fp", tp_closer_than_fp(view, test_w), "test"),
        ]
    n_of = {"test": len(test_labels), "train": len(view.train["label"])}
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
