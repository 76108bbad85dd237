"""Analysis functions on tiny embeddings whose answers were worked out by hand (comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fragility.analysis.ce import (
    classification_embeddings,
    own_class_ce,
    reference_and_alternative,
)
from fragility.analysis.inputs import majority_minority
from fragility.analysis.rq1 import evaluate_linear, retrain_classifier, retrained_bac, table1
from fragility.analysis.rq2 import per_class_train_test_accuracy, table2
from fragility.analysis.rq3 import (
    class_topk_coverage,
    rq3_coverage,
    smallest_k,
    topk_coverage_matrix,
)
from fragility.analysis.rq4 import (
    class_mean_own_ce,
    table3,
    table4,
    top_class_mean_ce,
    topk_logit_share,
)
from fragility.analysis.rq5 import largest_weight_vs_ce, top_abs_weights, weight_sums
from fragility.analysis.rq6 import (
    class_topk_members,
    instance_topk_fe,
    members_to_cover,
    top_class_mean_fe,
)
from fragility.analysis.rq7 import (
    frobenius_gap,
    identity_overlap,
    rq7_generalization,
    top_identities,
)
from fragility.embeddings.files import head_logits

# ----------------------------------------------------------------------------- embeddings


def test_classification_embeddings_plain_sum_to_logits():
    fe = np.array([[1, 2, 0], [0, 1, 3]], dtype=np.float32)
    W = np.array([[1, 0, -1], [2, 1, 1]], dtype=np.float32)
    bias = np.array([0.5, -1.0])
    ce = classification_embeddings(fe, W)
    # CE[n, c] = fe[n] * W[c]
    expected = np.array([[[1, 0, 0], [2, 2, 0]], [[0, 0, -3], [0, 1, 3]]])
    np.testing.assert_allclose(ce, expected)
    # logits: [1 + .5, 4 - 1] and [-3 + .5, 4 - 1]
    np.testing.assert_allclose(ce.sum(-1) + bias, [[1.5, 3.0], [-2.5, 3.0]])
    np.testing.assert_allclose(head_logits(fe, W, bias), [[1.5, 3.0], [-2.5, 3.0]])
    np.testing.assert_allclose(own_class_ce(fe, W, np.array([1, 0])), [[2, 2, 0], [0, 0, -3]])


def test_classification_embeddings_normed_sum_to_logits():
    # fe' = [3, 4, 0] / 5 = [.6, .8, 0]; the zero vector stays zero (no NaN)
    fe = np.array([[3, 4, 0], [0, 0, 0]], dtype=np.float32)
    W = np.array([[10, 5, 0], [0, 0, 7]], dtype=np.float32)
    bias = np.array([1.0, 2.0])
    ce = classification_embeddings(fe, W, normed=True)
    np.testing.assert_allclose(ce[0], [[6, 4, 0], [0, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(ce[1], np.zeros((2, 3)))
    np.testing.assert_allclose(ce.sum(-1) + bias, [[11, 2], [1, 2]], atol=1e-12)
    np.testing.assert_allclose(head_logits(fe, W, bias, normed=True), [[11, 2], [1, 2]])
    np.testing.assert_allclose(own_class_ce(fe, W, np.array([0, 1]), normed=True)[0], [6, 4, 0])
    # not normed: different numbers, so the flag matters
    np.testing.assert_allclose(head_logits(fe, W, bias)[0], [51, 2])


def test_reference_and_alternative():
    logits = np.array([[1.0, 3.0, 2.0], [5.0, 0.0, 5.0], [0.0, -1.0, -2.0]])
    ref, alt, lg_r, lg_a = reference_and_alternative(logits)
    assert ref.tolist() == [1, 0, 0]  # tie 5/5 -> first index is R
    assert alt.tolist() == [2, 2, 1]  # and the other 5 is A
    assert lg_r.tolist() == [3.0, 5.0, 0.0]
    assert lg_a.tolist() == [2.0, 5.0, -1.0]


# ----------------------------------------------------------------------------- RQ2


def test_rq2_per_class_and_table2():
    tr_y = np.array([0, 0, 0, 0, 1, 1, 2])
    tr_p = np.array([0, 0, 0, 1, 1, 1, 0])  # class 0: 3/4, class 1: 2/2, class 2: 0/1
    te_y = np.array([0, 0, 1, 1, 2, 2])
    te_p = np.array([0, 1, 1, 1, 2, 0])  # class 0: 1/2, class 1: 2/2, class 2: 1/2
    tab = per_class_train_test_accuracy(tr_y, tr_p, te_y, te_p, 3)
    assert tab["train_acc"] == [0.75, 1.0, 0.0]
    assert tab["test_acc"] == [0.5, 1.0, 0.5]
    assert tab["n_train"] == [4, 2, 1]
    t2 = table2(tab["train_acc"], tab["test_acc"], np.array([4, 2, 1]), "toy")
    assert t2["majority_class"] == [0] and t2["minority_class"] == [2]
    assert t2["train_majority"] == [0.75] and t2["test_majority"] == [0.5]
    assert t2["train_minority"] == [0.0] and t2["test_minority"] == [0.5]


def test_majority_minority_ties():
    assert majority_minority(np.array([5, 5, 5])) == (0, 2)  # balanced: first vs last
    assert majority_minority(np.array([1, 5, 5, 1])) == (1, 3)


# ----------------------------------------------------------------------------- RQ3
# C = 3, H = 4; class 2 has zero weights and bias -10, so it is never R (the prediction).
# With the bias: LG0 = 2a + b - c, LG1 = c + 2d + .5, and R = argmax LG. The paper's
# bias-free logits (sum of ce): LG0' = 2a + b - c, LG1' = c + 2d, LG2' = 0, and its R is their
# argmax (the lower index on a tie).
W3 = np.array([[2, 1, -1, 0], [0, 0, 1, 2], [0, 0, 0, 0]], dtype=np.float64)
B3 = np.array([0.0, 0.5, -10.0])
FE3 = np.array(
    [
        [3, 1, 0, 0],  # LG 7, .5 -> R0, CE0 sorted 6,1,0,0; 6 > .5 at K=1 | bias-free 6 > 0
        [1, 1, 1, 1],  # LG 2, 3.5 -> R1, CE1 sorted 2,1,0,0; 2+.5 > 2 at K=1 | 2 > 2 no, 3 > 2
        # LG 3, 3.5 -> R1; 2+.5 > 3 no, 3+.5 > 3 at K=2 | LG' 3, 3: a tie, R' = 0 (the lower
        # index), CE0 sorted 4,0,0,-1: 4 > 3 from K=1 until the full sum 3 ties it at K=4
        [2, 0, 1, 1],
        [1, 2, 0, 1],  # LG 4, 2.5 -> R0, CE0 2,2,0,0; 2 > 2.5 no, 4 at K=2 | A' = 2: K=2
        [1, 3, 1, 1],  # LG 4, 3.5 -> R0, CE0 3,2,0,-1; 3 > 3.5 no, 5 at K=2 | A' = 3: K=2
    ],
    dtype=np.float64,
)
COVERED_WITH_BIAS = [[True] * 4, [True] * 4, [False, True, True, True],
                     [False, True, True, True], [False, True, True, True]]  # fmt: skip
COVERED_BIAS_FREE = [[True] * 4, [False, True, True, True], [True, True, True, False],
                     [False, True, True, True], [False, True, True, True]]  # fmt: skip


def _logits3(fe):
    return fe @ W3.T + B3


def test_rq3_instance_coverage_bias_free_and_with_bias():
    logits = _logits3(FE3)
    assert topk_coverage_matrix(FE3, W3, B3, logits, with_bias=True).tolist() == COVERED_WITH_BIAS
    # the paper's reading is the default: n1 needs K = 2 without its bias of +0.5, and n2,
    # predicted 1 only by the bias, is class 0's without it (see FE3)
    assert topk_coverage_matrix(FE3, W3, B3, logits).tolist() == COVERED_BIAS_FREE


def test_rq3_class_ratios_and_smallest_k():
    res = rq3_coverage(FE3, W3, B3, _logits3(FE3), ks=(1, 2))
    # with the bias class 0 = {n0, n3, n4}, class 1 = {n1, n2}; bias-free class 0 = {n0, n2,
    # n3, n4}, class 1 = {n1}: the bias moves one instance
    np.testing.assert_allclose(res.class_ratio_with_bias[:2], [[1 / 3, 1.0], [0.5, 1.0]])
    np.testing.assert_allclose(res.class_ratio[:2], [[2 / 4, 1.0], [0.0, 1.0]])
    assert np.isnan(res.class_ratio[2]).all()  # never predicted
    assert res.n_per_class.tolist() == [4, 1, 0] and res.n_per_class_with_bias.tolist() == [3, 2, 0]
    assert res.n_changed == 1
    np.testing.assert_allclose(res.overall_by_k_with_bias, [0.4, 1, 1, 1])
    np.testing.assert_allclose(res.overall_by_k, [0.4, 1, 1, 0.8])
    assert res.smallest_k(0.94, with_bias=True) == 2 and res.smallest_k(0.94) == 2
    assert res.smallest_k(0.4) == 1 and res.coverage_at(2) == pytest.approx(1.0)
    cov = topk_coverage_matrix(FE3, W3, B3, _logits3(FE3), with_bias=True)
    assert smallest_k(cov, threshold=0.4) == 1
    assert smallest_k(cov, threshold=0.41) == 2
    ratios = class_topk_coverage(cov, np.array([0, 1, 1, 0, 0]), 3, ks=(1,))
    assert ratios[:2, 0].tolist() == pytest.approx([1 / 3, 0.5])


def test_rq3_94_percent_threshold():
    # 16 instances covered at K=1 (n0) + 1 needing K=2 (n3): 16/17 = .941 >= .94 -> K=1
    fe = np.array([FE3[0]] * 16 + [FE3[3]])
    assert rq3_coverage(fe, W3, B3, _logits3(fe), ks=(1, 2)).smallest_k(0.94) == 1
    # 15 + 2: 15/17 = .882 < .94 -> K=2, and .882 < .90 too; at 0.88 K=1
    fe = np.array([FE3[0]] * 15 + [FE3[3]] * 2)
    res = rq3_coverage(fe, W3, B3, _logits3(fe), ks=(1, 2))
    assert res.smallest_k(0.94) == 2 and res.smallest_k(0.90) == 2 and res.smallest_k(0.88) == 1
    with pytest.raises(ValueError):
        rq3_coverage(fe, W3, B3, _logits3(fe), ks=(5,))  # K > H = 4


def test_rq3_tie_is_not_covered():
    # fe [1, 2, 0, .75]: LG0 = 4, LG1 = 1.5 + .5 = 2; CE0 sorted 2,2,0,0: 2 > 2 is false
    fe = np.array([[1, 2, 0, 0.75]])
    covered = topk_coverage_matrix(fe, W3, B3, _logits3(fe), with_bias=True)
    assert covered[0].tolist() == [False, True, True, True]
    # bias-free LG1' = 1.5: 2 > 1.5 already at K=1
    assert topk_coverage_matrix(fe, W3, B3, _logits3(fe))[0].tolist() == [True] * 4


def test_rq3_normed():
    # fe' = [0, .6, 0, .8]; LG0 = 6, LG1 = 4; CE0 = [0, 6, 0, 0]: 6 > 4 at K=1
    fe = np.array([[0, 3, 0, 4.0]])
    W = np.array([[0, 10, 0, 0], [0, 0, 0, 5.0]])
    b = np.zeros(2)
    logits = head_logits(fe, W, b, normed=True)
    np.testing.assert_allclose(logits, [[6, 4]])
    assert topk_coverage_matrix(fe, W, b, logits, normed=True)[0].tolist() == [True] * 4
    # bias [-3, 0]: normed LG = [3, 4] -> R1, CE1 = [0, 0, 0, 4]: 4 > 3 at K=1 with the
    # bias; bias-free LG' = [6, 4] -> R0, CE0 = [0, 6, 0, 0]: 6 > 4 at K=1
    # (raw fe would give LG = [27, 20] and R0: the flag changes the reference class)
    b2 = np.array([-3.0, 0.0])
    logits2 = head_logits(fe, W, b2, normed=True)
    np.testing.assert_allclose(logits2, [[3, 4]])
    res = rq3_coverage(fe, W, b2, logits2, normed=True, ks=(1,))
    assert res.n_per_class_with_bias.tolist() == [0, 1] and res.class_ratio_with_bias[1, 0] == 1.0
    assert res.n_per_class.tolist() == [1, 0] and res.class_ratio[0, 0] == 1.0


def test_class_groups_are_the_largest_and_smallest_40_percent():
    from fragility.analysis.inputs import class_groups

    # 10 classes (exp): 0-3 and 6-9, as the paper contrasts them
    counts = [1000, 599, 359, 215, 129, 77, 46, 27, 16, 10]
    majority, minority = class_groups(np.array(counts))
    assert majority.tolist() == [0, 1, 2, 3] and minority.tolist() == [6, 7, 8, 9]
    # 5 classes: 40 % is 2 each, whatever the class order
    majority, minority = class_groups(np.array([5, 50, 20, 10, 40]))
    assert majority.tolist() == [1, 4] and minority.tolist() == [0, 3]
    # 2 classes (CelebA): at least one each
    assert [g.tolist() for g in class_groups(np.array([5000, 250]))] == [[0], [1]]
    # balanced: ties in class order, consistent with majority_minority (0 vs C-1)
    assert [g.tolist() for g in class_groups(np.full(10, 7))] == [[0, 1, 2, 3], [6, 7, 8, 9]]
    # 3 classes: floor(1.2) = 1 each
    assert [g.tolist() for g in class_groups(np.array([9, 5, 1]))] == [[0], [2]]


# ----------------------------------------------------------------------------- RQ4
W4 = np.array([[1, 2, 0], [0, 1, 3], [1, 0, 1]], dtype=np.float64)
FE4 = np.array([[1, 1, 0], [3, 0, 1], [0, 2, 1], [1, 0, 3], [2, 0, 2], [0, 5, 4]], dtype=float)
Y4 = np.array([0, 0, 1, 1, 2, 2])
# own rows: n0 [1,2,0] n1 [3,0,0] | n2 [0,2,3] n3 [0,0,9] | n4 [2,0,2] n5 [0,0,4]


def test_rq4_class_mean_ce_and_table3():
    mean = class_mean_own_ce(FE4, W4, Y4, 4)
    np.testing.assert_allclose(mean[:3], [[2, 1, 0], [0, 1, 6], [1, 0, 3]])
    assert np.isnan(mean[3]).all()  # class 3 has no instance
    vals, idx = top_class_mean_ce(mean, n=2)
    np.testing.assert_allclose(vals[:3], [[2, 1], [6, 1], [3, 1]])
    assert idx[:3].tolist() == [[0, 1], [2, 1], [2, 0]]
    assert idx[3].tolist() == [-1, -1]
    # largest: majority 2; others (6 + 3) / 2 = 4.5; ratio 4.5 / 2 = 2.25 (empty class ignored)
    t3 = table3(mean, majority=0)
    assert t3 == pytest.approx({"majority": 2.0, "others_mean": 4.5, "ratio": 2.25})
    # majority = class 1: others (2 + 3) / 2 = 2.5, ratio 2.5 / 6
    assert table3(mean, majority=1)["ratio"] == pytest.approx(2.5 / 6)


def test_rq4_logit_shares_and_table4():
    bias = np.array([1.0, 0.0, -1.0])
    # extra class-2 instance with fe = 0: logit = -1 <= 0, left out of the shares
    fe = np.vstack([FE4, np.zeros((1, 3))])
    y = np.append(Y4, 2)
    shares, used = topk_logit_share(fe, W4, bias, y, 3, k=2)
    # n0 logit 4: [2,1]/4 ; n1 logit 4: [3,0]/4 -> mean [.625, .125]
    # n2 logit 5: [3,2]/5 ; n3 logit 9: [9,0]/9 -> [.8, .2]
    # n4 logit 3: [2,2]/3 ; n5 logit 3: [4,0]/3 -> [1, 1/3]
    np.testing.assert_allclose(shares, [[0.625, 0.125], [0.8, 0.2], [1.0, 1 / 3]])
    assert used.tolist() == [2, 2, 2]
    # Table 4: majority .625, others (.8 + 1) / 2 = .9, ratio .9 / .625 = 1.44
    assert table4(shares) == pytest.approx({"majority": 0.625, "others_mean": 0.9, "ratio": 1.44})
    # ranked by the class-mean identities instead: class 0 mean [2,1,0] -> ids (0, 1):
    # n0 [1,2]/4, n1 [3,0]/4 -> [.5, .25]; class 2 (mean [2/3,0,2]) -> ids (2, 0): same as above
    shares_c, _ = topk_logit_share(fe, W4, bias, y, 3, k=2, rank_by="class")
    np.testing.assert_allclose(shares_c, [[0.5, 0.25], [0.8, 0.2], [1.0, 1 / 3]])
    with pytest.raises(ValueError):
        topk_logit_share(fe, W4, bias, y, 3, rank_by="nope")


# ----------------------------------------------------------------------------- RQ5


def test_rq5_weights():
    W = np.array([[0.5, -2, 1, 0.1], [3, 0, -0.2, 0.4], [-1, 1, 1, -1]])
    vals, idx = top_abs_weights(W, n=2)
    np.testing.assert_allclose(vals, [[2, 1], [3, 0.4], [1, 1]])
    assert idx.tolist() == [[1, 2], [0, 3], [0, 1]]  # tie in class 2 -> lower indices
    s = weight_sums(W, majority=0, n=2)  # minority defaults to the last class
    assert s["minority_class"] == 2
    assert s["majority_sum"] == pytest.approx(3.0) and s["minority_sum"] == pytest.approx(2.0)
    assert weight_sums(W, majority=0, minority=1, n=2)["minority_sum"] == pytest.approx(3.4)
    mean_ce = np.array([[2, 1, 0], [0, 1, 6], [np.nan] * 3])
    res = largest_weight_vs_ce(W, mean_ce)
    assert res == pytest.approx({"largest_abs_w": 3.0, "largest_mean_ce": 6.0, "ratio": 2.0})


# ----------------------------------------------------------------------------- RQ6
FE6 = np.array(
    [
        [5, 4, 0, 1, 0],  # top2 (0, 1)  class 0
        [0, 3, 2, 0, 0],  # (1, 2)       class 0
        [1, 0, 0, 7, 6],  # (3, 4)       class 0
        [2, 9, 0, 0, 1],  # (1, 0)       class 0
        [0, 0, 1, 2, 3],  # (4, 3)       class 1
        [3, 0, 0, 0, 4],  # (4, 0)       class 1
    ],
    dtype=float,
)
C6 = np.array([0, 0, 0, 0, 1, 1])


def test_rq6_instance_topk():
    assert instance_topk_fe(FE6, 2).tolist() == [[0, 1], [1, 2], [3, 4], [1, 0], [4, 3], [4, 0]]
    assert instance_topk_fe(np.array([[1.0, 1.0, 0.0]]), 2).tolist() == [[0, 1]]  # tie


def test_rq6_fig8_members_and_shares():
    members, shares, n_class = class_topk_members(FE6, C6, 3, k=2, n=3)
    # class 0 counts: idx1 3, idx0 2, idx2/3/4 1 each -> (1, 0, 2)
    # class 1 counts: idx4 2, idx0 1, idx3 1 -> (4, 0, 3)
    assert members[:2].tolist() == [[1, 0, 2], [4, 0, 3]]
    np.testing.assert_allclose(shares[:2], [[0.75, 0.5, 0.25], [1.0, 0.5, 0.5]])
    assert np.isnan(shares[2]).all() and n_class.tolist() == [4, 2, 0]


def test_rq6_fig9_members_to_cover():
    # class 0 order (1, 0, 2, 3, 4): n2 = {3, 4} is first hit by member #4 (idx 3), so 4
    # (a minimum set cover would need only 2: {1, 3}; the paper's count is greedy in order)
    # class 1 order (4, ...): idx 4 is in both instances -> 1; class 2 empty -> -1
    assert members_to_cover(FE6, C6, 3, k=2).tolist() == [4, 1, -1]
    # with k=3 class 0 top-3 sets: {0,1,3} {1,2,0} {3,4,0} {1,0,4}: idx0 in all -> 1
    assert members_to_cover(FE6, C6, 3, k=3)[0] == 1


def test_rq6_fig10a_class_mean_fe():
    vals, idx = top_class_mean_fe(FE6, C6, 3, n=2)
    # class 0 mean [2, 4, .5, 2, 1.75] -> 4 @1, 2 @0 (tie with @3 -> lower index)
    # class 1 mean [1.5, 0, .5, 1, 3.5] -> 3.5 @4, 1.5 @0
    np.testing.assert_allclose(vals[:2], [[4, 2], [3.5, 1.5]])
    assert idx.tolist() == [[1, 0], [4, 0], [-1, -1]]


# ----------------------------------------------------------------------------- RQ7
TRAIN_FE7 = np.array([[4, 2, 0, 0], [2, 2, 2, 0], [0, 0, 3, 5], [0, 2, 1, 3]], dtype=float)
TRAIN_Y7 = np.array([0, 0, 1, 1])  # means: c0 [3,2,1,0] -> top2 (0,1); c1 [0,1,2,4] -> (3,2)
TEST_FE7 = np.array(
    [
        [3, 2, 0, 0],  # label 0 pred 0: TP c0
        [1, 2, 0, 1],  # label 0 pred 0: TP c0  -> TP mean c0 [2, 2, 0, .5]
        [0, 0, 2, 4],  # label 1 pred 1: TP c1  -> TP mean c1 [0, 0, 2, 4]
        [0, 1, 3, 3],  # label 1 pred 0: FP c0
        [2, 0, 1, 1],  # label 0 pred 1: FP c1
    ],
    dtype=float,
)
TEST_Y7 = np.array([0, 0, 1, 1, 0])
TEST_P7 = np.array([0, 0, 1, 0, 1])
W7 = np.array([[1, 1, 1, 0], [0, 0, 1, 1]], dtype=float)


def test_rq7_frobenius_norms():
    res = rq7_generalization(
        TRAIN_FE7, TRAIN_Y7, TEST_FE7, TEST_Y7, TEST_P7, W7, 2, n_top=2, identity="mean"
    )
    assert res.top_idx.tolist() == [[0, 1], [3, 2]]
    # TP: c0 train [3,2] vs [2,2] -> (1, 0); c1 [4,2] vs [4,2] -> (0, 0) => sqrt(1) = 1
    assert res.fb_tp == pytest.approx(1.0) and res.rows_tp == 2
    # FP: c0 [3,2] vs [0,1] -> (3,1); c1 [4,2] vs [1,1] -> (3,1) => sqrt(9+1+9+1)
    assert res.fb_fp == pytest.approx(math.sqrt(20)) and res.rows_fp == 2
    assert res.n_tp.tolist() == [2, 1] and res.n_fp.tolist() == [1, 1]
    np.testing.assert_allclose(res.at_top(res.mu_fp), [[0, 1], [1, 1]])


def test_rq7_class_without_fp_is_left_out():
    keep = slice(0, 4)  # drop the only FP of class 1
    res = rq7_generalization(
        TRAIN_FE7,
        TRAIN_Y7,
        TEST_FE7[keep],
        TEST_Y7[keep],
        TEST_P7[keep],
        W7,
        2,
        n_top=2,
        identity="mean",
    )
    assert res.fb_fp == pytest.approx(math.sqrt(10)) and res.rows_fp == 1
    assert np.isnan(res.overlap["fe_fp"][1])
    # no FP at all -> NaN norm, 0 rows
    mu = np.array([[1.0, 2.0], [3.0, 4.0]])
    nan_mu = np.full((2, 2), np.nan)
    norm, rows = frobenius_gap(mu, nan_mu, np.array([[0, 1], [1, 0]]))
    assert math.isnan(norm) and rows == 0


def test_rq7_overlaps_by_mean():
    res = rq7_generalization(
        TRAIN_FE7, TRAIN_Y7, TEST_FE7, TEST_Y7, TEST_P7, W7, 2, n_top=2, identity="mean"
    )
    # FE: TP c0 [2,2,0,.5] -> (0,1) shares 2; TP c1 (3,2) -> 2;
    #     FP c0 [0,1,3,3] -> (2,3) shares 0 with (0,1); FP c1 [2,0,1,1] -> (0,2) shares 1
    assert res.overlap["fe_tp"].tolist() == [2, 2]
    assert res.overlap["fe_fp"].tolist() == [0, 1]
    # CE (row of class c): train c0 mean [3,2,1,0] -> (0,1); c1 [0,0,2,4] -> (3,2)
    #     FP c0 s3*W0 = [0,1,3,0] -> (2,1) shares 1; FP c1 s4*W1 = [0,0,1,1] -> (2,3) shares 2
    assert res.overlap["ce_tp"].tolist() == [2, 2]
    assert res.overlap["ce_fp"].tolist() == [1, 2]
    summ = res.summary()
    assert summ["overlap_fe_tp"] == pytest.approx(1.0)  # mean 2 of 2
    assert summ["overlap_fe_fp"] == pytest.approx(0.25)  # mean .5 of 2
    assert res.table()["overlap_ce_fp"] == [1.0, 2.0]


def test_rq7_overlaps_by_frequency():
    res = rq7_generalization(
        TRAIN_FE7, TRAIN_Y7, TEST_FE7, TEST_Y7, TEST_P7, W7, 2, n_top=2, identity="frequency", k=2
    )
    # train top-2 sets: c0 {0,1},{0,1} -> (0,1); c1 {3,2},{3,1} -> (3,1)
    # TP c0 {0,1},{1,0} -> (0,1): 2 ; TP c1 {3,2} -> (2,3): shares 3 with (3,1) -> 1
    # FP c0 {2,3} -> 0 ; FP c1 {0,2} -> 0
    assert res.overlap["fe_tp"].tolist() == [2, 1]
    assert res.overlap["fe_fp"].tolist() == [0, 0]
    # a class with fewer distinct members than n_top gets -1 for the rest
    ids = top_identities(TEST_FE7[4:], np.array([1]), 2, n_top=3, identity="frequency", k=2)
    assert ids.tolist() == [[-1, -1, -1], [0, 2, -1]]
    assert identity_overlap(np.array([[0, 1, -1]]), np.array([[1, 2, -1]])).tolist() == [1]


# ----------------------------------------------------------------------------- RQ1


def _toy_separable():
    rng = np.random.default_rng(0)
    c0 = np.column_stack([rng.uniform(2, 3, 30), rng.uniform(0, 0.5, 30)])
    c1 = np.column_stack([rng.uniform(0, 0.5, 30), rng.uniform(2, 3, 30)])
    fe = np.vstack([c0, c1]).astype(np.float32)
    return fe, np.repeat([0, 1], 30)


def test_rq1_evaluate_linear():
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    # logits [1, 1.3] -> 1 ; [1, .7] -> 0
    assert evaluate_linear(np.array([[1, 0.8], [1, 0.2]]), W, np.array([0, 0.5])).tolist() == [1, 0]


def test_rq1_retrain_separates_and_is_deterministic():
    fe, y = _toy_separable()
    W1, b1 = retrain_classifier(fe, y, 2, epochs=10, seed=3)
    W2, b2 = retrain_classifier(fe, y, 2, epochs=10, seed=3)
    W3, _ = retrain_classifier(fe, y, 2, epochs=10, seed=4)
    assert W1.shape == (2, 2) and b1.shape == (2,)
    assert np.array_equal(W1, W2) and np.array_equal(b1, b2)
    assert not np.array_equal(W1, W3)
    assert (evaluate_linear(fe, W1, b1) == y).all()
    test_fe = np.array([[2.5, 0.1], [0.1, 2.5], [3.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    bac = retrained_bac(fe, y, test_fe, np.array([0, 1, 0, 1]), 2, epochs=10, seed=3)
    assert bac == 1.0


def test_table1():
    row = table1(0.9265, 0.7256, 0.7860, "C-ent CIFAR-10")
    assert row["retrain_gain"][0] == pytest.approx(0.0604)
    assert row["description"] == ["C-ent CIFAR-10"]
    # the ordering is a claim with an interval (claims.bac_order), not a column of Table 1
    assert set(row) == {"description", "balanced", "imbalanced", "retrained", "retrain_gain"}
    assert table1(0.90, 0.80, 0.70)["retrain_gain"][0] == pytest.approx(-0.10)  # no help
    no_bal = table1(None, 0.70, 0.80)
    assert math.isnan(no_bal["balanced"][0]) and no_bal["retrain_gain"][0] == pytest.approx(0.10)
