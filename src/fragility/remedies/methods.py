"""Feature-space remedies for class imbalance (SPEC §5): EOS and its baselines.

Every remedy starts from a trained run (phase 1: its embeddings and classifier, as written by
:mod:`fragility.embeddings.extraction`) and ends with a *linear head* ``(W, bias, normed)`` such that

    logits = fe' @ W.T + bias,     fe' = fe (normed False) or fe / ||fe|| (normed True),

the same contract as ``classifier.parquet``, so the remedied model goes through the RQ
analyses (CE decomposition ``sum_h CE + bias == logits``) like any other run.

Remedies (registry :data:`REMEDIES`):

- ``eos``, ``eos_authors``, ``ros``, ``smote``: phase 2 over-samples the *training* FE to
  balance (:func:`eos_oversample` as the EOS paper's text describes it,
  :func:`eos_authors_oversample` as its authors' code computes it, :func:`random_oversample`,
  :func:`smote`), phase 3 fits a fresh linear head on original + synthetic FE with CE and SGD
  and keeps the epoch whose head has the best validation BAC
  (:func:`fit_linear_head_on_val`; the last epoch when the run has no validation split).
- ``crt``: classifier re-training (Kang et al. 2020): a fresh head on the original FE with
  class-balanced minibatches.
- ``tau_norm``: τ-normalisation of the trained classifier's weights (Kang et al. 2020), τ chosen
  on a validation split by BAC (:func:`choose_tau`).
- ``logit_adjust``: post-hoc logit adjustment (Menon et al. 2021) with the training class prior.

Fresh heads are trained on the raw FE, so their ``normed`` is False even when the run's own
classifier was a cosine (normed) one; the post-hoc remedies keep the run's form.

The test set is only ever evaluated at the end: no choice (τ, early stopping, ...) looks at it.
torch is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fragility.embeddings.files import NORM_EPS, head_logits
from fragility.errors import ConfigError, FragilityError
from fragility.metrics import balanced_accuracy, summary

_KNN_BUDGET = 2**25  # distance-matrix entries per chunk (float64: 256 MiB)


# -- k nearest neighbours ------------------------------------------------------------------------


def _device(device):
    """The torch device a remedy computes on. ``auto`` is the CPU unless this process holds
    a GPU of its own (:func:`fragility.training.gpus.holds_gpu`): a remedy job claims none, so it
    never opens a CUDA context outside ``--resources gpu=N``, and its numbers do not depend
    on whether it ran on a workstation with a GPU or on a CPU node of a cluster. An explicit
    CUDA device is refused inside a workflow job that holds no GPU."""
    import os

    from fragility.training.engine import resolve_device

    # imported here: this module stays importable without torch until a remedy runs
    from fragility.training.gpus import SLOTS_ENV, holds_gpu

    if str(device) == "auto":
        return resolve_device("auto") if holds_gpu() else resolve_device("cpu")
    resolved = resolve_device(device)
    if resolved.type == "cuda" and SLOTS_ENV in os.environ and not holds_gpu():
        raise ConfigError(
            f"remedy device {device!r}: remedy jobs hold no GPU (they run outside "
            f"--resources gpu=N and on CPU nodes of a cluster); use cpu or auto"
        )
    return resolved


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
    import torch

    self_search = ref is None
    q = np.asarray(query, dtype=np.float64)
    r = q if self_search else np.asarray(ref, dtype=np.float64)
    n_q, n_r = q.shape[0], r.shape[0]
    k = min(int(k), n_r - 1 if self_search else n_r)
    if k <= 0 or n_q == 0:
        return np.zeros((n_q, max(k, 0)), dtype=np.int64)
    dev = _device(device)
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


# -- phase 2: over-sampling in FE space ---------------------------------------------------------


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
    for c in np.flatnonzero(need):
        members = np.flatnonzero(y == c)
        n_new = int(need[c])
        if members.size == 0:
            info["empty_classes"].append(int(c))
            info["synthetic"][c] = 0
            continue
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
    for c in np.flatnonzero(need):
        members = np.flatnonzero(y == c)
        if members.size == 0:
            info["empty_classes"].append(int(c))
            info["synthetic"][c] = 0
            continue
        base = members[rng.integers(0, members.size, int(need[c]))]
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
    for c in np.flatnonzero(need):
        members = np.flatnonzero(y == c)
        n_new = int(need[c])
        if members.size == 0:
            info["empty_classes"].append(int(c))
            info["synthetic"][c] = 0
            continue
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


# -- phase 3: a linear head ---------------------------------------------------------------------


def class_balanced_indices(y: np.ndarray, size: int, generator) -> np.ndarray:
    """``size`` instance indices drawn class-balanced: a class uniformly among the classes
    present in ``y``, then an instance uniformly within it (with replacement).
    ``generator`` is a seeded ``torch.Generator``; returns a torch int64 tensor."""
    import torch

    y = np.asarray(y, dtype=np.int64)
    order = np.argsort(y, kind="stable")
    classes, starts, sizes = np.unique(y[order], return_index=True, return_counts=True)
    order_t = torch.as_tensor(order)
    starts_t, sizes_t = torch.as_tensor(starts), torch.as_tensor(sizes)
    cls = torch.randint(len(classes), (int(size),), generator=generator)
    offset = (torch.rand(int(size), generator=generator, dtype=torch.float64) * sizes_t[cls]).long()
    offset = torch.minimum(offset, sizes_t[cls] - 1)
    return order_t[starts_t[cls] + offset]


def _step_rates(lr: float, total: int, schedule: str) -> list[float]:
    """The learning rate of each of ``total`` steps: constant, or cosine-decayed from ``lr``
    to 0 over them (``CosineAnnealingLR(T_max=total)``'s closed form)."""
    if schedule == "constant":
        return [lr] * total
    return [lr * (1 + math.cos(math.pi * k / max(total, 1))) / 2 for k in range(total)]


def _initial_head(n_classes: int, width: int, init, gen):
    """``(W (C, H), b (C,))`` torch tensors: a copy of ``init``, else U(-1/sqrt(H), 1/sqrt(H))
    like ``nn.Linear``, drawn from ``gen``."""
    import torch

    if init is None:
        bound = 1.0 / float(np.sqrt(width))
        weight = (torch.rand(n_classes, width, generator=gen) * 2 - 1) * bound
        bias = (torch.rand(n_classes, generator=gen) * 2 - 1) * bound
        return weight, bias
    weight = torch.tensor(np.asarray(init[0], dtype=np.float32))
    bias = torch.tensor(np.asarray(init[1], dtype=np.float32))
    if weight.shape != (n_classes, width) or bias.shape != (n_classes,):
        raise ValueError(f"init must be ((C, H), (C,)) = (({n_classes}, {width}), ...)")
    return weight, bias


def fit_linear_head(
    fe: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 10,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 2e-4,
    batch_size: int = 128,
    seed: int = 0,
    sampler: str = "uniform",
    init: tuple[np.ndarray, np.ndarray] | None = None,
    schedule: str = "cosine",
    device: str = "cpu",
    on_epoch_end: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase 3 (SPEC §5): train ``logits = fe @ W.T + bias`` with CE and SGD; ``(W, b)`` float32.

    ``sampler="uniform"`` shuffles the data every epoch (each instance once per epoch);
    ``"class_balanced"`` (cRT) draws each minibatch with :func:`class_balanced_indices`, the
    same number of steps per epoch (ceil(N / batch_size)). The learning rate follows a cosine
    decay over all steps (``schedule="cosine"``, as RQ1's re-training) or stays constant
    (``"constant"``). Initialisation: ``init=(W, b)`` copies, else U(-1/sqrt(H), 1/sqrt(H)) like
    ``nn.Linear`` from a ``torch.Generator`` seeded with ``seed``, which also drives the
    sampling: the same seed gives the same head (on the same device).

    ``on_epoch_end(epoch, weight, bias)``, if given, is called after each epoch (1-based) with
    the current ``(C, H)`` and ``(C,)`` torch tensors; it must not modify them.
    """
    import torch

    if sampler not in ("uniform", "class_balanced"):
        raise ConfigError(f"sampler must be 'uniform' or 'class_balanced', got {sampler!r}")
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    dev = _device(device)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.tensor(np.asarray(fe, dtype=np.float32), device=dev)  # a copy: Arrow is read-only
    labels = np.asarray(y, dtype=np.int64)
    t = torch.as_tensor(labels, device=dev)
    n, width = x.shape
    weight, bias = (v.to(dev) for v in _initial_head(n_classes, width, init, gen))
    steps = (n + batch_size - 1) // batch_size
    rates = _step_rates(lr, epochs * steps, schedule)
    # Plain SGD with momentum and weight decay on the analytic CE gradient
    # ((softmax - onehot) / B): the same updates as autograd + torch.optim.SGD, ~3x faster
    # because each step is tiny (B x H x C) and the per-call overhead dominated.
    buf_w, buf_b = torch.zeros_like(weight), torch.zeros_like(bias)
    step = 0
    with torch.no_grad():
        for epoch in range(epochs):
            if sampler == "uniform":
                order = torch.randperm(n, generator=gen)
            else:
                order = class_balanced_indices(labels, steps * batch_size, gen)
            # one gather per epoch; the minibatches are then views, not per-step copies
            order = order.to(dev)
            x_epoch, targets = x[order], torch.nn.functional.one_hot(t[order], n_classes)
            for i in range(steps):
                xb = x_epoch[i * batch_size : (i + 1) * batch_size]
                grad = torch.softmax(torch.addmm(bias, xb, weight.T), dim=1)
                grad.sub_(targets[i * batch_size : (i + 1) * batch_size]).div_(len(xb))
                grad_w = torch.addmm(weight, grad.T, xb, beta=weight_decay)
                grad_b = grad.sum(0).add_(bias, alpha=weight_decay)
                if step == 0:
                    buf_w.copy_(grad_w)
                    buf_b.copy_(grad_b)
                else:
                    buf_w.mul_(momentum).add_(grad_w)
                    buf_b.mul_(momentum).add_(grad_b)
                weight.add_(buf_w, alpha=-rates[step])
                bias.add_(buf_b, alpha=-rates[step])
                step += 1
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, weight, bias)
    return (
        weight.detach().cpu().numpy().astype(np.float32),
        bias.detach().cpu().numpy().astype(np.float32),
    )


def fit_linear_head_on_val(
    fe: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    fe_val: np.ndarray,
    y_val: np.ndarray,
    **head,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Phase 3 with the epoch chosen on a validation split: ``(W (C, H), b (C,), selection)``.

    Trains exactly as :func:`fit_linear_head` (``head`` takes its keywords; ``epochs`` at
    least 1) and, after every epoch, scores the head on ``fe_val`` (M, H), ``y_val`` (M,) by
    balanced accuracy (``argmax(fe_val @ W.T + b)``). The head of the epoch with the best
    validation BAC is returned (ties: the earliest such epoch), so the test set plays no part
    in the choice. With the cosine schedule that head is an intermediate state of the full
    schedule, not a head trained with fewer epochs. ``selection`` holds ``epoch_selection``
    ("val_bac"), ``epoch`` (1-based) and ``val_bac_per_epoch``.
    """
    epochs = int(head.get("epochs", 10))
    if epochs < 1:
        raise ConfigError(
            f"choosing the head's epoch on validation needs epochs >= 1, got {epochs}"
        )
    fe_val = np.asarray(fe_val, dtype=np.float32)
    y_val = np.asarray(y_val, dtype=np.int64)
    val_bacs: list[float] = []
    best: dict = {}

    def keep_best(epoch: int, weight, bias) -> None:
        W = weight.detach().cpu().numpy().astype(np.float32)
        b = bias.detach().cpu().numpy().astype(np.float32)
        # the same float32 evaluation as the remedy's final val/test metrics
        bac = balanced_accuracy(y_val, head_logits(fe_val, W, b, False).argmax(axis=1), n_classes)
        val_bacs.append(bac)
        if not best or bac > best["bac"]:
            best.update(bac=bac, epoch=epoch, weight=W, bias=b)

    fit_linear_head(fe, y, n_classes, on_epoch_end=keep_best, **head)
    selection = {
        "epoch_selection": "val_bac",
        "epoch": int(best["epoch"]),
        "val_bac_per_epoch": [float(v) for v in val_bacs],
    }
    return best["weight"], best["bias"], selection


# -- post-hoc: τ-normalisation and logit adjustment ---------------------------------------------


def tau_normalize(W: np.ndarray, tau: float) -> np.ndarray:
    """Row-wise ``W_c / ||W_c||**tau`` (Kang et al. 2020), same dtype as ``W``.

    τ = 0 leaves W unchanged, τ = 1 gives unit rows. The bias is not touched here; the τ-norm
    classifier of Kang et al. has none (their ``logits = fe @ W_tau.T``), see
    :func:`choose_tau` and the ``tau_norm`` remedy. Zero rows stay zero.
    """
    W = np.asarray(W)
    norms = np.maximum(np.linalg.norm(W.astype(np.float64), axis=1, keepdims=True), NORM_EPS)
    return (W / norms ** float(tau)).astype(W.dtype)


def _tau_bias(bias: np.ndarray, keep_bias: bool) -> np.ndarray:
    bias = np.asarray(bias, dtype=np.float32)
    return bias if keep_bias else np.zeros_like(bias)


def tau_val_bacs(
    fe_val, y_val, W, bias, taus, *, normed: bool = False, keep_bias: bool = False
) -> np.ndarray:
    """Validation BAC of the τ-normalised head for each τ in ``taus``."""
    n_classes = np.asarray(W).shape[0]
    b = _tau_bias(bias, keep_bias)
    return np.array(
        [
            balanced_accuracy(
                y_val,
                head_logits(fe_val, tau_normalize(W, t), b, normed).argmax(axis=1),
                n_classes,
            )
            for t in taus
        ]
    )


def choose_tau(
    fe_val: np.ndarray,
    y_val: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    taus=None,
    *,
    normed: bool = False,
    keep_bias: bool = False,
) -> float:
    """τ in ``taus`` (default ``np.linspace(0, 2, 21)``) maximising the validation BAC of the
    τ-normalised head; ties go to the smallest τ. The bias is dropped (Kang et al.) unless
    ``keep_bias``. Pass a validation split, never the test set."""
    taus = np.sort(np.asarray(np.linspace(0, 2, 21) if taus is None else taus, dtype=float))
    bacs = tau_val_bacs(fe_val, y_val, W, bias, taus, normed=normed, keep_bias=keep_bias)
    return float(taus[int(np.argmax(bacs))])  # argmax: first (smallest τ) of the maxima


def _log_prior(class_counts) -> np.ndarray:
    counts = np.asarray(class_counts, dtype=np.float64)
    if np.any(counts <= 0):
        raise FragilityError(
            "logit adjustment needs every class in the training counts; "
            f"got counts {counts.astype(int).tolist()}"
        )
    return np.log(counts / counts.sum())


def logit_adjust(logits: np.ndarray, class_counts, tau: float = 1.0) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al. 2021): ``logits - tau * log(prior)`` with
    ``prior = class_counts / sum(class_counts)`` (the training class frequencies)."""
    return np.asarray(logits, dtype=np.float64) - float(tau) * _log_prior(class_counts)


# -- remedies: registry and entry point ---------------------------------------------------------


@dataclass
class RemedyResult:
    """A remedied linear head and its evaluation.

    ``test_logits == fe'_test @ weight.T + bias`` and likewise ``train_logits`` (the original
    training FE, not the synthetic points), with fe' normalised when ``normed``. ``metrics`` is
    :func:`fragility.metrics.summary` on the test set; ``seconds`` the wall time of the remedy
    itself (over-sampling + head fitting, or the post-hoc fit), not of the final evaluation.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    normed: bool
    test_logits: np.ndarray
    test_pred: np.ndarray
    train_logits: np.ndarray
    metrics: dict
    seconds: float
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready: name, metrics, seconds and info."""
        return {
            "remedy": self.name,
            "normed": self.normed,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "info": self.info,
        }


@dataclass(frozen=True)
class Remedy:
    """A registry entry: ``fit(train, val, classifier, seed, params) -> (W, b, normed, info)``."""

    fit: Callable
    params: dict
    description: str
    posthoc: bool = False  # adjusts the run's own classifier instead of fitting a fresh head


_HEAD_PARAMS = {
    "epochs": 10,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "batch_size": 128,
    "schedule": "cosine",
    "device": "cpu",
}


def _fresh_head(fe, y, n_classes, seed, params, sampler):
    head = {k: params[k] for k in _HEAD_PARAMS}
    return fit_linear_head(fe, y, n_classes, seed=seed, sampler=sampler, **head)


_OVERSAMPLING_PARAMS = {"target": None, "select": "val_bac"}
HEAD_SELECTIONS = ("val_bac", "last")


def _oversampling_fit(sample: Callable, sampler_keys: tuple):
    """Phase 2 (``sample``) then phase 3, the head's epoch chosen by ``params["select"]``:
    ``"val_bac"`` keeps the epoch with the best validation BAC (:func:`fit_linear_head_on_val`)
    and falls back to the last epoch, recorded as such, when the run has no validation split
    (e.g. a model trained elsewhere, or a dataset whose majority uses every training image);
    ``"last"`` always keeps the last epoch. The test set never takes part."""

    def fit(train, val, classifier, seed, params):
        n_classes = classifier["weight"].shape[0]
        fe, y = np.asarray(train["fe"], dtype=np.float32), np.asarray(train["label"])
        kwargs = {k: params[k] for k in sampler_keys}
        fe_syn, y_syn, info = sample(
            fe, y, seed=seed, n_classes=n_classes, return_info=True, **kwargs
        )
        fe_all, y_all = np.concatenate([fe, fe_syn]), np.concatenate([y, y_syn])
        select = params["select"]
        if select not in HEAD_SELECTIONS:
            raise ConfigError(
                f"select must be one of {list(HEAD_SELECTIONS)} (the head's epoch), got {select!r}"
            )
        has_val = val is not None and len(val["label"]) > 0
        if select == "val_bac" and has_val:
            head = {k: params[k] for k in _HEAD_PARAMS}
            W, b, selection = fit_linear_head_on_val(
                fe_all, y_all, n_classes, val["fe"], val["label"], seed=seed, **head
            )
        else:
            W, b = _fresh_head(fe_all, y_all, n_classes, seed, params, "uniform")
            reason = "select: last" if select == "last" else "no validation split"
            selection = {"epoch_selection": f"last ({reason})", "epoch": int(params["epochs"])}
        info = {k: v for k, v in info.items() if not isinstance(v, np.ndarray)}
        info["n_synthetic"] = int(len(y_syn))
        info.update(selection)
        return W, b, False, info

    return fit


def _crt_fit(train, val, classifier, seed, params):
    n_classes = classifier["weight"].shape[0]
    W, b = _fresh_head(train["fe"], train["label"], n_classes, seed, params, "class_balanced")
    return W, b, False, {}


def _tau_norm_fit(train, val, classifier, seed, params):
    W, bias, normed = classifier["weight"], classifier["bias"], bool(classifier["normed"])
    info = {"keep_bias": bool(params["keep_bias"])}
    if params["tau"] is not None:
        tau = float(params["tau"])
        info["tau_source"] = "params"
    else:
        if val is None:
            raise FragilityError(
                "tau_norm chooses τ on a validation split: pass val= (the run's validation "
                "embeddings), or fix params={'tau': ...}; the test set is never used for this"
            )
        taus = np.sort(np.asarray(params["taus"], dtype=float))
        bacs = tau_val_bacs(
            val["fe"], val["label"], W, bias, taus, normed=normed, keep_bias=params["keep_bias"]
        )
        tau = float(taus[int(np.argmax(bacs))])
        info.update(tau_source="val", taus=taus.tolist(), val_bac=bacs.tolist())
    info["tau"] = tau
    return (
        tau_normalize(np.asarray(W, np.float32), tau),
        _tau_bias(bias, params["keep_bias"]),
        normed,
        info,
    )


def _logit_adjust_fit(train, val, classifier, seed, params):
    n_classes = classifier["weight"].shape[0]
    counts = np.bincount(np.asarray(train["label"], dtype=np.int64), minlength=n_classes)
    tau = float(params["tau"])
    bias = np.asarray(classifier["bias"], dtype=np.float64) - tau * _log_prior(counts)
    info = {"tau": tau, "class_counts": counts.tolist()}
    return (
        np.asarray(classifier["weight"], dtype=np.float32),
        bias.astype(np.float32),
        bool(classifier["normed"]),
        info,
    )


REMEDIES: dict[str, Remedy] = {
    "eos": Remedy(
        _oversampling_fit(eos_oversample, ("k", "target")),
        {"k": None, **_OVERSAMPLING_PARAMS, **_HEAD_PARAMS},
        "EOS in FE space as the paper describes it (base towards an enemy in its k-NN) "
        "+ fresh linear head",
    ),
    "eos_authors": Remedy(
        _oversampling_fit(eos_authors_oversample, ("k", "target")),
        {"k": None, **_OVERSAMPLING_PARAMS, **_HEAD_PARAMS},
        "EOS as the authors' code computes it (base towards the neighbour one rank nearer "
        "than the drawn enemy) + fresh linear head",
    ),
    "ros": Remedy(
        _oversampling_fit(random_oversample, ("target",)),
        {**_OVERSAMPLING_PARAMS, **_HEAD_PARAMS},
        "random over-sampling of FE + fresh linear head",
    ),
    "smote": Remedy(
        _oversampling_fit(smote, ("k", "target")),
        {"k": 5, **_OVERSAMPLING_PARAMS, **_HEAD_PARAMS},
        "SMOTE in FE space + fresh linear head",
    ),
    "crt": Remedy(
        _crt_fit,
        dict(_HEAD_PARAMS),
        "classifier re-training: fresh linear head, class-balanced minibatches",
    ),
    "tau_norm": Remedy(
        _tau_norm_fit,
        {"tau": None, "taus": np.linspace(0, 2, 21).tolist(), "keep_bias": False},
        "τ-normalised classifier weights, τ by validation BAC (bias dropped)",
        posthoc=True,
    ),
    "logit_adjust": Remedy(
        _logit_adjust_fit,
        {"tau": 1.0},
        "post-hoc logit adjustment: bias - τ log(training prior)",
        posthoc=True,
    ),
}


def _resolve_params(name: str, params: dict | None) -> dict:
    if name not in REMEDIES:
        raise ConfigError(f"unknown remedy {name!r}; valid: {', '.join(REMEDIES)}")
    defaults = REMEDIES[name].params
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ConfigError(
            f"remedy {name!r} has no parameter(s) {unknown}; valid: {', '.join(defaults)}"
        )
    return {**defaults, **(params or {})}


def apply_remedy(
    name: str,
    train: dict,
    test: dict,
    classifier: dict,
    *,
    val: dict | None = None,
    seed: int = 0,
    params: dict | None = None,
) -> RemedyResult:
    """Run remedy ``name`` (a key of :data:`REMEDIES`) on a trained run and evaluate it.

    ``train``/``test``/``val`` are :func:`fragility.embeddings.files.read_embeddings`-like dicts
    (``fe``, ``label``); ``classifier`` a :func:`~fragility.embeddings.files.read_classifier` dict.
    The remedy sees only ``train``, ``classifier`` and ``val`` (τ-norm's τ, the over-sampling
    heads' epoch); ``test`` is evaluated once the head is fixed. ``params`` override the
    remedy's defaults (``REMEDIES[name].params``; unknown keys are an error). With ``val`` given, ``info["val_metrics"]`` reports it too.
    """
    params = _resolve_params(name, params)
    n_classes = int(np.asarray(classifier["weight"]).shape[0])
    # one-time costs before the clock, so that no remedy's `seconds` pays for them: importing
    # torch and the CUDA probe (``_device`` imports torch)
    _device("auto")
    start = time.perf_counter()
    W, b, normed, info = REMEDIES[name].fit(train, val, classifier, int(seed), params)
    seconds = time.perf_counter() - start
    W = np.asarray(W, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    test_logits = head_logits(test["fe"], W, b, normed).astype(np.float32)
    train_logits = head_logits(train["fe"], W, b, normed).astype(np.float32)
    test_pred = test_logits.argmax(axis=1)
    if val is not None and len(val["label"]) > 0:
        val_pred = head_logits(val["fe"], W, b, normed).argmax(axis=1)
        info["val_metrics"] = summary(val["label"], val_pred, n_classes)
    if REMEDIES[name].posthoc and train.get("logits") is not None:
        # the classifier file must reproduce the run's own logits (SPEC decomposition)
        original = head_logits(
            train["fe"], classifier["weight"], classifier["bias"], bool(classifier["normed"])
        )
        info["classifier_max_abs_diff"] = float(np.abs(original - train["logits"]).max(initial=0))
    info["params"] = dict(params)
    return RemedyResult(
        name=name,
        weight=W,
        bias=b,
        normed=bool(normed),
        test_logits=test_logits,
        test_pred=test_pred,
        train_logits=train_logits,
        metrics=summary(test["label"], test_pred, n_classes),
        seconds=float(seconds),
        info=info,
    )
