"""RQ6 — diversity of feature embeddings (Figs 8, 9, 10a).

Instance top-K FE = the indices of an instance's K largest fe. A class's *members* are fe
indices ordered by how many of the class's instances have them in their top-K set (higher
count first, lower index on ties). ``classes`` assigns instances to classes: pass the
predictions (SPEC: instance measures use the predicted class) or the labels.
"""

from __future__ import annotations

import numpy as np

from fragility.analysis.embeddings import class_means, top_n_per_row


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
