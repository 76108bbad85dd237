"""Feature-space remedies on tiny hand-made FE whose answers are known (comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fragility.catalog.remedies import REMEDIES, TAUS
from fragility.embeddings.files import head_logits
from fragility.errors import ConfigError, FragilityError
from fragility.metrics import balanced_accuracy
from fragility.remedies.oversampling import (
    eos_authors_oversample,
    eos_oversample,
    knn,
    random_oversample,
    scaled_k,
    smote,
)
from fragility.remedies.posthoc import fit_logit_adjust, fit_tau_norm, tau_normalize
from fragility.remedies.registry import apply_remedy
from fragility.remedies.retraining import fit_linear_head_on_val
from fragility.training.heads import class_balanced_indices, fit_linear_head

# -- helpers ------------------------------------------------------------------------------------


def brute_knn(x: np.ndarray, k: int, ref: np.ndarray | None = None) -> np.ndarray:
    """Reference k-NN in float64 numpy: full distance matrix, stable argsort."""
    self_search = ref is None
    ref = x if self_search else ref
    d = np.sqrt(((x[:, None, :].astype(float) - ref[None, :, :].astype(float)) ** 2).sum(-1))
    if self_search:
        np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def on_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> bool:
    """``p == a + r (b - a)`` for some 0 <= r <= 1 (r reconstructed by projection)."""
    a, b, p = a.astype(float), b.astype(float), p.astype(float)
    d = b - a
    dd = d @ d
    if dd == 0:
        return bool(np.abs(p - a).max() < tol)
    r = (p - a) @ d / dd
    return bool(-1e-6 <= r <= 1 + 1e-6 and np.abs(p - (a + r * d)).max() < tol)


def eos_pairs(fe: np.ndarray, y: np.ndarray, k: int) -> dict[int, list[tuple[int, int]]]:
    """Valid (base, enemy) pairs per class from the brute-force k-NN over all instances."""
    nbr = brute_knn(fe, k)
    pairs: dict[int, list] = {}
    for i in range(len(y)):
        for j in nbr[i]:
            if y[j] != y[i]:
                pairs.setdefault(int(y[i]), []).append((i, int(j)))
    return pairs


@pytest.fixture
def eos_toy():
    """2-D FE, k=3.

    class 0 (20 points, majority): (0.5 i, 0), i = 0..19.
    class 1 (8): 3 "boundary" points 0.3 above the class-0 line (their 3-NN hold class-0
    points: enemies) and 5 "interior" points packed around (100, 100), 0.1 apart (their 3-NN
    are each other: no enemy, never bases).
    class 2 (4): a 0.1-square at (-50, -50): no enemy in any 3-NN -> fallback, whose nearest
    other-class instance is (0, 0) = index 0 for all four.
    Needed: class 1 -> 20 - 8 = 12, class 2 -> 20 - 4 = 16, class 0 -> 0.
    """
    c0 = np.stack([0.5 * np.arange(20), np.zeros(20)], axis=1)
    boundary = np.array([[0.25, 0.3], [3.75, 0.3], [7.25, 0.3]])
    interior = np.stack([100 + 0.1 * np.arange(5), np.full(5, 100.0)], axis=1)
    c2 = np.array([[-50.0, -50.0], [-50.1, -50.0], [-50.0, -50.1], [-50.1, -50.1]])
    fe = np.concatenate([c0, boundary, interior, c2]).astype(np.float32)
    y = np.array([0] * 20 + [1] * 8 + [2] * 4)
    return fe, y


# -- k-NN ---------------------------------------------------------------------------------------


def test_knn_matches_brute_force_in_chunks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(57, 5)).astype(np.float32)
    got = knn(x, 4, chunk_size=10, device="cpu")  # 6 chunks, the last one partial
    np.testing.assert_array_equal(got, brute_knn(x, 4))
    np.testing.assert_array_equal(knn(x, 4, device="cpu"), got)  # one chunk
    ref = rng.normal(size=(23, 5))
    np.testing.assert_array_equal(
        knn(x, 3, ref=ref, chunk_size=7, device="cpu"), brute_knn(x, 3, ref)
    )
    assert knn(x[:3], 10, device="cpu").shape == (3, 2)  # k clamped to N - 1


def test_knn_keeps_exact_duplicates_as_neighbours():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    np.testing.assert_array_equal(knn(x, 1, device="cpu")[:, 0], [1, 0, 0])


# -- EOS ----------------------------------------------------------------------------------------


def test_eos_counts_and_segments(eos_toy):
    fe, y = eos_toy
    fe_syn, y_syn, info = eos_oversample(fe, y, k=3, seed=0, return_info=True, device="cpu")
    assert info["synthetic"] == [0, 12, 16]
    np.testing.assert_array_equal(np.bincount(y_syn, minlength=3), [0, 12, 16])
    np.testing.assert_array_equal(np.bincount(np.concatenate([y, y_syn])), [20, 20, 20])
    assert fe_syn.dtype == np.float32 and fe_syn.shape == (28, 2)
    assert info["fallback_classes"] == [2]
    assert info["bases"] == [0, 3, 4]

    pairs = eos_pairs(fe, y, k=3)
    # class 1: only the boundary points (20, 21, 22) have an enemy among their 3-NN
    assert sorted({b for b, _ in pairs[1]}) == [20, 21, 22]
    assert 2 not in pairs  # class 2 has no base with an enemy
    for p in fe_syn[y_syn == 1]:
        assert any(on_segment(p, fe[b], fe[e]) for b, e in pairs[1])
        assert p[0] < 10 and p[1] <= 0.3 + 1e-6  # never near the interior group
    assert set(info["base_index"][:12].tolist()) <= {20, 21, 22}
    # fallback: every class-2 instance is a base, its enemy the nearest other-class point (0,0)
    for p in fe_syn[y_syn == 2]:
        assert any(on_segment(p, fe[b], fe[0]) for b in (28, 29, 30, 31))
    np.testing.assert_array_equal(info["partner_index"][12:], 0)
    # recorded provenance reproduces every point
    rebuilt = fe[info["base_index"]] + info["r"][:, None] * (
        fe[info["partner_index"]] - fe[info["base_index"]]
    )
    np.testing.assert_allclose(fe_syn, rebuilt, atol=1e-5)
    assert np.all((info["r"] >= 0) & (info["r"] <= 1))


def test_eos_on_random_overlapping_classes():
    rng = np.random.default_rng(3)
    counts = [40, 12, 5]
    fe = np.concatenate(
        [rng.normal(loc=c, scale=1.0, size=(n, 3)) for c, n in enumerate(counts)]
    ).astype(np.float32)
    y = np.repeat(np.arange(3), counts)
    fe_syn, y_syn = eos_oversample(fe, y, k=5, seed=7, device="cpu")
    np.testing.assert_array_equal(np.bincount(y_syn, minlength=3), [0, 28, 35])
    pairs = eos_pairs(fe, y, k=5)
    for p, c in zip(fe_syn, y_syn):
        assert any(on_segment(p, fe[b], fe[e]) for b, e in pairs[int(c)])


def test_eos_seeded_and_target(eos_toy):
    fe, y = eos_toy
    a = eos_oversample(fe, y, k=3, seed=5, device="cpu")
    b = eos_oversample(fe, y, k=3, seed=5, device="cpu")
    c = eos_oversample(fe, y, k=3, seed=6, device="cpu")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    _, y_t = eos_oversample(fe, y, k=3, target=[0, 10, 5], device="cpu")
    np.testing.assert_array_equal(np.bincount(y_t, minlength=3), [0, 2, 1])
    _, y_none = eos_oversample(fe, y, k=3, target=2, device="cpu")
    assert y_none.size == 0


@pytest.fixture
def two_variant_neighbourhood():
    """2-D FE on the x-axis where the paper's and the authors' EOS provably differ (k = 3).

    class 0 (8, majority): M0 = (0, 0) [0], M1 = (4.2, 0) [1], six far points (100, 10 i).
    class 1 (2): B1 = (1, 0) [8], B2 = (2.2, 0) [9]; 8 - 2 = 6 synthetic points.
    3-NN, nearest first (distances):
      B1: M0 (1.0, enemy), B2 (1.2), M1 (3.2, enemy)   -> enemies at ranks 1 and 3
      B2: B1 (1.2), M1 (2.0, enemy), M0 (2.2, enemy)   -> enemies at ranks 2 and 3
    The authors' partner is the neighbour one rank nearer than the drawn enemy, rank 0 being
    the base itself:
      (B1, M0) -> B1 itself (a copy)      (B1, M1) -> B2 (rank 2, same class)
      (B2, M1) -> B1 (rank 1, same class) (B2, M0) -> M1 (rank 2, another enemy)
    """
    far = np.stack([np.full(6, 100.0), 10.0 * np.arange(6)], axis=1)
    xs = np.array([[0.0, 0.0], [4.2, 0.0]])
    fe = np.concatenate([xs, far, [[1.0, 0.0], [2.2, 0.0]]]).astype(np.float32)
    y = np.array([0] * 8 + [1] * 2)
    authors_partner = {(8, 0): 8, (8, 1): 9, (9, 1): 8, (9, 0): 1}
    return fe, y, authors_partner


def test_eos_variants_differ_only_in_the_partner(two_variant_neighbourhood):
    fe, y, authors_partner = two_variant_neighbourhood
    assert brute_knn(fe, 3)[8].tolist() == [0, 9, 1] and brute_knn(fe, 3)[9].tolist() == [8, 1, 0]
    paper = eos_oversample(fe, y, k=3, seed=0, return_info=True, device="cpu")
    authors = eos_authors_oversample(fe, y, k=3, seed=0, return_info=True, device="cpu")
    p_info, a_info = paper[2], authors[2]
    assert p_info["variant"] == "paper" and a_info["variant"] == "authors"
    # the same draws: bases, enemies and r
    for key in ("base_index", "enemy_index", "r"):
        np.testing.assert_array_equal(p_info[key], a_info[key])
    pairs = list(zip(a_info["base_index"].tolist(), a_info["enemy_index"].tolist()))
    assert set(pairs) == set(authors_partner)  # seed 0's six draws hit all four cases
    # the paper's partner is the drawn enemy, the authors' the hand-derived neighbour
    np.testing.assert_array_equal(p_info["partner_index"], p_info["enemy_index"])
    assert a_info["partner_index"].tolist() == [authors_partner[p] for p in pairs]
    for fe_syn, _, info in (paper, authors):
        b, q = info["base_index"], info["partner_index"]
        expected = fe[b].astype(float) + info["r"][:, None] * (fe[q] - fe[b]).astype(float)
        np.testing.assert_allclose(fe_syn, expected, atol=1e-6)
    # (B1, M0) draws are exact copies of B1 in the authors' variant, never in the paper's
    copy = [p == (8, 0) for p in pairs]
    np.testing.assert_array_equal(authors[0][copy], np.repeat(fe[[8]], sum(copy), axis=0))
    assert not np.any(np.all(paper[0] == fe[8], axis=1))
    assert a_info["partner_is_base"] == sum(copy) and p_info["partner_is_base"] == 0
    same = sum(p in ((8, 0), (8, 1), (9, 1)) for p in pairs)
    assert a_info["partner_same_class"] == same and p_info["partner_same_class"] == 0
    np.testing.assert_array_equal(paper[1], authors[1])


def test_eos_authors_fallback_takes_the_neighbour_before_the_nearest_enemy(eos_toy):
    # class 2 of eos_toy, a 0.1-square at (-50, -50), has no enemy in any 3-NN; its nearest
    # other-class instance is (0, 0) [0] at ~70.7 for every corner. The neighbour one rank
    # nearer is the last corner before it: the diagonally opposite one (0.1414 away).
    fe, y = eos_toy
    _, _, info = eos_authors_oversample(fe, y, k=3, seed=0, return_info=True, device="cpu")
    assert info["fallback_classes"] == [2]
    opposite = {28: 31, 29: 30, 30: 29, 31: 28}
    syn2 = info["base_index"] >= 28
    assert syn2.sum() == 16
    np.testing.assert_array_equal(info["enemy_index"][syn2], 0)
    assert info["partner_index"][syn2].tolist() == [
        opposite[b] for b in info["base_index"][syn2].tolist()
    ]


def test_eos_variants_are_seeded(eos_toy):
    fe, y = eos_toy
    for sample in (eos_oversample, eos_authors_oversample):
        a = sample(fe, y, k=3, seed=5, device="cpu")
        b = sample(fe, y, k=3, seed=5, device="cpu")
        c = sample(fe, y, k=3, seed=6, device="cpu")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])
    with pytest.raises(ConfigError, match="variant"):
        eos_oversample(fe, y, variant="code")


def test_k_scales_to_the_smallest_class():
    assert scaled_k([30, 6, 4], 10) == 3  # min(10, 4 - 1)
    assert scaled_k([5000, 2997, 50], 10) == 10  # the paper's CIFAR-10: the cap
    assert scaled_k([1000, 10], 10) == 9  # this study's exp100 (smallest class 10)
    assert scaled_k([20, 1], 10) == 1  # at least 1
    assert scaled_k([20, 2, 0], 10) == 1  # an empty class is not the smallest
    assert scaled_k([20, 12, 0], 5) == 5
    rng = np.random.default_rng(2)
    counts = [30, 6, 4]
    y = np.repeat(np.arange(3), counts)
    fe = rng.normal(size=(len(y), 3)).astype(np.float32)
    for sample in (eos_oversample, eos_authors_oversample):
        fe_auto, y_auto, info = sample(fe, y, seed=1, return_info=True, device="cpu")
        assert info["k"] == 3 and info["k_source"] == "min(10, smallest class 4 - 1)"
        fe_3, y_3 = sample(fe, y, k=3, seed=1, device="cpu")
        np.testing.assert_array_equal(fe_auto, fe_3)
        np.testing.assert_array_equal(y_auto, y_3)
        # an explicit k wins; at 10 every instance of the 4-image class has an enemy among
        # its 10 neighbours (only 3 of its own exist), so all 4 are bases
        _, _, info10 = sample(fe, y, k=10, seed=1, return_info=True, device="cpu")
        assert info10["k"] == 10 and info10["k_source"] == "given" and info10["bases"][2] == 4
    # SMOTE's neighbours are of the base's class: k is capped by each class on its own
    _, _, info = smote(fe, y, k=5, seed=0, return_info=True, device="cpu")
    assert info["k"] == 5 and info["k_per_class"] == [None, 5, 3]


def test_eos_remedy_records_the_scaled_or_given_k(imbalanced_problem):
    train, val, test, classifier = imbalanced_problem  # train counts 300 / 40 / 10
    for name in ("eos", "eos_authors"):
        res = apply_remedy(name, train, test, classifier, val=val)
        assert res.info["k"] == 9 and res.info["params"]["k"] is None
        res = apply_remedy(name, train, test, classifier, val=val, params={"k": 10})
        assert res.info["k"] == 10 and res.info["k_source"] == "given"


# -- SMOTE and ROS ------------------------------------------------------------------------------


def test_smote_between_same_class_neighbours():
    rng = np.random.default_rng(0)
    counts = [30, 9, 4]
    fe = rng.normal(size=(sum(counts), 4)).astype(np.float32)
    y = np.repeat(np.arange(3), counts)
    k = 3
    fe_syn, y_syn, info = smote(fe, y, k=k, seed=2, return_info=True, device="cpu")
    np.testing.assert_array_equal(np.bincount(y_syn, minlength=3), [0, 21, 26])
    for p, c in zip(fe_syn, y_syn):
        members = np.flatnonzero(y == c)
        local = brute_knn(fe[members], k)
        pairs = [(members[i], members[j]) for i in range(len(members)) for j in local[i]]
        assert any(on_segment(p, fe[a], fe[b]) for a, b in pairs)
    assert np.all(y[info["base_index"]] == y_syn) and np.all(y[info["partner_index"]] == y_syn)
    again = smote(fe, y, k=k, seed=2, device="cpu")
    np.testing.assert_array_equal(again[0], fe_syn)


def test_smote_single_instance_class_is_copied():
    fe = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [9.0, 9.0]], dtype=np.float32)
    y = np.array([0, 0, 0, 1])
    fe_syn, y_syn, info = smote(fe, y, seed=0, return_info=True, device="cpu")
    assert info["copied_classes"] == [1]
    np.testing.assert_array_equal(fe_syn, [[9.0, 9.0]] * 2)


def test_random_oversample_duplicates():
    rng = np.random.default_rng(0)
    fe = rng.normal(size=(17, 3)).astype(np.float32)
    y = np.array([0] * 10 + [1] * 5 + [2] * 2)
    fe_syn, y_syn = random_oversample(fe, y, seed=1)
    np.testing.assert_array_equal(np.bincount(y_syn, minlength=3), [0, 5, 8])
    for p, c in zip(fe_syn, y_syn):
        assert np.any(np.all(fe[y == c] == p, axis=1))  # an exact copy of its own class
    np.testing.assert_array_equal(random_oversample(fe, y, seed=1)[0], fe_syn)


# -- phase 3 ------------------------------------------------------------------------------------


def test_fit_linear_head_learns_separable_problem_deterministically():
    rng = np.random.default_rng(0)
    centers = np.array([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    y = np.repeat(np.arange(3), [60, 20, 10])
    fe = (centers[y] + rng.normal(scale=0.3, size=(len(y), 3))).astype(np.float32)
    W, b = fit_linear_head(fe, y, 3, seed=0)
    assert W.shape == (3, 3) and b.shape == (3,) and W.dtype == np.float32
    assert balanced_accuracy(y, (fe @ W.T + b).argmax(1), 3) == 1.0
    W2, b2 = fit_linear_head(fe, y, 3, seed=0)
    np.testing.assert_array_equal(W, W2)
    np.testing.assert_array_equal(b, b2)
    W3, _ = fit_linear_head(fe, y, 3, seed=1)
    assert not np.array_equal(W, W3)
    Wc, bc = fit_linear_head(fe, y, 3, seed=0, sampler="class_balanced", schedule="constant")
    assert balanced_accuracy(y, (fe @ Wc.T + bc).argmax(1), 3) == 1.0
    # init: zero epochs returns the given head unchanged
    W0, b0 = fit_linear_head(fe, y, 3, epochs=0, init=(W, b))
    np.testing.assert_array_equal(W0, W)
    with pytest.raises(ConfigError):
        fit_linear_head(fe, y, 3, sampler="balanced")


def autograd_linear_head(fe, y, n_classes, *, epochs, sampler, schedule, init, batch_size, seed):
    """The textbook phase 3: autograd, ``torch.optim.SGD`` and ``CosineAnnealingLR``, drawing
    the same random numbers in the same order as ``fit_linear_head``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x, t = torch.tensor(fe), torch.as_tensor(y)
    weight = torch.tensor(init[0]).requires_grad_(True)
    bias = torch.tensor(init[1]).requires_grad_(True)
    opt = torch.optim.SGD([weight, bias], lr=0.1, momentum=0.9, weight_decay=2e-4)
    steps = math.ceil(len(y) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    for _ in range(epochs):
        if sampler == "uniform":
            order = torch.randperm(len(y), generator=gen)
        else:
            order = class_balanced_indices(y, steps * batch_size, gen)
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = torch.nn.functional.cross_entropy(x[idx] @ weight.T + bias, t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if schedule == "cosine":
                sched.step()
    return weight.detach().numpy(), bias.detach().numpy()


@pytest.mark.parametrize("sampler", ["uniform", "class_balanced"])
@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_fit_linear_head_equals_autograd_sgd(sampler, schedule):
    # the analytic-gradient loop must make the same updates as autograd + torch.optim.SGD
    # (momentum, weight decay, cosine decay per step), including a short last batch
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), [50, 25, 12, 6])
    fe = (rng.gamma(1.0, size=(len(y), 8)) + np.eye(4, 8)[y] * 2).astype(np.float32)
    init = (rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=4).astype(np.float32))
    kw = dict(epochs=6, sampler=sampler, schedule=schedule, init=init, batch_size=16, seed=5)
    W, b = fit_linear_head(fe, y, 4, **kw)
    W_ref, b_ref = autograd_linear_head(fe, y, 4, **kw)
    assert not np.allclose(W, init[0], atol=1e-2)  # it did train
    np.testing.assert_allclose(W, W_ref, atol=2e-5)
    np.testing.assert_allclose(b, b_ref, atol=2e-5)


def test_class_balanced_sampler_frequencies():
    import torch

    y = np.array([0] * 1000 + [1] * 10)
    idx = class_balanced_indices(y, 40000, torch.Generator().manual_seed(0)).numpy()
    freq = np.bincount(y[idx], minlength=2) / idx.size
    np.testing.assert_allclose(freq, [0.5, 0.5], atol=0.01)
    # uniform within the minority class: each of its 10 instances ~ 2000 times
    per_instance = np.bincount(idx[y[idx] == 1] - 1000, minlength=10)
    assert per_instance.min() > 1700 and per_instance.max() < 2300


# -- post-hoc -----------------------------------------------------------------------------------


def test_tau_normalize_hand_made():
    W = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, -4.0]], dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(tau_normalize(W, 1.0), axis=1), [1, 1, 1])
    np.testing.assert_array_equal(tau_normalize(W, 0.0), W)
    np.testing.assert_allclose(np.linalg.norm(tau_normalize(W, 0.5), axis=1), [1, 2**0.5, 2])
    np.testing.assert_allclose(tau_normalize(W, 2.0), [[1, 0], [0, 0.5], [0, -0.25]])
    assert tau_normalize(W, 1.0).dtype == np.float32


def test_tau_norm_chooses_tau_by_validation_bac():
    # W rows norms 4 and 1. logit_0 = 4^(1-τ) x0, logit_1 = x1.
    # class-1 point (1, 2) is right iff 4^(1-τ) < 2  <=> τ > 0.5 (τ = 0.5 ties -> class 0)
    # class-0 point (2, 1) is right iff 2·4^(1-τ) > 1 <=> τ < 1.5
    # -> BAC 1 for τ in {0.6, ..., 1.4}; ties go to the smallest: 0.6
    classifier = {"weight": np.array([[4.0, 0.0], [0.0, 1.0]]), "bias": np.array([5.0, 0.0])}
    classifier["normed"] = False
    val = {"fe": np.array([[2.0, 1.0], [1.0, 2.0]]), "label": np.array([0, 1])}
    params = {"tau": None, "taus": TAUS, "keep_bias": False}
    W, bias, normed, info = fit_tau_norm({}, val, classifier, 0, params)
    assert info["tau"] == pytest.approx(0.6) and info["tau_source"] == "val"
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), [4**0.4, 1.0], rtol=1e-6)
    assert bias.tolist() == [0.0, 0.0] and normed is False  # Kang et al.: no bias
    # with the bias kept, +5 on class 0 wins everywhere: all τ tie at BAC 0.5 -> τ = 0
    kept = fit_tau_norm({}, val, classifier, 0, dict(params, keep_bias=True))
    assert kept[3]["tau"] == 0.0 and kept[1].tolist() == [5.0, 0.0]


def test_logit_adjust_hand_computed():
    classifier = {"weight": np.eye(3), "bias": np.zeros(3), "normed": False}
    train = {"label": np.repeat([0, 1, 2], [50, 30, 20])}  # prior 0.5, 0.3, 0.2
    W, bias, normed, info = fit_logit_adjust(train, None, classifier, 0, {"tau": 1.0})
    logits = head_logits(np.array([[1.0, 2.0, 3.0]]), W, bias, normed)
    expected = [[1 - math.log(0.5), 2 - math.log(0.3), 3 - math.log(0.2)]]
    np.testing.assert_allclose(logits, expected, rtol=1e-6)
    assert info["class_counts"] == [50, 30, 20]
    half = fit_logit_adjust(train, None, classifier, 0, {"tau": 0.5})[1]
    np.testing.assert_allclose(half, -0.5 * np.log([0.5, 0.3, 0.2]), rtol=1e-6)
    with pytest.raises(FragilityError, match="every class"):
        fit_logit_adjust({"label": np.repeat([0, 2], [10, 5])}, None, classifier, 0, {"tau": 1.0})


# -- apply_remedy -------------------------------------------------------------------------------


def _split(rng, counts, centers, scale):
    y = np.repeat(np.arange(len(counts)), counts)
    fe = np.maximum(centers[y] + rng.normal(scale=scale, size=(len(y), centers.shape[1])), 0)
    return {"fe": fe.astype(np.float32), "label": y}


@pytest.fixture(scope="module")
def imbalanced_problem():
    """3 overlapping classes in an 8-d post-ReLU FE space: 300/40/10 train, balanced val/test.
    The given head is the class-mean classifier with a +8/0/-8 bias: minorities under-predicted."""
    rng = np.random.default_rng(0)
    centers = np.zeros((3, 8))
    centers[0, :3], centers[1, 3:6], centers[2, 5:] = 2.0, 2.0, 2.0
    train = _split(rng, [300, 40, 10], centers, 1.0)
    val = _split(rng, [50, 50, 50], centers, 1.0)
    test = _split(rng, [200, 200, 200], centers, 1.0)
    W = centers.astype(np.float32)
    bias = np.array([8.0, 0.0, -8.0], dtype=np.float32)
    for split in (train, val, test):
        split["logits"] = (split["fe"] @ W.T + bias).astype(np.float32)
    classifier = {"weight": W, "bias": bias, "normed": False}
    return train, val, test, classifier


def _check_decomposition(result, train, test):
    fe_t = test["fe"].astype(float)
    fe_r = train["fe"].astype(float)
    if result.normed:
        fe_t = fe_t / np.linalg.norm(fe_t, axis=1, keepdims=True)
        fe_r = fe_r / np.linalg.norm(fe_r, axis=1, keepdims=True)
    np.testing.assert_allclose(result.test_logits, fe_t @ result.weight.T + result.bias, atol=1e-4)
    np.testing.assert_allclose(result.train_logits, fe_r @ result.weight.T + result.bias, atol=1e-4)
    np.testing.assert_array_equal(result.test_pred, result.test_logits.argmax(1))
    assert result.weight.dtype == np.float32 and result.bias.dtype == np.float32


def test_apply_remedy_improves_biased_head(imbalanced_problem):
    train, val, test, classifier = imbalanced_problem
    base = balanced_accuracy(test["label"], test["logits"].argmax(1), 3)
    assert base < 0.6  # BAC 0.58: class 2 is almost never predicted (bias -8)
    results = {name: apply_remedy(name, train, test, classifier, val=val) for name in REMEDIES}
    for name, res in results.items():
        _check_decomposition(res, train, test)
        assert res.metrics["bac"] == pytest.approx(
            balanced_accuracy(test["label"], res.test_pred, 3)
        )
        assert res.seconds >= 0 and res.name == name
        assert set(res.summary()) == {"remedy", "normed", "seconds", "metrics", "info"}
    for name in ("eos", "crt", "ros", "smote", "logit_adjust"):
        assert results[name].metrics["bac"] > base + 0.1, name
        assert results[name].normed is False
    assert results["eos"].info["synthetic"] == [0, 260, 290]
    assert results["eos"].info["n_synthetic"] == 550
    # logit adjustment: W unchanged, bias - log(prior) with prior 300/350, 40/350, 10/350
    la = results["logit_adjust"]
    np.testing.assert_array_equal(la.weight, classifier["weight"])
    np.testing.assert_allclose(
        la.bias, [8, 0, -8] - np.log(np.array([300, 40, 10]) / 350), rtol=1e-6
    )
    np.testing.assert_allclose(
        la.test_logits, test["logits"] - np.log(np.array([300, 40, 10]) / 350), atol=1e-4
    )
    assert la.info["classifier_max_abs_diff"] < 1e-4
    # τ-norm: the class-mean rows all have norm 2·sqrt(3), so τ changes no prediction and the
    # smallest τ wins; dropping the biased bias (Kang et al.) is what helps here
    tn = results["tau_norm"]
    np.testing.assert_array_equal(tn.bias, 0)
    assert tn.info["tau_source"] == "val" and len(tn.info["val_bac"]) == 21
    assert tn.info["tau"] == 0.0 and tn.metrics["bac"] > base + 0.1


def test_apply_remedy_is_seeded_and_blind_to_test(imbalanced_problem):
    train, val, test, classifier = imbalanced_problem
    shuffled = {"fe": test["fe"][::-1].copy(), "label": np.zeros_like(test["label"])}
    for name in ("eos", "eos_authors", "ros", "smote", "tau_norm"):
        a = apply_remedy(name, train, test, classifier, val=val, seed=3)
        b = apply_remedy(name, train, shuffled, classifier, val=val, seed=3)
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_tau_norm_needs_validation_split(imbalanced_problem):
    train, _, test, classifier = imbalanced_problem
    with pytest.raises(FragilityError, match="validation"):
        apply_remedy("tau_norm", train, test, classifier)
    fixed = apply_remedy("tau_norm", train, test, classifier, params={"tau": 1.0})
    np.testing.assert_allclose(np.linalg.norm(fixed.weight, axis=1), 1, rtol=1e-6)


def test_posthoc_remedies_keep_normed_form(imbalanced_problem):
    train, val, test, _ = imbalanced_problem
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, 8)).astype(np.float32)
    W = (30 * W / np.linalg.norm(W, axis=1, keepdims=True)).astype(np.float32)  # s·normalize(W)
    classifier = {"weight": W, "bias": np.zeros(3, np.float32), "normed": True}
    for name in ("tau_norm", "logit_adjust"):
        res = apply_remedy(name, train, test, classifier, val=val)
        assert res.normed is True
        _check_decomposition(res, train, test)
    # equal row norms: τ-norm cannot change predictions, so the smallest τ (0) is chosen
    assert apply_remedy("tau_norm", train, test, classifier, val=val).info["tau"] == 0.0
    fresh = apply_remedy("crt", train, test, classifier)
    assert fresh.normed is False
    _check_decomposition(fresh, train, test)


def test_unknown_remedy_or_parameter():
    with pytest.raises(ConfigError, match="eos"):
        apply_remedy("nope", {}, {}, {"weight": np.zeros((2, 2))})
    with pytest.raises(ConfigError, match="no parameter"):
        apply_remedy("eos", {}, {}, {"weight": np.zeros((2, 2))}, params={"kk": 3})


# -- the over-sampled heads' epoch, chosen on validation ------------------------------------


def test_head_epoch_chosen_on_validation_not_the_last():
    # train: class 0 at (1, 0), class 1 at (0, 1); the initial head predicts class 1 everywhere
    # (bias +1). Validation: (1, 0) of class 0 and (0.6, 0.4) of class 1. Early on, the weights
    # learn (1, 0) -> 0 while the bias still carries (0.6, 0.4) to class 1 (BAC 1); once the
    # bias has evened out, (0.6, 0.4) falls on the class-0 side of x0 = x1 (BAC 0.5).
    y = np.repeat([0, 1], 32)
    fe = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)[y]
    fe_val = np.array([[1.0, 0.0], [0.6, 0.4]], dtype=np.float32)
    y_val = np.array([0, 1])
    kw = dict(
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        batch_size=16,
        schedule="constant",
        init=(np.zeros((2, 2), np.float32), np.array([0.0, 1.0], np.float32)),
        seed=0,
    )
    W, b, sel = fit_linear_head_on_val(fe, y, 2, fe_val, y_val, epochs=8, **kw)
    # the recorded BACs are those of the heads trained for 1..8 epochs (a constant schedule
    # makes the first e epochs of an 8-epoch run the same as an e-epoch run)
    heads = [fit_linear_head(fe, y, 2, epochs=e, **kw) for e in range(1, 9)]
    bacs = [balanced_accuracy(y_val, (fe_val @ w.T + c).argmax(1), 2) for w, c in heads]
    assert sel["val_bac_per_epoch"] == bacs == [0.5, 0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    assert sel["epoch"] == 3 and sel["epoch_selection"] == "val_bac"  # the earliest best
    np.testing.assert_array_equal(W, heads[2][0])
    np.testing.assert_array_equal(b, heads[2][1])
    assert not np.array_equal(W, heads[-1][0])  # the last epoch's head is not the one kept
    with pytest.raises(ConfigError, match="epochs >= 1"):
        fit_linear_head_on_val(fe, y, 2, fe_val, y_val, epochs=0, **kw)


OVERSAMPLERS = {
    "eos": eos_oversample,
    "eos_authors": eos_authors_oversample,
    "ros": random_oversample,
    "smote": smote,
}


@pytest.mark.parametrize("name", list(OVERSAMPLERS))
def test_oversampling_remedy_keeps_the_best_validation_epoch(imbalanced_problem, name):
    train, val, test, classifier = imbalanced_problem
    params = {"schedule": "constant", "lr": 0.5}  # constant: a shorter run is a prefix
    res = apply_remedy(name, train, test, classifier, val=val, seed=2, params=params)
    bacs = res.info["val_bac_per_epoch"]
    assert len(bacs) == 10 and res.info["epoch_selection"] == "val_bac"
    assert res.info["epoch"] == int(np.argmax(bacs)) + 1
    assert res.info["epoch"] < 10  # on this problem the last epoch is not the best one
    # the chosen epoch's recorded BAC is the kept head's own validation BAC
    assert res.info["val_metrics"]["bac"] == bacs[res.info["epoch"] - 1]
    # ... and the kept head is the one retrained for that many epochs on the same data
    sample = OVERSAMPLERS[name]
    k = {"k": 9} if name.startswith("eos") else {}
    fe_syn, y_syn = sample(train["fe"], train["label"], seed=2, n_classes=3, **k)
    W, b = fit_linear_head(
        np.concatenate([train["fe"], fe_syn]),
        np.concatenate([train["label"], y_syn]),
        3,
        epochs=res.info["epoch"],
        lr=0.5,
        schedule="constant",
        seed=2,
    )
    np.testing.assert_array_equal(res.weight, W)
    np.testing.assert_array_equal(res.bias, b)


def test_oversampling_remedy_without_validation_keeps_the_last_epoch(imbalanced_problem):
    train, val, test, classifier = imbalanced_problem
    for name in OVERSAMPLERS:
        no_val = apply_remedy(name, train, test, classifier, seed=1)
        assert no_val.info["epoch_selection"] == "last (no validation split)"
        assert no_val.info["epoch"] == 10 and "val_bac_per_epoch" not in no_val.info
        empty = {"fe": val["fe"][:0], "label": val["label"][:0]}
        assert apply_remedy(name, train, test, classifier, val=empty, seed=1).info[
            "epoch_selection"
        ] == ("last (no validation split)")
        last = apply_remedy(
            name, train, test, classifier, val=val, seed=1, params={"select": "last"}
        )
        assert last.info["epoch_selection"] == "last (select: last)"
        np.testing.assert_array_equal(last.weight, no_val.weight)
    with pytest.raises(ConfigError, match="select must be one of"):
        apply_remedy("ros", train, test, classifier, val=val, params={"select": "test_bac"})
