"""RQ4 — diversity of classification embeddings (Figs 4-6, Tables 3-4).

Class means use the *true* class: ``mean_ce[c] = mean over {n: y_n = c} of CE[n, c, :]``.
"""

from __future__ import annotations

import numpy as np

from fragility.analysis.embeddings import class_means, own_class_ce, safe_ratio, top_n_per_row


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
