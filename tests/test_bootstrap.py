"""run_bootstrap's point estimates (row 0: every weight 1) are the claim differences
computed by hand from the per-run tables rq_tables builds from the same embeddings, a claim
that cannot be measured is n/a with its reason, and the replicates are paired, seeded and
finite where they should be."""

from __future__ import annotations

import numpy as np
import pytest

from fragility.analysis.bootstrap import HEADLINE, run_bootstrap
from fragility.analysis.inputs import RunInputs
from fragility.analysis.tables import rq_tables
from fragility.catalog.claims import CLAIMS, FEW_FEATURES_COVERAGE, MIN_MINORITY_GAP
from fragility.embeddings.files import head_logits
from fragility.metrics import balanced_accuracy, per_class_accuracy, summary

C, H = 3, 16
TRAIN_COUNTS = (60, 25, 8)  # majority 0, minority 2
TEST_COUNTS = (20, 20, 20)
# Dense positive weights: a prediction rests on many features, so that the top-K coverage
# climbs slowly with K (about 0.45 at K = 7, 1 only near K = 16) and "K <= 7" matters.
K_SMALLEST = 5  # the claims' smallest K (run_bootstrap's ks), where the ratios are not 0 or 1


def _subset(rng, counts, W, bias, normed, start):
    labels = np.repeat(np.arange(C), counts)
    fe = np.abs(rng.normal(size=(len(labels), H)))
    fe[np.arange(len(labels)), 2 * labels] += 2.0  # each class has its own features
    fe[np.arange(len(labels)), 2 * labels + 1] += 1.0
    logits = head_logits(fe, W, bias, normed)
    return {
        "index": np.arange(start, start + len(labels)),
        "label": labels,
        "pred": logits.argmax(axis=1),
        "fe": fe,
        "logits": logits,
    }


def _data(normed: bool):
    rng = np.random.default_rng(5)
    W = rng.normal(0.3, 0.05, (C, H))
    for c in range(C):
        W[c, 2 * c : 2 * c + 2] += 0.4
    if normed:  # fe' = fe / |fe| has norm 1: the weights carry the scale
        W *= 4.0
    bias = np.array([0.3, 0.0, -0.2])
    train = _subset(rng, TRAIN_COUNTS, W, bias, normed, 0)
    test = _subset(rng, TEST_COUNTS, W, bias, normed, 1000)
    # four majority test images that look like the minority: its false positives (Fig 10)
    test["fe"][:4, 4:6] += 6.0
    test["logits"] = head_logits(test["fe"], W, bias, normed)
    test["pred"] = test["logits"].argmax(axis=1)
    return train, test, W, bias


@pytest.fixture(params=[False, True], ids=["linear", "normed"])
def run(request):
    normed = request.param
    train, test, W, bias = _data(normed)
    W64, bias64 = np.asarray(W, np.float64), np.asarray(bias, np.float64)  # as from_files reads
    inputs = RunInputs(train, test, W64, bias64, normed, np.array(TRAIN_COUNTS), ["a", "b", "c"])
    view = inputs  # the claims read the model the tables are built from
    # the data must exercise every claim: each class predicted in train and test, errors
    for subset in (train, test):
        assert set(subset["pred"].tolist()) == {0, 1, 2}
    assert (test["pred"] != test["label"]).sum() >= 5
    assert ((test["pred"] == 2) & (test["label"] != 2)).sum() >= 3
    return inputs, view


def _estimates(table) -> dict[str, float | None]:
    return dict(zip(table["statistic"].to_pylist(), table["estimate"].to_pylist()))


def _reasons(table) -> dict[str, str | None]:
    return dict(zip(table["statistic"].to_pylist(), table["reason"].to_pylist()))


def _one(table, column):
    (value,) = table[column].to_pylist()
    return value


def test_claim_estimates_equal_the_per_run_tables(run):
    inputs, view = run
    rng = np.random.default_rng(0)
    retrained = np.where(rng.random(60) < 0.3, rng.integers(0, C, 60), view.test["label"])
    boot = run_bootstrap(
        view, seed=3, n_boot=50, retrained_pred=retrained, ks=(K_SMALLEST, 7), k_fe=7
    )
    est, reasons = _estimates(boot), _reasons(boot)
    assert set(est) == {*HEADLINE, *CLAIMS, "bac_imbalanced", "bac_retrained",
                        "bac_retrained_gain"}  # fmt: skip
    ks = tuple(range(1, H + 1))
    rq2, rq3 = rq_tables("rq2", inputs), rq_tables("rq3", inputs, ks=ks)
    rq4, rq5 = rq_tables("rq4", inputs, k_fe=7), rq_tables("rq5", inputs)
    rq6, rq7 = rq_tables("rq6", inputs, k_fe=7), rq_tables("rq7", inputs, k_fe=7)

    # minority_overfits: min(gap_min - gap_maj, gap_min - 0.10), gap = train - test accuracy
    t2 = rq2["table2"]
    gap_min = _one(t2, "train_acc_minority") - _one(t2, "test_acc_minority")
    gap_maj = _one(t2, "train_acc_majority") - _one(t2, "test_acc_majority")
    assert est["minority_overfits"] == pytest.approx(
        min(gap_min - gap_maj, gap_min - MIN_MINORITY_GAP), abs=1e-12
    )

    # few_features_decide: H/5 - the smallest K whose bias-free coverage of all instances
    # reaches 90 %; the coverage of all instances is the predicted classes' ratios weighted
    # by their sizes
    cov = rq3["topk_coverage"].to_pylist()
    n = len(inputs.train["label"])
    overall = {
        k: sum((r["coverage_ratio"] or 0.0) * r["n_pred"] for r in cov if r["k"] == k) / n
        for k in ks
    }
    k90 = min(k for k in ks if overall[k] >= FEW_FEATURES_COVERAGE)
    assert 3 < k90 < H  # the data make K matter: neither 1 nor H
    assert _one(rq3["smallest_k"], "smallest_k_90") == k90
    assert est["few_features_decide"] == pytest.approx(H / 5 - k90, abs=1e-12)

    # minority_smaller_k: minority-group minus majority-group mean coverage at the smallest
    # configured K; on 3 classes the groups are class 2 and class 0
    at_k = {r["class"]: r["coverage_ratio"] for r in cov if r["k"] == K_SMALLEST}
    assert 0 < at_k[0] < 1 and at_k[2] is not None
    group = [r for r in rq3["group_coverage"].to_pylist() if r["k"] == K_SMALLEST][0]
    assert group["coverage_minority_group"] - group["coverage_majority_group"] == pytest.approx(
        at_k[2] - at_k[0]
    )
    assert est["minority_smaller_k"] == pytest.approx(at_k[2] - at_k[0], abs=1e-12)

    # Table 3 (every class drawn down to the smallest's size) and Table 4 (the bias-free
    # logit): log(others' mean / majority) - log 2
    t3, t4 = _one_row(rq4["table3"]), _one_row(rq4["table4"])
    assert est["majority_ce_smaller"] == pytest.approx(
        np.log(t3["ratio_others_to_majority_matched"]) - np.log(2), abs=1e-12
    )
    assert t3["matched_size"] == min(TRAIN_COUNTS)
    assert est["majority_share_smaller"] == pytest.approx(
        np.log(t4["ratio_others_to_majority"]) - np.log(2), abs=1e-12
    )
    # the bias moves the shares; the claim reads the bias-free ones
    assert t4["ratio_others_to_majority"] != pytest.approx(t4["ratio_others_to_majority_with_bias"])
    # §5.4: the minority group (class 2 of 3) against the other classes, size-matched
    assert est["minority_ce_larger"] == pytest.approx(
        np.log(
            t3["minority_group_largest_mean_ce_matched"]
            / t3["other_classes_largest_mean_ce_matched"]
        ),
        abs=1e-12,
    )

    # RQ5: top-10 |W| sums (the weights alone: no replicates) and the ce-to-|W| scale, on a
    # linear head; n/a with the reason on a cosine head, whatever its numbers
    w = _one_row(rq5["weight_sums"])
    if not view.normed:
        assert est["majority_weights_larger"] == pytest.approx(
            w["majority_top_abs_w_sum"] - w["minority_top_abs_w_sum"], abs=1e-12
        )
        assert est["ce_far_above_weights"] == pytest.approx(
            np.log(w["ratio_ce_to_w"]) - np.log(2), abs=1e-12
        )
    else:
        for claim in ("majority_weights_larger", "ce_far_above_weights"):
            assert est[claim] is None
            assert reasons[claim].startswith("normed head: ")
        assert "cosine" in reasons["ce_far_above_weights"]

    # RQ6: Fig 8 group shares (classes drawn down to the smallest predicted class) and Fig 9
    # members needed (the majority drawn down to the minority's predicted count)
    d = _one_row(rq6["diversity"])
    assert est["minority_features_frequent"] == pytest.approx(
        d["top_member_share_minority_group_matched"] - d["top_member_share_majority_group_matched"],
        abs=1e-12,
    )
    assert est["majority_needs_more_members"] == pytest.approx(
        d["members_needed_majority_matched"] - d["members_needed_minority"], abs=1e-12
    )

    # RQ7: the size-matched FB difference and the identity overlaps
    gap = _one_row(rq7["generalization_gap"])
    assert est["tp_closer_than_fp"] == pytest.approx(
        gap["frobenius_train_vs_fp_matched"] - gap["frobenius_train_vs_tp_matched"], abs=1e-9
    )
    for kind in ("ce", "fe"):
        assert est[f"identity_overlap_{kind}"] == pytest.approx(
            gap[f"overlap_{kind}_tp_matched"] - gap[f"overlap_{kind}_fp"], abs=1e-12
        )
    assert est["fig10_direction"] == pytest.approx(
        np.log(gap["fe_top_mean_tp_minority_group"] / gap["fe_top_mean_fp_minority_group"]),
        abs=1e-12,
    )

    # without a balanced partner the balanced-vs-imbalanced claims are n/a, with the reason
    for claim in ("fig3_trend", "fig45_magnitude", "fig6_shares"):
        assert est[claim] is None and reasons[claim]

    # bac_order without a balanced run: n/a (never its measurable half), the RQ1 BACs stand
    labels = view.test["label"]
    bac_imb = balanced_accuracy(labels, view.test["pred"], C)
    bac_ret = balanced_accuracy(labels, retrained, C)
    assert est["bac_imbalanced"] == pytest.approx(bac_imb, abs=1e-12)
    assert est["bac_retrained"] == pytest.approx(bac_ret, abs=1e-12)
    assert est["bac_retrained_gain"] == pytest.approx(bac_ret - bac_imb, abs=1e-12)
    assert est["bac_order"] is None and reasons["bac_order"] == "no balanced run of this dataset"

    # headline numbers: fragility.metrics on the test predictions
    want = summary(labels, view.test["pred"], C)
    recall = per_class_accuracy(labels, view.test["pred"], C)
    for name in ("bac", "macro_f1", "gmean", "accuracy"):
        assert est[name] == pytest.approx(want[name], abs=1e-12), name
    assert est["majority_acc"] == pytest.approx(recall[0])
    assert est["minority_acc"] == pytest.approx(recall[2])


def _one_row(table) -> dict:
    (row,) = table.to_pylist()
    return row


def test_bac_order_with_a_balanced_run(run):
    _, view = run
    labels = view.test["label"]
    rng = np.random.default_rng(1)
    retrained = np.where(rng.random(60) < 0.3, (labels + 1) % C, labels)
    balanced_pred = np.where(rng.random(60) < 0.1, (labels + 2) % C, labels)
    bac_imb = balanced_accuracy(labels, view.test["pred"], C)
    bac_ret = balanced_accuracy(labels, retrained, C)
    bac_bal = balanced_accuracy(labels, balanced_pred, C)
    expected = min(bac_ret - bac_imb, bac_bal - bac_ret)

    # the balanced model saw the same test images, stored in another order: paired by index
    order = rng.permutation(60)
    same = {"index": view.test["index"][order], "label": labels[order],
            "pred": balanced_pred[order]}  # fmt: skip
    paired = run_bootstrap(view, seed=2, n_boot=200, retrained_pred=retrained, balanced_test=same)
    est = _estimates(paired)
    assert est["bac_balanced"] == pytest.approx(bac_bal, abs=1e-12)
    assert est["bac_order"] == pytest.approx(expected, abs=1e-12)

    # other test images: the balanced model is resampled on its own, estimate unchanged
    other = dict(same, index=same["index"] + 10_000)
    unpaired = run_bootstrap(view, seed=2, n_boot=200, retrained_pred=retrained,
                             balanced_test=other)  # fmt: skip
    assert _estimates(unpaired)["bac_order"] == pytest.approx(expected, abs=1e-12)

    # pairing check: a balanced model predicting exactly as the retrained one gives
    # balanced - retrained = 0 in every replicate when paired by image
    twin = dict(same, pred=retrained[order])
    rows = {r["statistic"]: r for r in run_bootstrap(
        view, seed=2, n_boot=200, retrained_pred=retrained, balanced_test=twin).to_pylist()}  # fmt: skip
    diff = np.array(rows["bac_balanced"]["replicates"]) - np.array(
        rows["bac_retrained"]["replicates"]
    )
    assert np.abs(diff).max() < 1e-12
    gain = np.array(rows["bac_retrained_gain"]["replicates"])
    assert np.allclose(rows["bac_order"]["replicates"], np.minimum(gain, 0.0))


def test_bootstrap_table_columns_and_seeding(run):
    _, view = run
    a = run_bootstrap(view, seed=4, n_boot=30)
    # without RQ1's re-trained classifier bac_order is n/a; the imbalanced BAC stands beside it
    claims = list(CLAIMS)
    assert a["statistic"].to_pylist() == [*HEADLINE, claims[0], "bac_imbalanced", *claims[1:]]
    rows = {r["statistic"]: r for r in a.to_pylist()}
    assert rows["bac"]["n"] == 60 and rows["majority_ce_smaller"]["n"] == sum(TRAIN_COUNTS)
    assert rows["bac"]["interval"] == "bootstrap over test images"
    assert rows["few_features_decide"]["interval"] == "bootstrap over training images"
    assert all(r["n_boot"] == 30 and len(r["replicates"]) == 30 for r in rows.values())
    # the weight sums depend on no image: no replicates, no interval, said so
    fixed = rows.pop("majority_weights_larger")
    assert fixed["ci_low"] is None and (fixed["estimate"] is not None) == (not view.normed)
    assert set(fixed["replicates"]) == {None} and fixed["interval"].startswith("none")
    for r in rows.values():
        if r["estimate"] is None:  # n/a on this run: no replicate either
            assert r["reason"] and set(r["replicates"]) == {None}
            continue
        reps = np.array([np.nan if v is None else v for v in r["replicates"]])
        finite = reps[np.isfinite(reps)]
        assert r["ci_low"] == pytest.approx(np.quantile(finite, 0.025))
        assert r["ci_high"] == pytest.approx(np.quantile(finite, 0.975))
    # the same seed reproduces every replicate; another seed moves them, not the estimates
    assert a.equals(run_bootstrap(view, seed=4, n_boot=30))
    b = run_bootstrap(view, seed=5, n_boot=30)
    assert a["estimate"].to_pylist() == b["estimate"].to_pylist()
    assert a["replicates"].to_pylist() != b["replicates"].to_pylist()
    # a balanced run (claims=False): the headline numbers only
    assert run_bootstrap(view, seed=4, n_boot=30, claims=False)["statistic"].to_pylist() == list(
        HEADLINE
    )
