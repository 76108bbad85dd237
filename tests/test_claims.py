"""The claim statistics on tiny constructed embeddings, with answers worked out by hand:
the ratio-at-least-2 rule on a log scale, the paper's bias-free prediction, size-matched
comparisons against hand averages over fixed draws, the balanced-vs-imbalanced statistics,
the size of a verdict against the paper's, and the paper's models matched to a run group."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from fragility.analysis import rq3, rq4, rq5, rq7
from fragility.analysis.bootstrap import measure
from fragility.analysis.claims import (
    AS_LARGE,
    SMALLER,
    measure_claims,
    render_detail,
    sized_verdict,
)
from fragility.analysis.inputs import ClaimInputs, RunInputs
from fragility.analysis.matching import matched_draws
from fragility.analysis.paper import closest_paper_value, paper_loss, same_model
from fragility.analysis.rq7 import at_class_top, control_subsets, matched_gap, set_overlap
from fragility.analysis.uncertainty import Interval, verdict
from fragility.catalog.claims import CLAIMS, PAPER_MODELS


def _view(fe, labels, W, counts, bias=None, test=None) -> RunInputs:
    fe = np.asarray(fe, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    bias = np.zeros(len(W)) if bias is None else np.asarray(bias, dtype=np.float64)
    logits = fe @ W.T + bias
    train = {"fe": fe, "label": np.asarray(labels), "pred": logits.argmax(1), "logits": logits}
    return RunInputs(train, train if test is None else test, W, bias, False, np.asarray(counts))


def _observed(view: RunInputs, partner: RunInputs | None = None, **kw) -> ClaimInputs:
    data = ClaimInputs(view, np.ones((1, len(view.train["label"]))),
                       np.ones((1, len(view.test["label"]))), **kw)  # fmt: skip
    if partner is not None:
        data.partner, data.partner_name = partner, "ce seed 0"
        data.partner_train_w = np.ones((1, len(partner.train["label"])))
    return data


# -- Tables 3 and 4: others' mean / majority >= 2, on a log scale ----------------------------


@pytest.mark.parametrize(
    "others, expected, verdict_near",
    [
        ((2.0, 6.0), math.log(4 / 2), "holds"),
        ((2.0, 2.0), 0.0, "inconclusive"),  # ratio 2, the boundary: no evidence either way
        ((1.0, 1.0), math.log(1 / 2), "fails"),
    ],
    ids=["ratio 4", "ratio 2", "ratio 1"],
)
def test_table3_ratio_is_log_others_over_majority_minus_log_2(others, expected, verdict_near):
    # W = identity: an instance's own ce is its fe, so the class-mean ce is the class-mean fe;
    # class 0 (the majority) has largest class-mean ce 1, classes 1 and 2 `others`
    W = np.eye(3)
    fe = [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, others[0], 0], [0, 0, others[1]]]
    got = rq4.majority_ce_smaller(_observed(_view(fe, [0, 0, 0, 1, 2], W, [3, 1, 1]))).values[0]
    assert got == pytest.approx(expected)
    assert verdict(got - 1e-3, got + 1e-3) == verdict_near


def test_table3_draws_every_class_down_to_the_smallest_class_s_size():
    # the majority's weights read features 0 and 1: instance 0 has ce 4 at feature 0, the
    # other three 1 at feature 1. All four: class mean (1, 0.75), largest 1. One instance drawn
    # at a time (the minority has one): largest 4 (instance 0) or 1; the claim uses the mean
    # over its draws of the per-draw largest
    W = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    fe = [[4, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 8]]
    view = _view(fe, [0, 0, 0, 0, 2], W, [4, 0, 1])
    parts = rq4.majority_ce_smaller(_observed(view)).parts
    assert parts["majority_all"] == pytest.approx(1.0) and parts["size"] == 1
    draws = matched_draws(np.array([0, 0, 0, 0, 2]), {0: 1, 2: 1})
    by_hand = np.mean([4.0 if d[0] else 1.0 for d in draws])
    assert parts["majority"] == pytest.approx(by_hand)
    assert parts["others"] == pytest.approx(8.0)  # the minority's one instance every draw


def test_table4_reads_the_bias_free_logit():
    # two features, every weight 1: an instance of class 0 at (3, 1) has ce (3, 1), bias-free
    # logit 4 and largest share 3/4; a bias of +4 on class 0 makes its logit 8, share 3/8
    W = np.ones((2, 2))
    fe = [[3, 1], [3, 1], [1, 3]]
    for bias, share_with_bias in ((0.0, 0.75), (4.0, 0.375)):
        view = _view(fe, [0, 0, 1], W, [2, 1], bias=[bias, 0.0])
        parts = rq4.majority_share_smaller(_observed(view)).parts
        assert parts["majority"] == pytest.approx(0.75)  # unchanged by the bias
        assert parts["ratio_with_bias"] == pytest.approx(0.75 / share_with_bias)


def test_the_weights_claims_on_known_weights():
    # ten largest |W| of the majority (class 0) sum to 10 * 2, of the minority (class 1) 10 * 1
    W = np.array([[2.0] * 10 + [0.1] * 6, [-1.0] * 10 + [0.0] * 6])
    fe = np.zeros((3, 16))
    fe[:2, 0], fe[2, 10] = 4.0, 1.0  # class 0 mean ce at feature 0: 4 * 2 = 8
    data = _observed(_view(fe, [0, 0, 1], W, [2, 1]))
    assert rq5.majority_weights_larger(data).values[0] == pytest.approx(20.0 - 10.0)
    # largest class-mean ce 8 against largest |W| 2: log(8 / 2) - log 2 = log 2
    assert rq5.ce_far_above_weights(data).values[0] == pytest.approx(math.log(2))


# -- the paper's prediction: argmax of the bias-free logit --------------------------------------


def test_an_instance_the_bias_alone_assigns_to_the_majority_is_the_minority_s_for_rq3():
    # W = identity, bias favours class 0 by 1: the instance (0.5, 1.0) has bias-free logits
    # (0.5, 1.0) -> class 1, with the bias (1.5, 1.0) -> class 0
    W = np.eye(2)
    fe = np.array([[2.0, 0.0], [0.5, 1.0], [0.0, 2.0]])
    bias = np.array([1.0, 0.0])
    logits = fe @ W.T + bias
    assert rq3.reference_classes(fe, W, logits).tolist() == [0, 1, 1]
    assert rq3.reference_classes(fe, W, logits, with_bias=True).tolist() == [0, 0, 1]
    res = rq3.rq3_coverage(fe, W, bias, logits, ks=(1, 2))
    assert res.n_changed == 1
    assert res.n_per_class.tolist() == [1, 2] and res.n_per_class_with_bias.tolist() == [2, 1]
    # bias-free: the instance is class 1's, covered at K = 1 (ce 1.0 > adversary's 0.5); with
    # the bias it is class 0's and never covered (0.5 + 1 = 1.5 > 1.0 only at K = 1... its own
    # top ce 0.5 plus bias 1 beats 1.0: covered too); the class ratios move with the class
    assert res.class_ratio[:, 0].tolist() == [1.0, 1.0]
    view = _view(fe, [0, 1, 1], W, [1, 2], bias=bias)
    parts = rq3.minority_smaller_k(_observed(view, ks=(1,))).parts
    assert parts["changed"] == 1 and parts["n"] == 3


# -- size-matched overlaps: a hand average over the same draws ----------------------------------


def test_set_overlap_divides_by_the_smaller_set():
    train = np.array([list(range(10)), list(range(10, 20)), [-1] * 10])
    # class 0 shares 5 of 10; class 1's test set has 2 members, both shared: 2 / 2; class 2
    # has no training set (left out)
    test = np.array([[[0, 1, 2, 3, 4, 20, 21, 22, 23, 24], [10, 11] + [-1] * 8, list(range(10))]])
    every = np.ones(3, dtype=bool)
    assert set_overlap(train, test, every).tolist() == pytest.approx([(0.5 + 1.0) / 2])
    # one false positive with K = 7 can now reach 1, not 0.7
    one = np.array([[list(range(7)) + [-1] * 3, [-1] * 10, [-1] * 10]])
    assert set_overlap(train, one, every).tolist() == pytest.approx([1.0])
    assert set_overlap(train, test, np.array([False, True, False])).tolist() == [1.0]


def _top_set(fe_rows: np.ndarray, k: int) -> set[int]:
    """By hand: the ten features most often among the rows' top-k sets, lower index on ties."""
    counts: dict[int, int] = {}
    for row in fe_rows:
        for h in np.argsort(-row, kind="stable")[:k]:
            counts[int(h)] = counts.get(int(h), 0) + 1
    return {h for h, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]}


def test_the_size_matched_overlap_is_the_hand_average_over_the_draws():
    rng = np.random.default_rng(7)
    n_feat, k = 24, 3
    W = np.eye(2, n_feat) * 10  # the class features 0 and 1 decide the prediction
    train_fe = rng.uniform(0, 1, (40, n_feat))
    train_fe[:20, 0] += 5
    train_fe[20:, 1] += 5
    train_fe[:20, 2:6] += 1.5  # class 0's training top set leans to features 2-5
    test_fe = rng.uniform(0, 1, (30, n_feat))
    test_fe[:, 0] += 5  # everything is predicted class 0 ...
    test_fe[:25, 2:6] += rng.uniform(0, 2, (25, 4))  # ... 25 true positives near the training
    labels = np.array([0] * 25 + [1] * 5)  # 5 false positives
    test = {"fe": test_fe, "label": labels, "pred": np.zeros(30, dtype=np.int64)}
    view = _view(train_fe, [0] * 20 + [1] * 20, W, [20, 20], test=test)
    got = rq7.identity_overlaps(_observed(view, k_fe=k), "fe")

    train_top = _top_set(train_fe[:20], k)
    draws, _ = control_subsets(test["pred"], labels == 0, 2, 32)

    def overlap(rows) -> float:
        other = _top_set(test_fe[rows], k)
        return len(train_top & other) / min(len(train_top), len(other))

    by_hand = np.mean([overlap(np.flatnonzero(d)) for d in draws])
    assert all(d.sum() == 5 for d in draws)  # 5 TP a draw: the false positives' number
    assert got["tp"][0] == pytest.approx(by_hand)
    assert got["tp_all"][0] == pytest.approx(overlap(np.arange(25)))
    assert got["fp"][0] == pytest.approx(overlap(np.arange(25, 30)))


# -- RQ7: FB(FP) against true positives drawn to the FP group's size ---------------------------

# One feature (n_top = 1), two classes; training means 0 (class 0) and 10 (class 1).
# Test: class 0 predicted for TP at 1, 2, 3, 6 and FP at 5, 7; class 1 TP at 10, 10, 10 and
# one FP at 4. Distances to the training means: FP means 6 (class 0), 4 - 10 = -6 (class 1).
TEST_X = np.array([[1.0], [2.0], [3.0], [6.0], [5.0], [7.0], [10.0], [10.0], [10.0], [4.0]])
PREDS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
TP = np.array([True] * 4 + [False] * 2 + [True] * 3 + [False])
REF = np.array([[0.0], [10.0]])
TOP = np.array([[0], [0]])


def test_control_subsets_draw_true_positives_to_the_false_positives_number():
    members, rows = control_subsets(PREDS, TP, 2, draws=8, seed=0)
    assert rows.tolist() == [True, True]
    for draw in members:
        chosen = np.flatnonzero(draw)
        assert TP[chosen].all()  # only true positives
        assert (PREDS[chosen] == 0).sum() == 2 and (PREDS[chosen] == 1).sum() == 1
    assert np.array_equal(members, control_subsets(PREDS, TP, 2, draws=8, seed=0)[0])  # seeded
    # a class with no false positive has no row, and none of its TPs is drawn
    only_tp = np.where(PREDS == 1, True, TP)
    members, rows = control_subsets(PREDS, only_tp, 2, draws=4, seed=0)
    assert rows.tolist() == [True, False] and not members[:, PREDS == 1].any()


def test_matched_gap_is_the_hand_average_over_the_given_draws():
    x_top = at_class_top(TEST_X, PREDS, TOP)
    # two fixed draws: class 0 takes TPs {1, 2} then {3, 6}; class 1 takes one 10 each time
    members = np.zeros((2, 10), dtype=bool)
    members[0, [0, 1, 6]] = True
    members[1, [2, 3, 7]] = True
    fb_fp, fb_tp = matched_gap(np.ones((1, 10)), x_top, PREDS, TP, REF, (members, np.ones(2, bool)))
    # FB(FP) = sqrt(6^2 + 6^2) in both draws; the control: class 0 means 1.5 and 4.5, class 1
    # mean 10 (distance 0): sqrt(1.5^2) and sqrt(4.5^2), averaged
    assert fb_fp[0] == pytest.approx(math.sqrt(72))
    assert fb_tp[0] == pytest.approx((1.5 + 4.5) / 2)


def test_the_control_moves_toward_fb_tp_as_the_false_positives_grow():
    rng = np.random.default_rng(3)
    n_tp = 40
    tp_x = rng.normal(1.0, 3.0, n_tp)  # spread around the training mean 0
    fb_all_tp = abs(tp_x.mean())
    controls = []
    for n_fp in (1, 5, 20, n_tp):
        x = np.concatenate([tp_x, np.full(n_fp, 8.0)])[:, None]
        preds = np.zeros(len(x), dtype=np.int64)
        tp = np.arange(len(x)) < n_tp
        control = control_subsets(preds, tp, 1, draws=32, seed=0)
        weights = np.ones((1, len(x)))
        fb_fp, fb_tp = matched_gap(weights, x, preds, tp, np.zeros((1, 1)), control)
        assert fb_fp[0] == pytest.approx(8.0)
        controls.append(fb_tp[0])
    # a few instances' mean lies farther from the training mean by sample size alone
    assert controls[0] > controls[1] > controls[2] > controls[3]
    assert controls[-1] == pytest.approx(fb_all_tp)  # as many FP as TP: every TP, every draw


# -- the claims that compare a run with its balanced partner, by hand -------------------------


def _two_class(fe, labels, W, counts):
    return _view(fe, labels, W, counts)


def test_fig3_trend_is_the_imbalanced_trend_minus_the_balanced_one():
    # W = 1 + identity (3 classes, 3 features): an instance's bias-free logit for class c is
    # sum(fe) + fe_c and its own ce 2 fe_c at c, fe_h elsewhere. At K = 1 it is covered when
    # 2 fe_c beats the strongest other logit. (3, 0, 0) is covered (6 > 3); (1.2, 0.2, 1.0)
    # is predicted 0 (3.6 > 3.4) but not covered (2.4 < 3.4).
    W = np.ones((3, 3)) + np.eye(3)
    covered = {c: np.eye(3)[c] * 3 for c in range(3)}
    uncovered = {0: [1.2, 0.2, 1.0], 2: [1.0, 0.2, 1.2]}
    # imbalanced (groups {0}, {2}): class 0 covered 1 of 2, class 2 1 of 1: trend 1 - 0.5
    imb = _view([covered[0], uncovered[0], covered[1], covered[2]], [0, 0, 1, 2], W, [2, 1, 1])
    # balanced: class 0 covered 2 of 2, class 2 1 of 2: trend 0.5 - 1, with the same groups
    bal = _view([covered[0], covered[0], covered[1], covered[1], covered[2], uncovered[2]],
                [0, 0, 1, 1, 2, 2], W, [2, 2, 2])  # fmt: skip
    assert imb.paper_pred().tolist() == [0, 0, 1, 2] and bal.paper_pred()[-1] == 2
    result = rq3.fig3_trend(_observed(imb, bal, ks=(1,)))
    assert result.parts["trend"] == pytest.approx(0.5)
    assert result.parts["partner_trend"] == pytest.approx(-0.5)
    assert result.values[0] == pytest.approx(1.0)


def test_fig45_magnitude_and_fig6_shares_by_hand():
    # every weight 1, so an instance's own ce are its fe. Imbalanced: class 0 (2 instances)
    # ce (2, 0), class 1 (1 instance) ce (0, 6): largest class-mean ce 2 and 6, mean 4;
    # shares 1 and 1. Balanced partner (2 instances a class): class 0 ce (1, 1) -> largest 1,
    # share 0.5; class 1: one instance (0, 2), one (0, 4), drawn down to one instance a draw
    # (the imbalanced count): largest 2 or 4 -> mean over classes (1 + mean over draws) / 2
    W = np.ones((2, 2))
    imb = _view([[2, 0], [2, 0], [0, 6]], [0, 0, 1], W, [2, 1])
    bal = _view([[1, 1], [1, 1], [0, 2], [0, 4]], [0, 0, 1, 1], W, [2, 2])
    data = _observed(imb, bal)
    draws = matched_draws(np.array([0, 0, 1, 1]), {0: 2, 1: 1})
    class1 = np.mean([2.0 if d[2] else 4.0 for d in draws])
    result = rq4.fig45_magnitude(data)
    assert result.parts["imbalanced"] == pytest.approx(4.0)
    assert result.parts["balanced"] == pytest.approx((1.0 + class1) / 2)
    assert result.values[0] == pytest.approx(math.log(4.0 / ((1.0 + class1) / 2)))
    # as a share of the class's logit: imbalanced 1 and 1; balanced 0.5 and 1
    assert result.parts["logit_normalised"] == pytest.approx(math.log(1.0 / 0.75))
    shares = rq4.fig6_shares(data)
    assert shares.values[0] == pytest.approx(math.log(1.0 / 0.75))
    assert shares.parts["above_35"] == 2 and shares.parts["balanced_above_26"] == 2


def test_minority_ce_larger_is_the_minority_group_against_the_other_classes():
    # five classes (groups of 2: majority 0-1, minority 3-4), one feature each, W = identity;
    # every class has one instance, so no draw changes anything: the minority group's largest
    # class-mean ce 6 and 8 (mean 7) against classes 0-2's 1, 2, 3 (mean 2)
    W = np.eye(5)
    fe = np.diag([1.0, 2.0, 3.0, 6.0, 8.0])
    view = _view(fe, [0, 1, 2, 3, 4], W, [50, 40, 30, 20, 10])
    result = rq4.minority_ce_larger(_observed(view))
    assert result.parts["minority_group"] == "3,4"
    assert result.values[0] == pytest.approx(math.log(7.0 / 2.0))


def test_fig10_direction_by_hand():
    # three classes, minority group {2}; class 2's training mean is 4 at feature 2 and 0
    # elsewhere: its top-10 features are 2 and the nine lowest-indexed zeros. TP of class 2 at
    # (0, 0, 3), FP (class 0 images called 2) at (0, 0, 1): means at the top ten 3/10 and 1/10
    W = np.eye(3) * 5
    train = [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    test_fe = np.array([[0, 0, 3.0], [0, 0, 1.0], [1, 0, 0], [0, 1, 0]])
    test = {"fe": test_fe, "label": np.array([2, 0, 0, 1]), "pred": np.array([2, 2, 0, 1])}
    view = _view(train, [0, 1, 2], W, [20, 10, 5], test=test)
    result = rq7.fig10_direction(_observed(view))
    assert result.parts["tp"] == pytest.approx(3.0 / 3) and result.parts["fp"] == pytest.approx(
        1.0 / 3
    )
    assert result.values[0] == pytest.approx(math.log(3.0))
    assert result.parts["train_over_fp"] == pytest.approx(math.log(4.0 / 1.0))


def test_without_a_partner_the_balanced_vs_imbalanced_claims_are_n_a():
    W = np.eye(2)
    view = _view([[2, 0], [0, 2]], [0, 1], W, [1, 1])
    data = _observed(view)
    data.partner_missing = "no balanced fashion_mnist run with loss ldam"
    for name in ("fig3_trend", "fig45_magnitude", "fig6_shares"):
        result = measure(name, data)
        assert result.values is None and result.reason == data.partner_missing


# -- the verdict's size against the paper's -----------------------------------------------------


def _interval(low, high, n=3, kind="t over 3 seeds"):
    return Interval((low + high) / 2, low, high, n, kind)


def test_a_claim_that_holds_says_whether_it_is_as_large_as_the_paper_s():
    spec = CLAIMS["majority_share_smaller"]  # a log ratio, not size-matched: comparable
    paper = spec.paper["svhn/ce"]  # log(2.33 / 2) = 0.15
    assert spec.comparable(paper)
    assert sized_verdict(spec, "holds", _interval(0.05, 0.20), paper) == AS_LARGE
    assert sized_verdict(spec, "holds", _interval(0.01, 0.10), paper) == SMALLER
    # seeds only: two seeds' bootstrap interval gets no size
    boot = _interval(0.01, 0.10, n=2, kind="bootstrap over training images (2 seeds)")
    assert sized_verdict(spec, "holds", boot, paper) == "holds"
    assert sized_verdict(spec, "fails", _interval(-0.3, -0.1), paper) == "fails"
    # a bound read off a figure, a negative value, a size-matched or raw-unit statistic: no size
    for name, model in [("minority_smaller_k", "cifar10/ce"), ("majority_share_smaller", "cifar10/ldam"),
                        ("identity_overlap_ce", "cifar10/ce"), ("majority_weights_larger", "cifar10/ce"),
                        ("ce_far_above_weights", "cifar10/ce")]:  # fmt: skip
        other = CLAIMS[name]
        assert not other.comparable(other.paper[model]), name
        assert sized_verdict(other, "holds", _interval(0.01, 9.0), other.paper[model]) == "holds"


def test_the_claims_that_can_be_sized_against_the_paper():
    sized = {
        n for n, spec in CLAIMS.items() if any(spec.comparable(p) for p in spec.paper.values())
    }
    assert sized == {"bac_order", "minority_overfits", "majority_share_smaller",
                     "ce_far_above_weights"}  # fmt: skip


# -- claims.csv from the runs' bootstraps ---------------------------------------------------------


def _bootstrap(values: dict[str, tuple]) -> pa.Table:
    rows = []
    for name, (estimate, reason, parts) in values.items():
        rows.append({"statistic": name, "estimate": estimate, "ci_low": None, "ci_high": None,
                     "n": 10, "n_boot": 2, "interval": "bootstrap over test images",
                     "reason": reason, "parts": parts, "replicates": [estimate, estimate]})  # fmt: skip
    return pa.Table.from_pylist(rows)


def _premise_met(n_seeds: int) -> pa.Table:
    return pa.Table.from_pylist([
        {"dataset": "d", "imbalance": "exp100", "loss": "ce", "seed": s, "premise_met": True,
         "lowest_train_acc": 1.0, "lowest_train_acc_class": 0, "lowest_train_acc_name": "0"}
        for s in range(n_seeds)
    ])  # fmt: skip


def test_claims_table_reads_n_a_with_its_reason_and_labels_a_fixed_partner():
    premise = _premise_met(3)
    boots = {}
    for seed, value in enumerate((0.20, 0.25, 0.30)):
        stats = {name: (None, "a reason", "{}") for name in CLAIMS}
        stats["fig6_shares"] = (value, None, '{"partner": "ce seed 0", "imbalanced": 0.5}')
        stats["bac_order"] = (None, "no balanced run of this dataset", "{}")
        stats["minority_overfits"] = (value, None, '{"imbalanced": 0.5, "partner": "none"}')
        stats["ce_far_above_weights"] = (value, None, '{"ce": 1.0}')
        boots[("d", "exp100", "ce", seed)] = _bootstrap(stats)
    rows = {r["claim"]: r for r in measure_claims(premise, boots).to_pylist()}
    # no partner, or none recorded: an unlabelled t over seeds
    assert rows["minority_overfits"]["interval"] == "t over 3 seeds"
    assert rows["ce_far_above_weights"]["interval"] == "t over 3 seeds"
    assert rows["bac_order"]["verdict"] == "n/a"
    assert rows["bac_order"]["reason"] == "no balanced run of this dataset"
    shares = rows["fig6_shares"]
    assert shares["verdict"] == "holds" and shares["reason"] is None
    assert shares["interval"] == "t over 3 seeds (the balanced partner ce seed 0 held fixed)"
    assert "seed 0: mean top-1 share 0.500 imbalanced" in shares["detail"]
    assert "n/a" in shares["detail"]  # parts a seed did not record read n/a, not an error


def test_one_balanced_model_under_every_seed_is_said_held_fixed_for_table_1_s_order_too():
    premise = _premise_met(3)
    boots = {}
    for seed, value in enumerate((0.20, 0.25, 0.30)):
        stats = {name: (None, "a reason", "{}") for name in CLAIMS}
        stats["bac_order"] = (value, None, '{"imbalanced": 0.7, "partner": "ce seed 0"}')
        boots[("d", "exp100", "ce", seed)] = _bootstrap(stats)
    row = next(r for r in measure_claims(premise, boots).to_pylist() if r["claim"] == "bac_order")
    assert row["interval"] == "t over 3 seeds (the balanced partner ce seed 0 held fixed)"


def test_every_detail_template_names_only_parts_its_statistic_returns():
    import string

    from test_claim_heads import BUILDERS  # the constructed models of every claim

    for name, spec in CLAIMS.items():
        result = measure(name, BUILDERS[name](False, True) if "linear" in spec.heads
                         else BUILDERS[name](True, True))  # fmt: skip
        fields = {f for _, f, _, _ in string.Formatter().parse(spec.detail) if f}
        assert fields <= set(result.parts), (name, fields - set(result.parts))
        assert "n/a" not in render_detail(spec.detail, result.parts), name


# -- the paper's models beside a run group -------------------------------------------------------


def test_paper_loss_is_the_paper_s_plain_loss_or_none():
    assert paper_loss({"loss": "ce"}) == "ce" and paper_loss({"loss": "ldam"}) == "ldam"
    assert paper_loss({"loss": "ldam", "drw": True}) is None  # LDAM-DRW is not the paper's
    assert paper_loss({"loss": "ce", "reweight": True}) is None
    assert paper_loss({"loss": "balanced_softmax"}) is None and paper_loss(None) is None


def test_the_closest_paper_value_prefers_the_same_loss_then_the_same_dataset():
    bac = CLAIMS["bac_order"].paper
    assert closest_paper_value(bac, "cifar10", "exp100", "focal")[1] == "CIFAR-10 focal"
    assert closest_paper_value(bac, "svhn", "exp100", "ce")[1] == "SVHN CE"
    assert closest_paper_value(bac, "celeba", "exp20", "ce")[1] == "CelebA CE"
    assert (
        closest_paper_value(bac, "fashion_mnist", "exp100", "ldam")[1]
        == "CIFAR-10 LDAM, other dataset"
    )
    assert closest_paper_value(bac, "cifar10", "step10", "ce")[1] == "CIFAR-10 CE, other imbalance"
    assert closest_paper_value(bac, "svhn", "exp100", None)[1] == "SVHN CE, other loss"
    # Table 3 prints no CIFAR-10 CE: a CE group compares with the paper's SVHN CE
    value, label = closest_paper_value(
        CLAIMS["majority_ce_smaller"].paper, "fashion_mnist", "exp100", "ce"
    )
    assert label == "SVHN CE, other dataset"
    assert value.value == pytest.approx(math.log(3.4955 / 1.4899 / 2))
    assert closest_paper_value({}, "cifar10", "exp100", "ce") == (None, "")
    assert same_model("cifar10", "exp100", "ce") == "cifar10/ce"
    assert same_model("cifar10", "exp100", None) is None


def test_every_claim_states_its_source_threshold_and_the_paper_s_values():
    assert len(CLAIMS) >= 18
    for name, claim in CLAIMS.items():
        assert claim.statement and claim.source.startswith("§5") and claim.threshold, name
        assert set(claim.paper) <= set(PAPER_MODELS), name
        assert claim.paper, f"{name}: the paper's value (or its figure) must be declared"
        assert claim.resampled in ("test", "train", "partner", "model"), name
        assert claim.partner == (claim.resampled == "partner"), name
    # the paper's own numbers where it prints them: Table 1 CE 72.56 < 78.60 < 92.65
    assert CLAIMS["bac_order"].paper["cifar10/ce"].value == pytest.approx(0.0604)
    # the paper's own LDAM ratio in Table 4 (1.96) is below its "2-4 times less"
    assert CLAIMS["majority_share_smaller"].paper["cifar10/ldam"].value < 0
    assert CLAIMS["few_features_decide"].paper["cifar10/focal"].value == pytest.approx(12.8 - 11)
    assert CLAIMS["minority_ce_larger"].paper["cifar10/ce"].value == pytest.approx(
        math.log(8.3 / 2.6)
    )
