"""What a claim's statistic reads of one model, and what it gives back.

A claim of the paper is computed per imbalanced run by one function (named in its
:class:`fragility.catalog.claims.ClaimSpec`) that takes :class:`ClaimInputs` and returns
:class:`Measured`: the signed difference under the data as observed and under every bootstrap
replicate, the named values its plain-words detail quotes, and why it is *n/a* where it
cannot be measured.

Two conventions every statistic shares:

- **The paper's logit** is ``LG = Σ_h CE`` without the bias, and the paper's prediction its
  argmax (:func:`paper_pred`). Statistics of the training set that group instances by their
  predicted class use it; accuracy statistics (RQ1, RQ2) and RQ7's true and false positives
  use the head's own decisions, bias included (the embeddings' ``pred``).
- **Size matching.** A statistic that moves with the number of instances it is computed on
  (a top-10 set, a most-frequent share, a largest class mean) compares a small group with a
  large one only after the large one is drawn down to the small one's size, per class,
  without replacement, averaged over :data:`N_MATCHED_DRAWS` seeded draws (:func:`matched_draws`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fragility.catalog.claims import N_MATCHED_DRAWS
from fragility.embeddings.extraction import prepare_fe

N_TOP = 10  # the paper's "ten largest" (Figs 4, 7, 8, 10 and RQ7's top-10 identities)
HEADS = ("linear", "normed")  # a plain linear classifier, and a cosine one (LDAM's)


def majority_minority(n_per_class: np.ndarray) -> tuple[int, int]:
    """``(majority, minority)`` class indices from the training class sizes (C,).

    Majority = the largest class (first on ties), minority = the smallest class (*last* on
    ties), so a balanced run gives class 0 vs class C-1 as in the paper's Fig 2.
    """
    n = np.asarray(n_per_class)
    majority = int(np.argmax(n))
    minority = int(len(n) - 1 - np.argmin(n[::-1]))
    return majority, minority


GROUP_SHARE = 0.40  # the paper contrasts classes 0-3 with 6-9 of CIFAR-10's ten


def class_groups(n_per_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(majority group, minority group)``: class indices of the largest and the smallest
    40 % of the classes by training count, at least one class each (SPEC §4).

    Classes are ranked by count, largest first, ties in class order (as
    :func:`majority_minority`): on ten classes of an exp or step split that is 0-3 and 6-9,
    on two classes one each. Both groups are returned in class order.
    """
    n = np.asarray(n_per_class)
    size = max(1, int(np.floor(GROUP_SHARE * len(n) + 1e-9)))
    ranked = np.argsort(-n, kind="stable")
    return np.sort(ranked[:size]), np.sort(ranked[len(n) - size :])


def group_mean(per_class: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Mean over the classes of ``group`` of ``per_class (..., C)``, classes that are NaN
    (never predicted) left out; NaN when none is measured."""
    part = np.asarray(per_class, dtype=np.float64)[..., np.asarray(group, dtype=np.int64)]
    counted = np.isfinite(part).sum(axis=-1)
    total = np.where(np.isfinite(part), part, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / counted, np.nan)


@dataclass
class ModelView:
    """One model as the claims read it: ``train``/``test`` embedding dicts
    (:func:`fragility.embeddings.extraction.read_embeddings`), the classifier ``W (C, H)``, ``bias
    (C,)``, ``normed`` and the training class sizes ``counts (C,)``."""

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
    def head(self) -> str:
        """``"normed"`` for a cosine classifier, else ``"linear"``."""
        return "normed" if self.normed else "linear"

    @property
    def roles(self) -> tuple[int, int]:
        """``(majority, minority)``: the largest and the smallest training class."""
        return majority_minority(self.counts)

    @property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """The majority and minority groups: the largest and the smallest 40 % of the classes."""
        return class_groups(self.counts)

    def bias_free_logits(self, subset: str = "train") -> np.ndarray:
        """``fe' @ W.T`` (N, C): the paper's logit ``Σ_h CE`` of ``subset``'s instances."""
        return (
            prepare_fe(getattr(self, subset)["fe"], self.normed)
            @ np.asarray(self.W, dtype=np.float64).T
        )

    def paper_pred(self, subset: str = "train") -> np.ndarray:
        """The paper's prediction (N,): the argmax of the bias-free logit."""
        return np.argmax(self.bias_free_logits(subset), axis=1)


@dataclass
class ClaimInputs:
    """Everything a claim's statistic may read of one imbalanced run.

    ``view`` is the run; ``train_w`` and ``test_w`` ``(1 + B, N)`` are the bootstrap
    multiplicities of its training and test images, row 0 the data as observed. RQ1 reads ``retrained_pred`` (the re-trained classifier's
    test predictions) and ``balanced_test`` (``(labels, preds, weights)`` of Table 1's
    balanced model). The balanced-vs-imbalanced claims read ``partner`` (the balanced run of
    the same loss, head, architecture and epochs) with ``partner_train_w``; without one
    ``partner_missing`` says why."""

    view: ModelView
    train_w: np.ndarray
    test_w: np.ndarray
    ks: tuple[int, ...] = (2, 3, 5, 7)
    k_fe: int = 7
    retrained_pred: np.ndarray | None = None
    balanced_test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    balanced_name: str = ""  # Table 1's balanced model, in words ("ce seed 0")
    balanced_missing: str = "no balanced run of this dataset"
    partner: ModelView | None = None
    partner_train_w: np.ndarray | None = None
    partner_name: str = ""  # the balanced partner, in words ("ce seed 0")
    partner_missing: str = "no balanced run of the same loss, head, architecture and epochs"

    @property
    def n_boot(self) -> int:
        return int(self.test_w.shape[0]) - 1


@dataclass
class Measured:
    """A claim's difference ``values (1 + B,)`` (row 0 the data as observed; NaN replicates
    where a replicate cannot measure it), the named values ``parts`` its detail quotes, and
    ``extra`` statistics measured on the way (their own bootstrap rows). ``values`` is None
    when the claim cannot be measured on this run; ``reason`` then says why."""

    values: np.ndarray | None
    parts: dict = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def not_measurable(cls, reason: str, **parts) -> Measured:
        return cls(None, parts, {}, reason)


def point(values: np.ndarray) -> float | None:
    """Row 0 (the data as observed) of a replicate array, None where it is not finite."""
    value = float(np.asarray(values, dtype=np.float64).reshape(-1)[0])
    return value if np.isfinite(value) else None


def log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``log(num / den)`` elementwise, NaN unless both are positive (a ratio of sizes)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    ok = (num > 0) & (den > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.log(np.where(ok, num, 1.0) / np.where(ok, den, 1.0)), np.nan)


def matched_draws(
    classes: np.ndarray, sizes: dict[int, int], draws: int = N_MATCHED_DRAWS, seed=0
) -> np.ndarray:
    """Size-matched subsets ``(D, N)`` bool: per draw, ``sizes[c]`` instances of every class
    ``c`` named in ``sizes`` drawn without replacement (all of them when it has fewer);
    instances of other classes are in no subset. Seeded: the same inputs give the same draws
    on every machine."""
    classes = np.asarray(classes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    members = np.zeros((draws, len(classes)), dtype=bool)
    for c in sorted(sizes):
        pool = np.flatnonzero(classes == c)
        size = min(int(sizes[c]), len(pool))
        for d in range(draws):
            members[d, rng.choice(pool, size=size, replace=False)] = True
    return members


def largest_entry(means: np.ndarray) -> np.ndarray:
    """``(..., C, H)`` → the largest entry per class ``(..., C)``, NaN for an empty class."""
    filled = np.where(np.isnan(means), -np.inf, means)
    out = filled.max(axis=-1)
    return np.where(np.isneginf(out), np.nan, out)


def matched_class_stats(
    weights: np.ndarray,
    x: np.ndarray,
    classes: np.ndarray,
    n_classes: int,
    sizes: dict[int, int],
    stats: tuple,
    draws: int = N_MATCHED_DRAWS,
) -> tuple[np.ndarray, ...]:
    """For each of ``stats`` (each maps class mean vectors ``(..., H)`` to ``(...)``), its mean
    over size-matched draws (:func:`matched_draws` with ``sizes``) of a class's mean of ``x
    (N, H)`` over each draw's instances, under every replicate's multiplicities ``weights (B,
    N)``: one ``(B, C)`` array each, NaN for a class not in ``sizes`` or where no draw
    measured it. A class drawn at its full size is the same in every draw and is computed
    once. The sums are float32 (B x D small products per class; the multiplicities are whole
    numbers), the statistics float64."""
    weights = np.atleast_2d(weights)
    classes = np.asarray(classes, dtype=np.int64)
    subsets = matched_draws(classes, sizes, draws)
    out = [np.full((weights.shape[0], n_classes), np.nan) for _ in stats]
    for c in sizes:
        pool = np.flatnonzero(classes == c)
        if len(pool) == 0:
            continue
        masks = subsets[:, pool]
        block_w = weights[:, pool].astype(np.float32)  # gathered once, drawn from per draw
        block_x = np.asarray(x, dtype=np.float32)[pool]
        values: list[list[np.ndarray]] = [[] for _ in stats]
        for mask in masks[:1] if masks.all() else masks:
            w = block_w[:, mask]
            with np.errstate(invalid="ignore", divide="ignore"):
                means = (w @ block_x[mask]).astype(np.float64) / w.sum(axis=1, keepdims=True)
            for i, stat in enumerate(stats):
                values[i].append(stat(means))
        for i in range(len(stats)):
            out[i][:, c] = mean_over_draws(np.vstack(values[i]))
    return tuple(out)


def matched_class_stat(weights, x, classes, n_classes, sizes, stat, draws=N_MATCHED_DRAWS):
    """:func:`matched_class_stats` of one statistic ``stat``: ``(B, C)``."""
    return matched_class_stats(weights, x, classes, n_classes, sizes, (stat,), draws)[0]


def mean_over_draws(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of ``values (D, ...)`` ignoring non-finite entries; NaN where none."""
    ok = np.isfinite(values)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, values, 0.0).sum(axis=0) / count, np.nan)
