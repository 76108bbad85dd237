"""RQ6 — diversity of feature embeddings (Figs 8, 9, 10a).

Instance top-K FE = the indices of an instance's K largest fe. A class's *members* are fe
indices ordered by how many of the class's instances have them in their top-K set (higher
count first, lower index on ties). ``classes`` assigns instances to classes: pass the
predictions (instance measures group by the predicted class: the paper's, the argmax of the
bias-free logit) or the labels.

How many members a class needs, and how often its most frequent member occurs, both move
with the class's number of instances; the claims compare classes of different sizes only
after drawing the larger ones down to the smaller one's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fragility.analysis.ce import class_means, top_n_per_row
from fragility.analysis.columns import (
    class_columns,
    groups_row,
    int_column,
    one_row,
    ranked_table,
    roles_row,
)
from fragility.analysis.inputs import N_TOP, ClaimInputs, Measured, RunInputs, group_mean, point
from fragility.analysis.matching import (
    largest_entry,
    matched_class_stat,
    matched_draws,
    mean_over_draws,
)
from fragility.analysis.rq3 import reference_classes
from fragility.analysis.runs import RunFiles, stack
from fragility.analysis.uncertainty import weighted_class_means
from fragility.catalog.outputs import CrossRunTable


def instance_topk_fe(fe: np.ndarray, k: int = 7) -> np.ndarray:
    """Indices (N, k) of each instance's ``k`` largest fe, largest first (lower index on ties)."""
    return top_n_per_row(np.asarray(fe, dtype=np.float64), k)[1]


def topk_indicator(topk_idx: np.ndarray, width: int) -> np.ndarray:
    """``(N, H)`` 0/1 float: 1 where fe index h is in instance n's top-K set; its class sums
    are :func:`member_counts`, its class means the members' shares (Fig 8)."""
    topk_idx = np.asarray(topk_idx)
    out = np.zeros((len(topk_idx), width))
    np.put_along_axis(out, topk_idx, 1.0, axis=1)
    return out


def member_counts(
    topk_idx: np.ndarray, classes: np.ndarray, n_classes: int, width: int
) -> np.ndarray:
    """Counts (C, H): how many instances of class c hold fe index h in their top-K set."""
    classes = np.asarray(classes, dtype=np.int64)
    flat = (classes[:, None] * width + np.asarray(topk_idx)).ravel()
    return np.bincount(flat, minlength=n_classes * width).reshape(n_classes, width)


def member_order(counts: np.ndarray) -> np.ndarray:
    """Member ranking (C, H): fe indices by descending count, lower index first on ties."""
    return np.argsort(-counts, axis=1, kind="stable")


def class_topk_members(
    fe: np.ndarray, classes: np.ndarray, n_classes: int, k: int = 7, n: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fig 8: ``(members (C, n), shares (C, n), n_class (C,))``.

    ``members[c]`` are class c's ``n`` most frequent top-``k`` fe indices; ``shares[c, j]``
    the fraction of class c's instances whose top-k set contains ``members[c, j]`` (NaN for
    an empty class).
    """
    topk = instance_topk_fe(fe, k)
    counts = member_counts(topk, classes, n_classes, np.asarray(fe).shape[1])
    members = member_order(counts)[:, :n]
    n_class = np.bincount(np.asarray(classes, dtype=np.int64), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.take_along_axis(counts, members, axis=1) / n_class[:, None]
    shares[n_class == 0] = np.nan
    return members, shares, n_class


def members_to_cover(fe: np.ndarray, classes: np.ndarray, n_classes: int, k: int = 7) -> np.ndarray:
    """Fig 9: per class (C,), how many class top-``k`` members are needed so that every
    instance of the class holds at least one of them in its top-k set.

    Members are taken greedily in frequency order (as the paper does, not a minimum set
    cover): the answer is the smallest m such that the m most frequent members hit every
    instance = max over instances of (best rank among its top-k indices) + 1. -1 for an
    empty class.
    """
    classes = np.asarray(classes, dtype=np.int64)
    width = np.asarray(fe).shape[1]
    topk = instance_topk_fe(fe, k)
    order = member_order(member_counts(topk, classes, n_classes, width))
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(width)[None, :].repeat(n_classes, 0), axis=1)
    best = rank[classes[:, None], topk].min(axis=1) + 1
    needed = np.full(n_classes, -1, dtype=np.int64)
    np.maximum.at(needed, classes, best)
    return needed


def top_class_mean_fe(
    fe: np.ndarray, labels: np.ndarray, n_classes: int, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Fig 10a: the ``n`` largest class-mean fe per (true) class, ``(values, idx)`` (C, n)."""
    return top_n_per_row(class_means(fe, labels, n_classes)[0], n)


# -- the claims of RQ6 (each measured per run by the bootstrap; see fragility.catalog.claims.CLAIMS) --


def members_needed(weights: np.ndarray, topk: np.ndarray, in_class: np.ndarray) -> np.ndarray:
    """Fig 9 under each replicate ``weights (B, N)`` for the instances ``in_class (N,)``:
    members taken in the replicate's frequency order (lower index on ties) until every
    instance with weight holds one in its top-K set ``topk (N, K)``; NaN when none has weight."""
    rows = np.flatnonzero(in_class)
    weights = np.atleast_2d(weights)
    out = np.full(weights.shape[0], np.nan)
    if len(rows) == 0:
        return out
    width = int(topk.max()) + 1
    w = weights[:, rows]
    counts = w @ topk_indicator(topk[rows], width)  # (B, H): weighted member counts
    order = np.argsort(-counts, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(width)[None, :], axis=1)
    best = np.take_along_axis(rank[:, None, :], topk[rows][None], axis=2).min(axis=2) + 1
    drawn = w > 0
    needed = np.where(drawn, best, 0).max(axis=1).astype(np.float64)
    return np.where(drawn.any(axis=1), needed, np.nan)


def minority_features_frequent(data: ClaimInputs) -> Measured:
    """Fig 8: the share of a class's instances holding its most frequent top-K feature,
    minority-group mean minus majority-group mean, classes by the paper's prediction, every
    class of the two groups drawn down to the smallest one's predicted count."""
    run = data.run
    preds = run.paper_pred()
    majority, minority = run.groups
    counts = np.bincount(preds, minlength=run.n_classes)
    compared = [int(c) for c in np.union1d(majority, minority) if counts[c] > 0]
    if not compared:
        return Measured.not_measurable("no class of either group is predicted")
    size = int(counts[compared].min())
    indicator = topk_indicator(instance_topk_fe(run.train["fe"], data.k_fe), run.width)
    sizes = dict.fromkeys(compared, size)
    matched = matched_class_stat(data.train_w, indicator, preds, run.n_classes, sizes,
                                 largest_entry)  # fmt: skip
    plain = largest_entry(weighted_class_means(data.train_w[:1], indicator, preds, run.n_classes))
    low, high = group_mean(matched, minority), group_mean(matched, majority)
    parts = {
        "k": data.k_fe,
        "minority": point(low),
        "majority": point(high),
        "size": size,
        "minority_all": point(group_mean(plain, minority)),
        "majority_all": point(group_mean(plain, majority)),
    }
    return Measured(low - high, parts)


def majority_needs_more_members(data: ClaimInputs) -> Measured:
    """Fig 9: members the majority class needs minus the minority class's, classes by the
    paper's prediction, the majority drawn down to the minority's predicted count (mean
    over the draws)."""
    run = data.run
    maj, mino = run.roles
    preds = run.paper_pred()
    n_minority = int(np.sum(preds == mino))
    if n_minority == 0:
        return Measured.not_measurable("the minority class is never predicted")
    topk = instance_topk_fe(run.train["fe"], data.k_fe)
    minority = members_needed(data.train_w, topk, preds == mino)
    draws = matched_draws(preds, {maj: n_minority})
    majority = mean_over_draws(
        np.vstack([members_needed(data.train_w, topk, sub & (preds == maj)) for sub in draws])
    )
    parts = {
        "majority": point(majority),
        "minority": point(minority),
        "size": n_minority,
        "majority_n": int(np.sum(preds == maj)),
        "majority_all": point(members_needed(data.train_w[:1], topk, preds == maj)),
    }
    return Measured(majority - minority, parts)


# -- the per-run tables (fragility.catalog.outputs.RUN_TABLES["rq6"]) ----------------------


def run_tables(inputs: RunInputs, *, k_fe: int, **_) -> dict[str, pa.Table]:
    W, normed = inputs.W, inputs.normed
    tr, n_classes = inputs.train, inputs.n_classes
    # instance measures group by the paper's prediction (bias-free); the head's own beside it
    preds = reference_classes(tr["fe"], W, tr["logits"], normed)
    biased = reference_classes(tr["fe"], W, tr["logits"], normed, with_bias=True)
    members, shares, n_class = class_topk_members(tr["fe"], preds, n_classes, k_fe, N_TOP)
    members = np.where(np.isnan(shares), -1, members)
    members_b, shares_b, n_class_b = class_topk_members(tr["fe"], biased, n_classes, k_fe, N_TOP)
    members_b = np.where(np.isnan(shares_b), -1, members_b)
    needed = members_to_cover(tr["fe"], preds, n_classes, k_fe)
    needed_b = members_to_cover(tr["fe"], biased, n_classes, k_fe)
    cols = class_columns(inputs, np.arange(n_classes))
    cols["n_pred"] = int_column(n_class)
    cols["n_pred_with_bias"] = int_column(n_class_b)
    cols["k"] = int_column(np.full(n_classes, k_fe))
    cols["members_needed"] = int_column(needed, missing=lambda a: a < 0)
    cols["members_needed_with_bias"] = int_column(needed_b, missing=lambda a: a < 0)
    fe_vals, fe_idx = top_class_mean_fe(tr["fe"], tr["label"], n_classes, N_TOP)
    topk = ranked_table(inputs, shares, "share", members, per_class={"n_pred": n_class},
                         extra={"share_with_bias": shares_b})  # fmt: skip
    topk = topk.add_column(
        topk.schema.get_field_index("rank"), "k", int_column(np.full(topk.num_rows, k_fe))
    )
    topk = topk.append_column(
        "feature_with_bias", int_column(members_b.ravel(), missing=lambda a: a < 0)
    )
    observed = inputs.observed(k_fe)
    frequent = minority_features_frequent(observed).parts
    more = majority_needs_more_members(observed).parts
    row = roles_row(inputs)
    row.update(groups_row(inputs))
    row.update(
        k=k_fe,
        top_member_share_majority_group=frequent.get("majority_all"),
        top_member_share_minority_group=frequent.get("minority_all"),
        # every class of the two groups drawn down to the smallest one's predicted count
        matched_size=frequent.get("size"),
        top_member_share_majority_group_matched=frequent.get("majority"),
        top_member_share_minority_group_matched=frequent.get("minority"),
        members_needed_majority=int(needed[inputs.majority]),
        members_needed_minority=int(needed[inputs.minority]),
        # the majority drawn down to the minority's predicted count
        members_needed_majority_matched=more.get("majority"),
    )
    for key in ("members_needed_majority", "members_needed_minority"):
        row[key] = None if row[key] < 0 else row[key]
    int_keys = ("members_needed_majority", "members_needed_minority", "matched_size")
    return {
        "class_topk_members": topk,
        "members_to_cover": pa.table(cols),
        "class_mean_fe_top10": ranked_table(inputs, fe_vals, "mean_fe", fe_idx),
        "diversity": one_row(row, int_keys=int_keys),
    }


def members_by_seed(
    spec: CrossRunTable, runs: Sequence[RunFiles], all_runs: Sequence[RunFiles]
) -> pa.Table:
    """The cross-run table of Fig 9 per run: the majority's and the minority's rows of each
    run's ``rq6/members_to_cover`` (the table its catalog entry ``spec`` reads)."""
    return stack(runs, spec.reads[0], _role_rows)


def _role_rows(table: pa.Table) -> pa.Table:
    return table.filter(pc.is_in(table["role"], pa.array(["majority", "minority"])))
