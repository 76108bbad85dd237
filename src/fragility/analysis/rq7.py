"""RQ7 — train vs test true/false positive features (Fig 10 and its table).

Groups per class c: *train* = training instances of true class c; *TP* = test instances
predicted c and labelled c; *FP* = test instances predicted c but labelled otherwise.
The "top features" of class c are the ``n_top`` largest entries of its train mean FE.
Frobenius norms run over the (classes x n_top) matrix of group means at those features;
a class without TP (or without FP) instances has no mean there, so its row is left out of
that norm (the number of rows used is reported). CE rows are always those of class c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fragility.analysis.embeddings import class_means, own_class_ce, top_n_per_row
from fragility.analysis.rq6 import instance_topk_fe, member_counts, member_order


def frobenius_gap(
    mu_ref: np.ndarray, mu_other: np.ndarray, top_idx: np.ndarray
) -> tuple[float, int]:
    """``(||mu_ref[c, top_c] - mu_other[c, top_c]||_F, rows used)`` over classes where both
    means exist; ``mu_*`` (C, H), ``top_idx`` (C, n_top). NaN when no row is usable."""
    safe = np.maximum(top_idx, 0)
    diff = np.take_along_axis(mu_ref, safe, axis=1) - np.take_along_axis(mu_other, safe, axis=1)
    ok = np.all(top_idx >= 0, axis=1) & ~np.any(np.isnan(diff), axis=1)
    if not ok.any():
        return float("nan"), 0
    return float(np.sqrt(np.sum(diff[ok] ** 2))), int(ok.sum())


def top_identities(
    x: np.ndarray,
    classes: np.ndarray,
    n_classes: int,
    n_top: int = 10,
    identity: str = "frequency",
    k: int = 7,
) -> np.ndarray:
    """Class top-``n_top`` feature identities (C, n_top), -1 where there are none.

    ``identity="frequency"``: the class top-k members (indices most often among the
    instances' top-``k`` sets; indices held by no instance are not members, so give -1);
    ``identity="mean"``: the ``n_top`` largest class-mean entries.
    """
    x = np.asarray(x, dtype=np.float64)
    if identity == "mean":
        return top_n_per_row(class_means(x, classes, n_classes)[0], n_top)[1]
    if identity != "frequency":
        raise ValueError(f"identity must be 'frequency' or 'mean', got {identity!r}")
    counts = member_counts(instance_topk_fe(x, k), classes, n_classes, x.shape[1])
    order = member_order(counts)[:, :n_top]
    return np.where(np.take_along_axis(counts, order, axis=1) > 0, order, -1)


def identity_overlap(idx_a: np.ndarray, idx_b: np.ndarray) -> np.ndarray:
    """Shared indices per class (C,) between two (C, n) identity sets (-1 ignored); NaN when
    either class row is empty."""
    out = np.full(idx_a.shape[0], np.nan)
    for c, (a, b) in enumerate(zip(idx_a, idx_b)):
        a, b = set(a[a >= 0].tolist()), set(b[b >= 0].tolist())
        if a and b:
            out[c] = len(a & b)
    return out


@dataclass
class Rq7Result:
    """Means (C, H), group sizes (C,), top indices (C, n_top), norms, overlaps (C,)."""

    mu_train: np.ndarray
    mu_tp: np.ndarray
    mu_fp: np.ndarray
    n_train: np.ndarray
    n_tp: np.ndarray
    n_fp: np.ndarray
    top_idx: np.ndarray
    fb_tp: float
    fb_fp: float
    rows_tp: int
    rows_fp: int
    overlap: dict[str, np.ndarray]  # keys fe_tp, fe_fp, ce_tp, ce_fp

    def at_top(self, mu: np.ndarray) -> np.ndarray:
        """Fig 10 panel: ``mu`` (C, H) read at each class's top train features (C, n_top)."""
        return np.take_along_axis(mu, np.maximum(self.top_idx, 0), axis=1)

    def table(self) -> dict[str, list]:
        """Per-class table: group sizes and the four overlap counts."""
        out: dict[str, list] = {"class": list(range(len(self.n_train)))}
        for name in ("n_train", "n_tp", "n_fp"):
            out[name] = [int(v) for v in getattr(self, name)]
        for key, vals in self.overlap.items():
            out[f"overlap_{key}"] = [float(v) for v in vals]
        return out

    def summary(self) -> dict[str, float | int]:
        """Scalars: both norms, rows used, mean overlap of each kind as a fraction of n_top."""
        n_top = self.top_idx.shape[1]
        out = {
            "fb_tp": self.fb_tp,
            "fb_fp": self.fb_fp,
            "rows_tp": self.rows_tp,
            "rows_fp": self.rows_fp,
        }
        for key, vals in self.overlap.items():
            ok = ~np.isnan(vals)
            out[f"overlap_{key}"] = float(vals[ok].mean() / n_top) if ok.any() else float("nan")
        return out


def rq7_generalization(
    train_fe: np.ndarray,
    train_labels: np.ndarray,
    test_fe: np.ndarray,
    test_labels: np.ndarray,
    test_preds: np.ndarray,
    W: np.ndarray,
    n_classes: int,
    normed: bool = False,
    n_top: int = 10,
    identity: str = "frequency",
    k: int = 7,
) -> Rq7Result:
    """All RQ7 figures; see the module docstring for the groups and the missing-class rule."""
    train_labels = np.asarray(train_labels, dtype=np.int64)
    test_preds = np.asarray(test_preds, dtype=np.int64)
    tp = test_preds == np.asarray(test_labels, dtype=np.int64)
    mu_train, n_train = class_means(train_fe, train_labels, n_classes)
    mu_tp, n_tp = class_means(test_fe, test_preds, n_classes, mask=tp)
    mu_fp, n_fp = class_means(test_fe, test_preds, n_classes, mask=~tp)
    top_idx = top_n_per_row(mu_train, n_top)[1]
    fb_tp, rows_tp = frobenius_gap(mu_train, mu_tp, top_idx)
    fb_fp, rows_fp = frobenius_gap(mu_train, mu_fp, top_idx)

    test_ce = own_class_ce(test_fe, W, test_preds, normed)
    sets = {
        "fe": (np.asarray(train_fe), np.asarray(test_fe)),
        "ce": (own_class_ce(train_fe, W, train_labels, normed), test_ce),
    }
    overlap = {}
    for kind, (x_train, x_test) in sets.items():
        ref = top_identities(x_train, train_labels, n_classes, n_top, identity, k)
        for group, mask in (("tp", tp), ("fp", ~tp)):
            other = top_identities(x_test[mask], test_preds[mask], n_classes, n_top, identity, k)
            overlap[f"{kind}_{group}"] = identity_overlap(ref, other)
    return Rq7Result(
        mu_train,
        mu_tp,
        mu_fp,
        n_train,
        n_tp,
        n_fp,
        top_idx,
        fb_tp,
        fb_fp,
        rows_tp,
        rows_fp,
        overlap,
    )
