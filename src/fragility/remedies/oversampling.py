"""Over-sampling in FE space, phase 2 of EOS and its baselines: synthetic training FE that
balance the classes, then a fresh linear head on original and synthetic FE together
(:func:`fragility.remedies.retraining.oversampling_fit`).

:func:`eos_oversample` computes EOS as the EOS paper's text describes it,
:func:`eos_authors_oversample` as its authors' code computes it; :func:`random_oversample`
and :func:`smote` are the classic baselines. Nearest neighbours are found with
``torch.cdist`` (:func:`knn`).
"""

from __future__ import annotations

import numpy as np
import torch

from fragility.errors import ConfigError, FragilityError
from fragility.remedies.retraining import oversampling_fit
from fragility.training.heads import head_device

_KNN_BUDGET = 2**25  # distance-matrix entries per chunk (float64: 256 MiB)


# -- k nearest neighbours ------------------------------------------------------------------------


def knn(
    query: np.ndarray,
    k: int,
    *,
    ref: np.ndarray | None = None,
    chunk_size: int | None = None,
    device: str = "auto",
) -> np.ndarray:
    """Indices ``(Nq, k')`` of the k nearest rows of ``ref`` (Euclidean), nearest first.

    ``ref=None`` searches ``query`` itself and excludes each point from its own list (by index,
    so exact duplicates of a point are still found as neighbours). ``k' = min(k, available)``.
    Vectorised: ``torch.cdist`` (float64) over row chunks of ``chunk_size`` queries (default: a
    chunk holds about 2**25 distances, i.e. 256 MiB) followed by ``topk``.
    """
    self_search = ref is None
    q = np.asarray(query, dtype=np.float64)
    r = q if self_search else np.asarray(ref, dtype=np.float64)
    n_q, n_r = q.shape[0], r.shape[0]
    k = min(int(k), n_r - 1 if self_search else n_r)
    if k <= 0 or n_q == 0:
        return np.zeros((n_q, max(k, 0)), dtype=np.int64)
    dev = head_device(device)
    rt = torch.as_tensor(r, device=dev)
    qt = rt if self_search else torch.as_tensor(q, device=dev)
    chunk = int(chunk_size) if chunk_size else max(1, _KNN_BUDGET // max(n_r, 1))
    out = np.empty((n_q, k), dtype=np.int64)
    for start in range(0, n_q, chunk):
        stop = min(start + chunk, n_q)
        d = torch.cdist(qt[start:stop], rt)
        if self_search:
            rows = torch.arange(stop - start, device=dev)
            d[rows, rows + start] = float("inf")
        out[start:stop] = d.topk(k, dim=1, largest=False, sorted=True).indices.cpu().numpy()
    return out


# -- over-sampling in FE space -------------------------------------------------------------------


def _labels(fe: np.ndarray, y: np.ndarray, n_classes: int | None) -> tuple:
    fe = np.asarray(fe, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if fe.ndim != 2 or y.shape != (fe.shape[0],):
        raise ValueError(f"fe must be (N, H) and y (N,), got {fe.shape} and {y.shape}")
    n_classes = int(n_classes) if n_classes is not None else int(y.max(initial=-1)) + 1
    return fe, y, np.bincount(y, minlength=n_classes), n_classes


def _needed(counts: np.ndarray, target) -> np.ndarray:
    """Synthetic points per class: ``max(target_c - count_c, 0)``; target None = majority."""
    if target is None:
        target = np.full(counts.shape, counts.max(initial=0))
    target = np.broadcast_to(np.asarray(target, dtype=np.int64), counts.shape)
    return np.maximum(target - counts, 0)


def _classes_to_fill(y: np.ndarray, need: np.ndarray, info: dict):
    """Each class that needs synthetic points, with its members and how many it needs; a
    class with no instance to draw from gets none and is listed in ``info["empty_classes"]``."""
    for c in np.flatnonzero(need):
        members = np.flatnonzero(y == c)
        if members.size == 0:
            info["empty_classes"].append(int(c))
            info["synthetic"][c] = 0
            continue
        yield c, members, int(need[c])


def _finish(parts_fe, parts_y, width: int, info: dict, sources: dict):
    fe_syn = (
        np.concatenate(parts_fe).astype(np.float32)
        if parts_fe
        else np.zeros((0, width), dtype=np.float32)
    )
    y_syn = np.concatenate(parts_y).astype(np.int64) if parts_y else np.zeros(0, dtype=np.int64)
    for key, vals in sources.items():  # base, partner, r (and EOS's enemy)
        info[f"{key}_index" if key != "r" else "r"] = (
            np.concatenate(vals) if vals else np.zeros(0, dtype=np.float64 if key == "r" else int)
        )
    return fe_syn, y_syn, info


def _interpolate(fe: np.ndarray, base: np.ndarray, partner: np.ndarray, r: np.ndarray):
    """``fe[base] + r * (fe[partner] - fe[base])`` row-wise, computed in float64."""
    b = fe[base].astype(np.float64)
    return b + r[:, None] * (fe[partner].astype(np.float64) - b)


EOS_K_MAX = 10  # the EOS paper's k, set on CIFAR-10, whose smallest class has 50 images


EOS_VARIANTS = ("paper", "authors")


def scaled_k(counts, k_max: int) -> int:
    """The default neighbour count ``min(k_max, smallest class count - 1)``, at least 1.

    ``counts`` (C,) are the training counts per class; classes without an instance are left
    out of "smallest". With k at least the smallest class's size, every one of its instances
    has an other-class point among its k nearest neighbours, so EOS's enemy test would pick
    all of them as bases: k must stay below the smallest class for the test to select.
    """
    counts = np.asarray(counts, dtype=np.int64)
    present = counts[counts > 0]
    smallest = int(present.min()) if present.size else 1
    return max(1, min(int(k_max), smallest - 1))


def _one_rank_nearer_fallback(
    fe: np.ndarray, members: np.ndarray, base: np.ndarray, enemy: np.ndarray
) -> np.ndarray:
    """The authors' partner for a class with no enemy in any k-NN: the neighbour one rank
    nearer than the base's nearest other-class instance ``enemy``. Every instance nearer than
    the nearest enemy is of the base's class, so that partner is the farthest instance of
    ``members`` strictly nearer to the base than the enemy (the base itself when none is).
    ``base``/``enemy`` are (n,) row indices of ``fe``; returns (n,) row indices."""
    unique, first = np.unique(base, return_index=True)
    ref = fe[members].astype(np.float64)
    partner_of = unique.copy()
    # rows per chunk so that one (rows, members, H) difference array stays within the budget
    rows = max(1, _KNN_BUDGET // max(members.size * fe.shape[1], 1))
    for start in range(0, unique.size, rows):
        b = unique[start : start + rows]
        e = enemy[first[start : start + rows]]
        q = fe[b].astype(np.float64)
        dist = np.sqrt(((q[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2))  # (rows, M)
        to_enemy = np.sqrt(((q - fe[e].astype(np.float64)) ** 2).sum(axis=1))  # (rows,)
        nearer = (dist < to_enemy[:, None]) & (members[None, :] != b[:, None])
        pick = np.where(nearer, dist, -np.inf).argmax(axis=1)
        partner_of[start : start + rows] = np.where(nearer.any(axis=1), members[pick], b)
    return partner_of[np.searchsorted(unique, base)]


def _eos_k(counts: np.ndarray, k: int | None) -> tuple[int, str]:
    """EOS's k and where it came from: given, or :func:`scaled_k` with the paper's 10."""
    if k is not None:
        return int(k), "given"
    present = counts[counts > 0]
    smallest = int(present.min()) if present.size else 0
    return scaled_k(counts, EOS_K_MAX), f"min({EOS_K_MAX}, smallest class {smallest} - 1)"


def _eos_draws(fe, y, members, n_new, nbr, enemy, rng, variant, device) -> tuple:
    """``(base, drawn_enemy, partner, n_bases, fallback)`` for ``n_new`` points of the class
    of ``members``: (n_new,) row indices each, the number of bases and whether the class had
    none (see :func:`eos_oversample`). ``nbr`` (N, k) is the k-NN, ``enemy`` its other-class
    mask."""
    bases = members[enemy[members].any(axis=1)]
    if bases.size:
        base = bases[rng.integers(0, bases.size, n_new)]
        scores = rng.random((n_new, nbr.shape[1]))
        scores[~enemy[base]] = -1.0  # argmax = uniform choice among the enemy neighbours
        column = scores.argmax(axis=1)  # column j holds neighbour rank j + 1
        drawn_enemy = nbr[base, column]
        if variant == "authors":  # one rank nearer: column j - 1, or the base itself (rank 0)
            partner = np.where(column > 0, nbr[base, np.maximum(column - 1, 0)], base)
        else:
            partner = drawn_enemy
        return base, drawn_enemy, partner, int(bases.size), False
    others = np.flatnonzero(y != y[members[0]])
    if others.size == 0:
        raise FragilityError("EOS needs at least two classes in the training FE")
    nearest = others[knn(fe[members], 1, ref=fe[others], device=device)[:, 0]]
    pick = rng.integers(0, members.size, n_new)
    base, drawn_enemy = members[pick], nearest[pick]
    if variant == "authors":
        partner = _one_rank_nearer_fallback(fe, members, base, drawn_enemy)
    else:
        partner = drawn_enemy
    return base, drawn_enemy, partner, int(members.size), True


def eos_oversample(
    fe: np.ndarray,
    y: np.ndarray,
    *,
    k: int | None = None,
    seed: int = 0,
    target=None,
    n_classes: int | None = None,
    chunk_size: int | None = None,
    device: str = "auto",
    return_info: bool = False,
    variant: str = "paper",
):
    """Expansive Over-Sampling (EOS; Dablain, Bellinger, Krawczyk and Chawla, "Efficient
    Augmentation for Imbalanced Deep Learning", 2023), phase 2: ``(fe_syn (S, H), y_syn (S,))``.

    The k nearest neighbours of every instance are found over *all* instances (itself
    excluded). For each class c with fewer than ``target_c`` instances (default: the majority
    count; ``target`` may be one int or a per-class sequence), the *bases* are the instances
    of c with an other-class neighbour ("enemy") among their k-NN; ``target_c - count_c``
    points ``base + r * (partner - base)`` are made, the base drawn uniformly (with
    replacement) among the bases, an enemy uniformly among that base's enemy neighbours,
    ``r ~ U(0, 1)``. The partner is the drawn enemy (``variant="paper"``, the paper's text) or
    the neighbour one rank nearer than it (``"authors"``, see :func:`eos_authors_oversample`);
    both variants draw the same random numbers, so with one seed they share bases, enemies
    and r. ``k=None`` uses :func:`scaled_k` with the paper's 10: ``min(10, smallest class
    count - 1)``, at least 1.

    Fallback: a class none of whose instances has an enemy among its k-NN uses *all* its
    instances as bases, each with its nearest other-class instance as enemy (listed in
    ``info["fallback_classes"]``); a class with no instance, in ``info["empty_classes"]``.
    Seeded with ``numpy.random.default_rng(seed)``.

    ``return_info=True`` also returns a dict: ``variant``, ``k``, ``k_source``, per-class
    ``synthetic`` and ``bases`` counts, ``partner_is_base`` and ``partner_same_class`` (points
    interpolating towards the base itself / its own class: 0 for the paper's variant) and,
    per point, ``base_index``, ``enemy_index``, ``partner_index`` and ``r``.
    """
    if variant not in EOS_VARIANTS:
        raise ConfigError(f"EOS variant must be one of {list(EOS_VARIANTS)}, got {variant!r}")
    fe, y, counts, n_classes = _labels(fe, y, n_classes)
    need = _needed(counts, target)
    k, k_source = _eos_k(counts, k)
    rng = np.random.default_rng(seed)
    info = {
        "variant": variant,
        "k": k,
        "k_source": k_source,
        "synthetic": need.tolist(),
        "bases": [0] * n_classes,
        "fallback_classes": [],
        "empty_classes": [],
    }
    parts_fe, parts_y = [], []
    sources = {"base": [], "partner": [], "enemy": [], "r": []}
    if need.sum() > 0:
        nbr = knn(fe, k, chunk_size=chunk_size, device=device)  # (N, k), nearest first
        enemy = y[nbr] != y[:, None]
    for c, members, n_new in _classes_to_fill(y, need, info):
        base, drawn_enemy, partner, n_bases, fallback = _eos_draws(
            fe, y, members, n_new, nbr, enemy, rng, variant, device
        )
        info["bases"][c] = n_bases
        info["fallback_classes"] += [int(c)] if fallback else []
        r = rng.random(n_new)
        parts_fe.append(_interpolate(fe, base, partner, r))
        parts_y.append(np.full(n_new, c))
        for key, value in zip(sources, (base, partner, drawn_enemy, r)):
            sources[key].append(value)
    fe_syn, y_syn, info = _finish(parts_fe, parts_y, fe.shape[1], info, sources)
    base_index, partner_index = info["base_index"], info["partner_index"]
    info["partner_is_base"] = int(np.sum(partner_index == base_index))
    info["partner_same_class"] = int(np.sum(y[partner_index] == y[base_index]))
    return (fe_syn, y_syn, info) if return_info else (fe_syn, y_syn)


def eos_authors_oversample(fe: np.ndarray, y: np.ndarray, **kwargs):
    """EOS as its authors' published code (``dd1github/EOS``, ``EOS.py``) computes it:
    :func:`eos_oversample` with ``variant="authors"``; same arguments and returns.

    Bases and enemies are drawn as in the paper's text, but the partner is the neighbour one
    rank *nearer* than the drawn enemy, counting the base itself as rank 0 (their code reads
    ``ind2[base, ni]`` with ``ni`` drawn over enemy ranks 1..k numbered from 0, while column
    0 of ``ind2`` is the base). An enemy at rank 1 gives the base itself (a copy); an enemy
    at rank j > 1 gives the rank j - 1 neighbour, often of the base's own class. In a class
    with no base (the fallback) the partner is, likewise, the neighbour just before the
    nearest other-class instance: the farthest same-class instance strictly nearer than it,
    or the base itself.
    """
    return eos_oversample(fe, y, variant="authors", **kwargs)


def random_oversample(
    fe: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    *,
    target=None,
    n_classes: int | None = None,
    return_info: bool = False,
):
    """Random over-sampling in FE space: ``(fe_syn, y_syn)``, exact copies of instances drawn
    uniformly with replacement within each class until it reaches ``target`` (default: the
    majority count). ``info["base_index"]`` gives the copied rows."""
    fe, y, counts, n_classes = _labels(fe, y, n_classes)
    need = _needed(counts, target)
    rng = np.random.default_rng(seed)
    info = {"synthetic": need.tolist(), "empty_classes": []}
    parts_fe, parts_y, sources = [], [], {"base": [], "partner": [], "r": []}
    for c, members, n_new in _classes_to_fill(y, need, info):
        base = members[rng.integers(0, members.size, n_new)]
        parts_fe.append(fe[base])
        parts_y.append(np.full(base.size, c))
        sources["base"].append(base)
    fe_syn, y_syn, info = _finish(parts_fe, parts_y, fe.shape[1], info, sources)
    return (fe_syn, y_syn, info) if return_info else (fe_syn, y_syn)


def smote(
    fe: np.ndarray,
    y: np.ndarray,
    k: int = 5,
    seed: int = 0,
    *,
    target=None,
    n_classes: int | None = None,
    chunk_size: int | None = None,
    device: str = "auto",
    return_info: bool = False,
):
    """SMOTE in FE space: ``(fe_syn, y_syn)``, points ``base + r * (nbr - base)`` with the base
    uniform (with replacement) in its class, ``nbr`` uniform among the base's k nearest
    *same-class* neighbours, ``r ~ U(0, 1)``; until every class reaches ``target`` (default:
    the majority count). A class with fewer than k+1 instances uses all of its others as
    neighbours; a class with a single instance can only be copied (listed in
    ``info["copied_classes"]``). ``k`` thus scales to each class by itself (its neighbours
    are of its own class, unlike EOS's): ``info["k_per_class"]`` records ``min(k, count - 1)``
    for every over-sampled class (None for the others)."""
    fe, y, counts, n_classes = _labels(fe, y, n_classes)
    need = _needed(counts, target)
    rng = np.random.default_rng(seed)
    info = {
        "k": int(k),
        "k_per_class": [
            max(min(int(k), int(n) - 1), 0) if m > 0 and n > 0 else None
            for n, m in zip(counts, need)
        ],
        "synthetic": need.tolist(),
        "copied_classes": [],
        "empty_classes": [],
    }
    parts_fe, parts_y, sources = [], [], {"base": [], "partner": [], "r": []}
    for c, members, n_new in _classes_to_fill(y, need, info):
        local = rng.integers(0, members.size, n_new)
        if members.size == 1:
            partner_local = local
            info["copied_classes"].append(int(c))
        else:
            nbr = knn(fe[members], k, chunk_size=chunk_size, device=device)
            partner_local = nbr[local, rng.integers(0, nbr.shape[1], n_new)]
        r = rng.random(n_new)
        base, partner = members[local], members[partner_local]
        parts_fe.append(_interpolate(fe, base, partner, r))
        parts_y.append(np.full(n_new, c))
        sources["base"].append(base)
        sources["partner"].append(partner)
        sources["r"].append(r)
    fe_syn, y_syn, info = _finish(parts_fe, parts_y, fe.shape[1], info, sources)
    return (fe_syn, y_syn, info) if return_info else (fe_syn, y_syn)


# -- the remedies: each sampler, then a fresh head ------------------------------------------------

fit_eos = oversampling_fit(eos_oversample, ("k", "target"))
fit_eos_authors = oversampling_fit(eos_authors_oversample, ("k", "target"))
fit_ros = oversampling_fit(random_oversample, ("target",))
fit_smote = oversampling_fit(smote, ("k", "target"))
