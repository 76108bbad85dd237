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
import pyarrow as pa

from fragility.analysis.ce import class_means, own_class_ce, top_n_per_row
from fragility.analysis.columns import class_columns, int_column, one_row, ranked_table
from fragility.analysis.inputs import N_TOP, ClaimInputs, Measured, RunInputs, log_ratio, point
from fragility.analysis.matching import mean_over_draws
from fragility.analysis.rq6 import instance_topk_fe, member_counts, member_order, topk_indicator
from fragility.analysis.uncertainty import weighted_class_means
from fragility.catalog.claims import N_MATCHED_DRAWS


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


# -- the size-matched control of FB(TP) -------------------------------------------------------
#
# FB(FP) averages a class's few false positives, FB(TP) its many true positives, and the mean
# of a few instances lies farther from the training mean by sample size alone. The control
# draws, per class, as many true positives as the class has false positives (all of them when
# it has fewer), without replacement, and averages FB over seeded draws. Only classes with
# both groups count, in FB(FP) as in the control.


def control_subsets(
    preds: np.ndarray, tp: np.ndarray, n_classes: int, draws: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(members (D, N) bool, rows (C,) bool)``: per draw, the test instances of the
    size-matched TP control; ``rows`` marks the classes that have both TP and FP."""
    preds, tp = np.asarray(preds, dtype=np.int64), np.asarray(tp, dtype=bool)
    n_tp = np.bincount(preds[tp], minlength=n_classes)
    n_fp = np.bincount(preds[~tp], minlength=n_classes)
    rows = (n_tp > 0) & (n_fp > 0)
    rng = np.random.default_rng(seed)
    members = np.zeros((draws, len(preds)), dtype=bool)
    for c in np.flatnonzero(rows):
        pool = np.flatnonzero(tp & (preds == c))
        size = min(int(n_fp[c]), len(pool))
        for d in range(draws):
            members[d, rng.choice(pool, size=size, replace=False)] = True
    return members, rows


def at_class_top(x: np.ndarray, classes: np.ndarray, top_idx: np.ndarray) -> np.ndarray:
    """``x[n, top_idx[classes[n]]]`` (N, n_top): each instance read at its class's top
    training features (index -1 reads column 0; such rows are never used)."""
    safe = np.maximum(np.asarray(top_idx), 0)
    return np.take_along_axis(np.asarray(x, dtype=np.float64), safe[classes], axis=1)


def matched_gap(
    weights: np.ndarray,
    x_top: np.ndarray,
    preds: np.ndarray,
    tp: np.ndarray,
    ref: np.ndarray,
    control: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """``(FB(FP), FB(matched TP))`` (B,) under each row of ``weights (B, N)`` (a row of ones:
    the data as observed). ``x_top`` from :func:`at_class_top` at the training top features,
    ``ref (C, n_top)`` the training means there, ``control`` from :func:`control_subsets`.
    Per draw, a class enters both norms when its FP and its control subset carry weight;
    the FB(TP) control is averaged over draws, FB(FP) over the same draws' rows."""
    weights = np.atleast_2d(weights)
    preds, tp = np.asarray(preds, dtype=np.int64), np.asarray(tp, dtype=bool)
    members, rows = control
    n_classes = ref.shape[0]
    fp_mean = weighted_class_means(weights, x_top, np.where(tp, -1, preds), n_classes)
    fp_sq = ((ref[None] - fp_mean) ** 2).sum(axis=2)  # (B, C), NaN where no FP weight
    draws = members.shape[0]
    ctrl_sq = np.full((weights.shape[0], draws, n_classes), np.nan)
    for c in np.flatnonzero(rows):
        pool = np.flatnonzero(tp & (preds == c))
        in_draw = members[:, pool].T.astype(np.float64)  # (n_pool, D)
        w = weights[:, pool]
        total = w @ in_draw  # (B, D)
        sums = w @ (in_draw[:, :, None] * x_top[pool][:, None, :]).reshape(len(pool), -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums.reshape(len(w), draws, -1) / total[:, :, None]
        ctrl_sq[:, :, c] = ((ref[c] - mean) ** 2).sum(axis=2)
    valid = rows[None, None] & np.isfinite(fp_sq)[:, None, :] & np.isfinite(ctrl_sq)
    fb_fp = np.sqrt(np.where(valid, fp_sq[:, None, :], 0.0).sum(axis=2))
    fb_ctrl = np.sqrt(np.where(valid, ctrl_sq, 0.0).sum(axis=2))
    used = valid.any(axis=2)  # (B, D)
    with np.errstate(invalid="ignore"):
        fp = np.where(used, fb_fp, np.nan)
        ctrl = np.where(used, fb_ctrl, np.nan)
        count = used.sum(axis=1)
        return (
            np.where(count > 0, np.nansum(fp, axis=1) / np.maximum(count, 1), np.nan),
            np.where(count > 0, np.nansum(ctrl, axis=1) / np.maximum(count, 1), np.nan),
        )


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
    fb_fp_matched: float = float("nan")  # FB(FP) over the classes of the control
    fb_tp_matched: float = float("nan")  # the size-matched TP control's FB, mean over draws
    rows_matched: int = 0
    draws: int = 0

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
            "fb_fp_matched": self.fb_fp_matched,
            "fb_tp_matched": self.fb_tp_matched,
            "rows_matched": self.rows_matched,
            "draws": self.draws,
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
    draws: int = 32,
) -> Rq7Result:
    """All RQ7 figures; see the module docstring for the groups and the missing-class rule,
    and :func:`control_subsets` for the size-matched control (``draws`` seeded draws)."""
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
    control = control_subsets(test_preds, tp, n_classes, draws)
    ref_top = np.take_along_axis(mu_train, np.maximum(top_idx, 0), axis=1)
    x_top = at_class_top(test_fe, test_preds, top_idx)
    fb_fp_m, fb_tp_m = matched_gap(np.ones((1, len(tp))), x_top, test_preds, tp, ref_top, control)
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
        fb_fp_matched=float(fb_fp_m[0]),
        fb_tp_matched=float(fb_tp_m[0]),
        rows_matched=int(control[1].sum()),
        draws=draws,
    )


# -- the claims of RQ7 (each measured per run by the bootstrap; see fragility.catalog.claims.CLAIMS) --
# True and false positives are the model's own test decisions, bias included: RQ7 contrasts
# the predictions the model makes, right and wrong.


def _train_top(run: RunInputs) -> tuple[np.ndarray, np.ndarray]:
    """The training FE class means at each class's ten largest, and those features' indices."""
    tr = run.train
    mu_train = class_means(tr["fe"], tr["label"], run.n_classes)[0]
    top = top_n_per_row(mu_train, N_TOP)[1]
    return np.take_along_axis(mu_train, np.maximum(top, 0), axis=1), top


def tp_closer_than_fp(data: ClaimInputs) -> Measured:
    """FB(FP) − FB(size-matched TP control): the training means fixed, the test images
    resampled, the control's subsets fixed (:func:`control_subsets`, the per-run table's own
    draws)."""
    run = data.run
    te = run.test
    ref, top = _train_top(run)
    tp = te["pred"] == te["label"]
    control = control_subsets(te["pred"], tp, run.n_classes, N_MATCHED_DRAWS)
    x_top = at_class_top(te["fe"], te["pred"], top)
    fb_fp, fb_tp = matched_gap(data.test_w, x_top, te["pred"], tp, ref, control)
    mu_tp = class_means(te["fe"], te["pred"], run.n_classes, mask=tp)[0]
    mu_train = class_means(run.train["fe"], run.train["label"], run.n_classes)[0]
    parts = {
        "fb_fp": point(fb_fp),
        "fb_tp": point(fb_tp),
        "fb_tp_all": frobenius_gap(mu_train, mu_tp, top)[0],
    }
    return Measured(fb_fp - fb_tp, parts)


def top_members(counts: np.ndarray, n_top: int = N_TOP) -> np.ndarray:
    """The set of the ``n_top`` most frequent members per class from member counts ``(...,
    C, H)`` (integer-valued: the multiplicities of the instances holding each feature in their
    top-K set), the lower index first on ties as :func:`top_identities`, -1 where no instance
    holds one. Only the set matters to an overlap, so it comes unordered: an exact integer key
    (count first, then the lower index) picks it without sorting all H features."""
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64), nan=0.0)
    h = counts.shape[-1]
    n = min(n_top, h)
    key = counts * h + (h - 1 - np.arange(h))  # exact: counts are whole numbers
    top = np.argpartition(-key, n - 1, axis=-1)[..., :n]
    return np.where(np.take_along_axis(counts, top, axis=-1) > 0, top, -1)


def set_overlap(train_top: np.ndarray, other_top: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Mean over ``classes (C,) bool`` of |A ∩ B| / min(|A|, |B|), A a class's top set in
    ``train_top (C, n)`` and B its set in ``other_top (B, C, n)`` (-1 = no member), classes
    with an empty set on either side left out: ``(B,)``, NaN where no class is left."""
    if other_top.ndim == 2:
        other_top = other_top[None]
    c = train_top.shape[0]
    member = np.zeros((c, int(max(train_top.max(), other_top.max(), 0)) + 1), dtype=bool)
    rows, cols = np.nonzero(train_top >= 0)
    member[rows, train_top[rows, cols]] = True
    valid = other_top >= 0
    shared = (member[np.arange(c)[None, :, None], np.maximum(other_top, 0)] & valid).sum(axis=2)
    smaller = np.minimum((train_top >= 0).sum(axis=1)[None, :], valid.sum(axis=2))
    ok = (smaller > 0) & np.asarray(classes, dtype=bool)[None, :]
    counted = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(ok, shared / np.maximum(smaller, 1), 0.0).sum(axis=1)
        return np.where(counted > 0, share / counted, np.nan)


def _group_counts(weights: np.ndarray, indicator: np.ndarray, members: np.ndarray, preds,
                  classes) -> np.ndarray:  # fmt: skip
    """Member counts ``(B, C, H)`` of each of ``classes`` over the instances ``members`` (N,)
    predicted as it, under every replicate ``weights (B, N)`` (0 for the other classes)."""
    out = np.zeros((weights.shape[0], len(classes), indicator.shape[1]))
    for i, c in enumerate(classes):
        rows = np.flatnonzero(members & (preds == c))
        out[:, i] = weights[:, rows] @ indicator[rows]
    return out


def identity_overlaps(data: ClaimInputs, kind: str) -> dict[str, np.ndarray]:
    """``tp`` (TP drawn per class to the class's FP count, mean over draws), ``tp_all`` and
    ``fp``: the overlap ``(B,)`` of each group's class top-10 ``kind`` (``"ce"`` or ``"fe"``)
    identities with the training set's, over the classes that have both TP and FP."""
    run = data.run
    tr, te, c, h = run.train, run.test, run.n_classes, run.width
    if kind == "ce":
        x_train = own_class_ce(tr["fe"], run.W, tr["label"], run.normed)
        x_test = own_class_ce(te["fe"], run.W, te["pred"], run.normed)
    else:
        x_train, x_test = tr["fe"], te["fe"]
    train_counts = member_counts(instance_topk_fe(x_train, data.k_fe), tr["label"], c, h)
    test_ind = topk_indicator(instance_topk_fe(x_test, data.k_fe), h)
    preds = np.asarray(te["pred"], dtype=np.int64)
    tp = preds == np.asarray(te["label"], dtype=np.int64)
    draws, rows = control_subsets(preds, tp, c, N_MATCHED_DRAWS)
    both = np.flatnonzero(rows)  # the classes with TP and FP: the only ones counted
    if both.size == 0:
        nothing = np.full(data.test_w.shape[0], np.nan)
        return {"tp": nothing, "tp_all": nothing[:1], "fp": nothing}
    train_top = top_members(train_counts[both])
    every = np.ones(len(both), dtype=bool)

    def overlap(weights: np.ndarray, members: np.ndarray) -> np.ndarray:
        counts = _group_counts(weights, test_ind, members, preds, both)
        return set_overlap(train_top, top_members(counts), every)

    matched = mean_over_draws(np.vstack([overlap(data.test_w, draw) for draw in draws]))
    return {
        "tp": matched,
        "tp_all": overlap(data.test_w[:1], tp),
        "fp": overlap(data.test_w, ~tp),
    }


def _identity_claim(data: ClaimInputs, kind: str) -> Measured:
    overlaps = identity_overlaps(data, kind)
    parts = {name: point(values) for name, values in overlaps.items()}
    return Measured(overlaps["tp"] - overlaps["fp"], parts)


def identity_overlap_ce(data: ClaimInputs) -> Measured:
    """overlap(train, TP) − overlap(train, FP) of the class top-10 CE identities, TP drawn
    per class down to the FP count; each overlap divides by the smaller set."""
    return _identity_claim(data, "ce")


def identity_overlap_fe(data: ClaimInputs) -> Measured:
    """The same for the FE identities."""
    return _identity_claim(data, "fe")


def fig10_direction(data: ClaimInputs) -> Measured:
    """Fig 10 read as a direction: log(TP / FP) of the minority group's mean fe at each
    class's ten largest training-mean features, over the group's classes with both TP and FP
    (both test images, so the training-set choice of features favours neither side)."""
    run = data.run
    te = run.test
    ref, top = _train_top(run)
    tp = te["pred"] == te["label"]
    x_top = at_class_top(te["fe"], te["pred"], top)
    c = run.n_classes
    tp_means = weighted_class_means(data.test_w, x_top, np.where(tp, te["pred"], -1), c)
    fp_means = weighted_class_means(data.test_w, x_top, np.where(tp, -1, te["pred"]), c)
    minority = np.zeros(c, dtype=bool)
    minority[run.groups[1]] = True
    both = minority[None, :] & np.isfinite(tp_means).all(2) & np.isfinite(fp_means).all(2)
    count = both.sum(axis=1)
    if count[0] == 0:
        return Measured.not_measurable("no class of the minority group has both TP and FP")

    def group(means: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.where(both[:, :, None], means, 0.0).sum(axis=(1, 2))
            return np.where(count > 0, total / (count * means.shape[2]), np.nan)

    tp_mean, fp_mean = group(tp_means), group(fp_means)
    train = float(ref[both[0]].mean())
    parts = {
        "tp": point(tp_mean),
        "fp": point(fp_mean),
        "train": train,
        "train_over_fp": point(log_ratio(train, fp_mean)),
        "classes": int(count[0]),
    }
    return Measured(log_ratio(tp_mean, fp_mean), parts)


# -- the per-run tables (fragility.catalog.outputs.RUN_TABLES["rq7"]) ----------------------


def run_tables(inputs: RunInputs, *, k_fe: int, **_) -> dict[str, pa.Table]:
    W, normed = inputs.W, inputs.normed
    tr, te, n_classes = inputs.train, inputs.test, inputs.n_classes
    res = rq7_generalization(
        tr["fe"],
        tr["label"],
        te["fe"],
        te["label"],
        te["pred"],
        W,
        n_classes,
        normed,
        n_top=N_TOP,
        identity="frequency",
        k=k_fe,
        draws=N_MATCHED_DRAWS,
    )
    groups = (
        ("train", res.mu_train, res.n_train),
        ("test_tp", res.mu_tp, res.n_tp),
        ("test_fp", res.mu_fp, res.n_fp),
    )
    parts = []
    for group, mu, n_group in groups:
        vals = np.where(res.top_idx >= 0, res.at_top(mu), np.nan)
        t = ranked_table(inputs, vals, "mean_fe", res.top_idx)
        n_top = res.top_idx.shape[1]
        t = t.add_column(4, "group", pa.array([group] * t.num_rows, type=pa.string()))
        t = t.add_column(5, "n_group", int_column(np.repeat(n_group, n_top)))
        parts.append(t)
    n_top = int(res.top_idx.shape[1])
    summary = res.summary()
    observed = inputs.observed(k_fe)
    overlaps = {kind: identity_overlaps(observed, kind) for kind in ("fe", "ce")}
    direction = fig10_direction(observed).parts
    gap = one_row(
        {
            "n_top": n_top,
            "k": k_fe,
            "frobenius_train_vs_tp": summary["fb_tp"],
            "frobenius_train_vs_fp": summary["fb_fp"],
            "n_classes_tp": summary["rows_tp"],
            "n_classes_fp": summary["rows_fp"],
            "frobenius_train_vs_tp_matched": summary["fb_tp_matched"],
            "frobenius_train_vs_fp_matched": summary["fb_fp_matched"],
            "n_classes_matched": summary["rows_matched"],
            "n_draws": summary["draws"],
            # top-10 identity overlaps over the classes with TP and FP, each divided by the
            # smaller set; TP all, and drawn per class down to the FP count
            **{
                f"overlap_{kind}_{group}": float(values[0])
                for kind, groups in overlaps.items()
                for group, values in (
                    ("tp", groups["tp_all"]),
                    ("tp_matched", groups["tp"]),
                    ("fp", groups["fp"]),
                )
            },  # fmt: skip
            # Fig 10 as a direction: the minority group's top-10 fe means
            "fe_top_mean_train_minority_group": direction.get("train"),
            "fe_top_mean_tp_minority_group": direction.get("tp"),
            "fe_top_mean_fp_minority_group": direction.get("fp"),
            "n_classes_direction": direction.get("classes", 0),
        }
    )
    cols = class_columns(inputs, np.arange(n_classes))
    cols["n_tp"] = int_column(res.n_tp)
    cols["n_fp"] = int_column(res.n_fp)
    cols["n_top"] = int_column(np.full(n_classes, n_top))
    for key in ("fe_tp", "fe_fp", "ce_tp", "ce_fp"):
        cols[f"overlap_{key}"] = int_column(
            np.nan_to_num(res.overlap[key], nan=-1), missing=lambda a: a < 0
        )
    return {
        "fe_means_top10": pa.concat_tables(parts),
        "generalization_gap": gap,
        "top_feature_overlap": pa.table(cols),
    }
