"""The new claim statistics on tiny constructed embeddings, with answers worked out by hand:
the ratio-at-least-2 rule on a log scale, the size-matched true-positive control of RQ7, the
identity overlap of known top-10 sets, and the paper's models matched to a run group."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fragility.analysis.bootstrap import (
    ModelView,
    _overlap,
    ce_far_above_weights,
    majority_ce_smaller,
    majority_weights_larger,
)
from fragility.analysis.paper import paper_loss, reference, same_model
from fragility.analysis.rq7 import at_class_top, control_subsets, matched_gap
from fragility.analysis.uncertainty import verdict
from fragility.catalog import CLAIMS, PAPER_MODELS


def _view(fe, labels, W, counts) -> ModelView:
    fe = np.asarray(fe, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    logits = fe @ W.T
    train = {"fe": fe, "label": np.asarray(labels), "pred": logits.argmax(1), "logits": logits}
    return ModelView(train, train, W, np.zeros(len(W)), False, np.asarray(counts))


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
    view = _view(fe, [0, 0, 0, 1, 2], W, [3, 1, 1])
    got = majority_ce_smaller(view, np.ones((1, 5)))[0]
    assert got == pytest.approx(expected)
    assert verdict(got - 1e-3, got + 1e-3) == verdict_near


def test_the_weights_claims_on_known_weights():
    # ten largest |W| of the majority (class 0) sum to 10 * 2, of the minority (class 1) 10 * 1
    W = np.array([[2.0] * 10 + [0.1] * 6, [-1.0] * 10 + [0.0] * 6])
    fe = np.zeros((3, 16))
    fe[:2, 0], fe[2, 10] = 4.0, 1.0  # class 0 mean ce at feature 0: 4 * 2 = 8
    view = _view(fe, [0, 0, 1], W, [2, 1])
    assert majority_weights_larger(view) == pytest.approx(20.0 - 10.0)
    # largest class-mean ce 8 against largest |W| 2: log(8 / 2) - log 2 = log 2
    assert ce_far_above_weights(view, np.ones((1, 3)))[0] == pytest.approx(math.log(2))


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


# -- RQ7: overlap of the class top-10 identities ------------------------------------------------


def test_identity_overlap_of_known_top_10_sets():
    train = np.array([list(range(10)), list(range(10, 20)), [-1] * 10])
    # replicate 0: class 0 shares 5 of 10, class 1 all 10, class 2 has no training set
    # (left out); replicate 1: class 1 has no test set (left out), class 0 shares 10
    test = np.array(
        [
            [[0, 1, 2, 3, 4, 20, 21, 22, 23, 24], list(range(10, 20)), list(range(10))],
            [list(range(9, -1, -1)), [-1] * 10, [-1] * 10],
        ]
    )
    assert _overlap(train, test, 10).tolist() == pytest.approx([(0.5 + 1.0) / 2, 1.0])
    # a set with fewer than ten members counts its shared members over ten
    short = np.array([[[0, 1, -1, -1, -1, -1, -1, -1, -1, -1], [-1] * 10, [-1] * 10]])
    assert _overlap(train, short, 10).tolist() == pytest.approx([0.2])


# -- the paper's models beside a run group -------------------------------------------------------


def test_paper_loss_is_the_paper_s_plain_loss_or_none():
    assert paper_loss({"loss": "ce"}) == "ce" and paper_loss({"loss": "ldam"}) == "ldam"
    assert paper_loss({"loss": "ldam", "drw": True}) is None  # LDAM-DRW is not the paper's
    assert paper_loss({"loss": "ce", "reweight": True}) is None
    assert paper_loss({"loss": "balanced_softmax"}) is None and paper_loss(None) is None


def test_paper_reference_prefers_the_same_loss_then_the_same_dataset():
    bac = CLAIMS["bac_order"].paper
    assert reference(bac, "cifar10", "exp100", "focal")[1] == "CIFAR-10 focal"
    assert reference(bac, "svhn", "exp100", "ce")[1] == "SVHN CE"
    assert reference(bac, "celeba", "exp20", "ce")[1] == "CelebA CE"
    assert reference(bac, "fashion_mnist", "exp100", "ldam")[1] == "CIFAR-10 LDAM, other dataset"
    assert reference(bac, "cifar10", "step10", "ce")[1] == "CIFAR-10 CE, other imbalance"
    assert reference(bac, "svhn", "exp100", None)[1] == "SVHN CE, other loss"
    # Table 3 prints no CIFAR-10 CE: a CE group compares with the paper's SVHN CE
    value, label = reference(CLAIMS["majority_ce_smaller"].paper, "fashion_mnist", "exp100", "ce")
    assert label == "SVHN CE, other dataset"
    assert value.value == pytest.approx(math.log(3.4955 / 1.4899 / 2))
    assert reference({}, "cifar10", "exp100", "ce") == (None, "")
    assert same_model("cifar10", "exp100", "ce") == "cifar10/ce"
    assert same_model("cifar10", "exp100", None) is None


def test_every_claim_states_its_source_threshold_and_the_paper_s_values():
    assert len(CLAIMS) >= 11
    for name, claim in CLAIMS.items():
        assert claim.statement and claim.source.startswith("§5") and claim.threshold, name
        assert set(claim.paper) <= set(PAPER_MODELS), name
        assert claim.paper, f"{name}: the paper's value (or its figure) must be declared"
    # the paper's own numbers where it prints them: Table 1 CE 72.56 < 78.60 < 92.65
    assert CLAIMS["bac_order"].paper["cifar10/ce"].value == pytest.approx(0.0604)
    # the paper's own LDAM ratio in Table 4 (1.96) is below its "2-4 times less"
    assert CLAIMS["majority_share_smaller"].paper["cifar10/ldam"].value < 0
    assert CLAIMS["few_features_decide"].paper["cifar10/focal"].value == pytest.approx(12.8 - 11)
