"""Size matching: a statistic that moves with the number of instances it is computed on (a
top-10 set, a most-frequent share, a largest class mean) compares a small group with a large
one only after the large one is drawn down to the small one's size, per class, without
replacement, averaged over :data:`~fragility.catalog.claims.N_MATCHED_DRAWS` seeded draws."""

from __future__ import annotations

import numpy as np

from fragility.catalog.claims import N_MATCHED_DRAWS


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
