"""Intervals, verdicts and the stratified bootstrap (fragility.analysis.uncertainty, and
claims.combine_seeds) against answers known from textbooks or worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fragility.analysis.uncertainty import (
    bootstrap_note,
    combine_seeds,
    confusion_metrics,
    percentile_interval,
    stratified_weights,
    t_interval,
    verdict,
    weighted_class_means,
    weighted_confusion,
)
from fragility.metrics import confusion_matrix, per_class_accuracy, summary

# ----------------------------------------------------------------------------- t


@pytest.mark.parametrize(
    "df, quantile", [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157), (30, 2.042272)]
)
def test_the_t_interval_has_the_textbook_quantile(df, quantile):
    """Values 0 and 1, and df - 1 more halves: mean 1/2, s = sqrt(0.5 / df) and the half
    width t_{.975, df} s / sqrt(n), with t from the textbook table (to 1e-6)."""
    n = df + 1
    values = [0.0, 1.0] + [0.5] * (n - 2)
    interval = t_interval(values)
    half = quantile * np.sqrt(0.5 / df) / np.sqrt(n)
    assert interval.estimate == pytest.approx(0.5)
    assert interval.high - 0.5 == pytest.approx(half, rel=1e-6)
    assert 0.5 - interval.low == pytest.approx(half, rel=1e-6)


def test_t_interval_by_hand():
    # 1, 2, 3, 4: mean 2.5, s = sqrt((2.25 + .25 + .25 + 2.25) / 3) = sqrt(5/3);
    # half width = t_{.975, 3} * s / sqrt(4) = 3.18245 * 1.29099 / 2 = 2.05426
    iv = t_interval([1.0, 2.0, 3.0, 4.0])
    assert iv.estimate == pytest.approx(2.5)
    assert iv.low == pytest.approx(2.5 - 2.05426, abs=1e-4)
    assert iv.high == pytest.approx(2.5 + 2.05426, abs=1e-4)
    assert (iv.n, iv.kind) == (4, "t over 4 seeds")
    # missing values are left out: 0.6 and 0.64 over 2 seeds, s/sqrt(2) = 0.02
    iv = t_interval([0.6, None, 0.64, float("nan")])
    assert (iv.n, iv.kind) == (2, "t over 2 seeds")
    assert (iv.low, iv.high) == pytest.approx((0.62 - 12.7062 * 0.02, 0.62 + 12.7062 * 0.02))


def test_t_interval_needs_two_values():
    one = t_interval([0.7])
    assert (one.estimate, one.low, one.high, one.n, one.kind) == (
        0.7,
        None,
        None,
        1,
        "none (1 seed)",
    )
    none = t_interval([None, float("nan")])
    assert (none.estimate, none.low, none.high, none.n, none.kind) == (None, None, None, 0, "none")
    same = t_interval([0.3, 0.3, 0.3])  # no spread: a zero-width interval
    assert (same.low, same.high) == pytest.approx((0.3, 0.3))


def test_percentile_interval_by_hand():
    # 0, 0.001, ..., 1: the q quantile (linear interpolation) is q itself
    r = np.arange(1001) / 1000
    iv = percentile_interval(r, 0.5, 7, "bootstrap over test images")
    assert (iv.low, iv.high) == pytest.approx((0.025, 0.975))
    assert (iv.estimate, iv.n, iv.kind) == (0.5, 7, "bootstrap over test images")
    # non-finite replicates (a class drawn out of a group) are left out
    iv = percentile_interval(np.concatenate([r, [np.nan, np.inf]]), 0.5, 7, "k")
    assert (iv.low, iv.high) == pytest.approx((0.025, 0.975))
    assert percentile_interval(r, None, 7, "k").low is None
    assert percentile_interval(np.full(5, np.nan), 0.5, 7, "k").low is None


# ----------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    "low, high, estimate, expected",
    [
        (0.1, 0.3, 0.2, "holds"),
        (-0.3, -0.1, -0.2, "fails"),
        (-0.1, 0.2, 0.05, "inconclusive"),
        (0.0, 0.2, 0.1, "inconclusive"),  # touching 0 is not above it
        (-0.2, 0.0, -0.1, "inconclusive"),  # nor below it
        (0.0, 0.0, 0.0, "inconclusive"),
        (None, None, None, "n/a"),
        (float("nan"), float("nan"), float("nan"), "n/a"),
        (None, None, 0.3, "inconclusive"),  # one number without an interval is no evidence
    ],
)
def test_verdict_on_constructed_intervals(low, high, estimate, expected):
    assert verdict(low, high, estimate) == expected


def test_verdict_without_an_estimate_argument():
    assert verdict(0.1, 0.3) == "holds" and verdict(None, None) == "n/a"


# ----------------------------------------------------------------------------- bootstrap

# class 0: 3 images, all correct; class 1: 2 images, one correct
LABELS = np.array([0, 0, 0, 1, 1])
PREDS = np.array([0, 0, 0, 1, 0])


def _bac(weights, labels=LABELS, preds=PREDS):
    return confusion_metrics(weighted_confusion(weights, labels, preds, 2), 0, 1)["bac"]


def test_stratified_bootstrap_of_a_tiny_prediction_set():
    # Class 1's recall in a replicate is 0, 1/2 or 1 with probability 1/4, 1/2, 1/4 (two
    # draws from {right, wrong}); class 0's is always 1. So BAC is 0.5, 0.75 or 1.
    w = stratified_weights(LABELS, 1000, seed=7)
    assert w.shape == (1000, 5) and w.dtype == np.float64
    bac = _bac(w)
    values, counts = np.unique(bac, return_counts=True)
    assert values.tolist() == [0.5, 0.75, 1.0]
    assert counts / 1000 == pytest.approx([0.25, 0.5, 0.25], abs=0.05)
    iv = percentile_interval(bac, 0.75, 5, "bootstrap over test images")
    assert (iv.low, iv.high) == (0.5, 1.0)


def test_every_replicate_keeps_each_class_size():
    labels = np.array([2, 0, 1, 0, 2, 2, 0, 0, 1, 2, 2])
    w = stratified_weights(labels, 200, seed=1)
    for c in (0, 1, 2):
        assert (w[:, labels == c].sum(axis=1) == (labels == c).sum()).all()
    assert (w >= 0).all() and np.array_equal(w, np.round(w))  # multiplicities


def test_the_same_seed_gives_the_same_replicates():
    a = stratified_weights(LABELS, 100, seed=3)
    assert np.array_equal(a, stratified_weights(LABELS, 100, seed=3))
    assert not np.array_equal(a, stratified_weights(LABELS, 100, seed=4))
    # the tuple seeds run_bootstrap uses, (seed, side)
    assert np.array_equal(
        stratified_weights(LABELS, 50, (3, 0)), stratified_weights(LABELS, 50, (3, 0))
    )
    assert not np.array_equal(
        stratified_weights(LABELS, 50, (3, 0)), stratified_weights(LABELS, 50, (3, 1))
    )


def test_more_test_images_give_a_narrower_interval():
    small = percentile_interval(_bac(stratified_weights(LABELS, 1000, 0)), 0.75, 5, "")
    labels, preds = np.tile(LABELS, 4), np.tile(PREDS, 4)  # same pattern, 4x the images
    large = percentile_interval(
        _bac(stratified_weights(labels, 1000, 0), labels, preds), 0.75, 20, ""
    )
    assert (small.low, small.high) == (0.5, 1.0)
    assert small.low < large.low < 0.75 < large.high < small.high
    # class 1's recall is Binomial(8, 1/2) / 8: its 95 % range is 1/8 .. 7/8
    assert large.low >= 0.5 + 0.5 / 8 and large.high <= 1.0 - 0.5 / 8


# ----------------------------------------------------------------------------- metrics


def _cases():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, 80)
    yield "random", labels, rng.integers(0, 4, 80), 4
    # class 2 is never recognised (its images go to 0 or 1): G-mean 0
    preds = np.where(labels == 2, rng.integers(0, 2, 80), rng.integers(0, 4, 80))
    yield "never recognised", labels, preds, 4
    # class 3 is never predicted (and so never recognised)
    yield "never predicted", labels, rng.integers(0, 3, 80), 4
    # class 4 has no test image but is predicted sometimes: left out of BAC, F1, G-mean
    yield "absent class", labels, rng.integers(0, 5, 80), 5
    # a model right on most images: G-mean not 0
    yield "mostly right", labels, np.where(rng.random(80) < 0.8, labels, (labels + 1) % 4), 4


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
def test_weighted_metrics_at_ones_equal_fragility_metrics(case):
    _, labels, preds, c = case
    ones = np.ones((1, len(labels)))
    conf = weighted_confusion(ones, labels, preds, c)
    assert conf.shape == (1, c, c)
    assert np.array_equal(conf[0], confusion_matrix(labels, preds, c))
    got = confusion_metrics(conf, 0, 3)
    want = summary(labels, preds, c)
    for name in ("bac", "macro_f1", "gmean", "accuracy"):
        assert got[name].shape == (1,)
        assert got[name][0] == pytest.approx(want[name], abs=1e-12), name
    recall = per_class_accuracy(labels, preds, c)
    assert got["majority_acc"][0] == pytest.approx(recall[0])
    assert got["minority_acc"][0] == pytest.approx(recall[3])


def test_never_recognised_class_gives_gmean_zero():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 0, 1, 1, 0, 1])  # class 2 never predicted
    got = confusion_metrics(weighted_confusion(np.ones((1, 6)), labels, preds, 3), 0, 2)
    assert got["gmean"][0] == 0.0 and summary(labels, preds, 3)["gmean"] == 0.0
    assert got["bac"][0] == pytest.approx(2 / 3) and got["minority_acc"][0] == 0.0


def test_weighted_confusion_counts_multiplicities():
    labels, preds = np.array([0, 1, 1]), np.array([0, 0, 1])
    conf = weighted_confusion(np.array([[2.0, 0.0, 2.0], [1.0, 2.0, 0.0]]), labels, preds, 2)
    assert conf[0].tolist() == [[2, 0], [0, 2]] and conf[1].tolist() == [[1, 0], [2, 0]]
    assert confusion_metrics(conf, 0, 1)["bac"].tolist() == [1.0, 0.5]


def test_weighted_class_means_by_hand():
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0], [7.0, 70.0]])
    classes = np.array([0, 0, 1, -1])  # the last instance belongs to no class
    w = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 0.0, 5.0]])
    out = weighted_class_means(w, x, classes, 3)
    assert out.shape == (2, 3, 2)
    assert out[0, 0].tolist() == [2.0, 20.0] and out[0, 1].tolist() == [5.0, 50.0]
    assert out[1, 0].tolist() == [1.5, 15.0]  # (3*1 + 1*3) / 4
    assert np.isnan(out[1, 1]).all()  # class 1 drawn out of this replicate
    assert np.isnan(out[:, 2]).all()  # no instance of class 2


# ----------------------------------------------------------------------------- seeds combined


def test_combine_seeds_uses_t_over_three_or_more_seeds():
    reps = [np.full(10, 9.0)] * 4  # ignored: the seeds' spread is the interval
    iv = combine_seeds([0.1, 0.2, 0.3], reps[:3], "bootstrap over test images")
    ref = t_interval([0.1, 0.2, 0.3])
    assert (iv.estimate, iv.low, iv.high, iv.n, iv.kind) == (
        ref.estimate, ref.low, ref.high, 3, "t over 3 seeds"
    )  # fmt: skip
    # 0.2 ± 4.303 * 0.1 / sqrt(3)
    assert (iv.low, iv.high) == pytest.approx((0.2 - 0.24843, 0.2 + 0.24843), abs=1e-4)
    iv = combine_seeds([0.1, None, 0.2, 0.3], reps, "k")  # a seed that did not measure it
    assert (iv.n, iv.kind) == (3, "t over 3 seeds") and iv.estimate == pytest.approx(0.2)


def test_combine_seeds_with_fewer_seeds_uses_the_mean_replicate():
    r = np.arange(1001) / 1000
    kind = "bootstrap over test images"
    # two seeds: replicate b is averaged over the seeds, (r + r + 0.2) / 2 = r + 0.1
    iv = combine_seeds([0.1, 0.3], [r, r + 0.2], kind)
    assert iv.estimate == pytest.approx(0.2)
    assert (iv.low, iv.high) == pytest.approx((0.125, 1.075))
    assert iv.n == 2 and iv.kind == bootstrap_note(kind, 2)
    assert iv.kind == "bootstrap over test images (2 seeds; training randomness not included)"
    # one seed measured (the other could not): its own replicates
    iv = combine_seeds([None, 0.3], [np.full(1001, np.nan), r - 0.5], kind)
    assert iv.estimate == pytest.approx(0.3)
    assert (iv.low, iv.high) == pytest.approx((-0.475, 0.475))
    assert iv.kind == "bootstrap over test images (1 seed; training randomness not included)"
    assert verdict(iv.low, iv.high, iv.estimate) == "inconclusive"


def test_combine_seeds_with_nothing_measured():
    iv = combine_seeds([None, float("nan")], [np.zeros(3), np.zeros(3)], "k")
    assert (iv.estimate, iv.low, iv.high, iv.n, iv.kind) == (None, None, None, 0, "none")
    assert verdict(iv.low, iv.high, iv.estimate) == "n/a"
