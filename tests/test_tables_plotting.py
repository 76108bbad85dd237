"""Per-run RQ tables on a hand-worked tiny run, and every figure on 2-, 10- and 100-class data.

The tiny run (C = 3 classes, H = 4 features, plain linear classifier):

    W = [[2, 1, 0, 0],        bias = [0, -1, 0]
         [0, 0, 3, 1],
         [0.5, 0, 0, 2]]

train (fe -> logits, label, pred):
    t0 [2, 1, 0, 0.5]    -> (5, -0.5, 2)     y0 p0
    t1 [1, 2, 0, 1.5]    -> (4, 0.5, 3.5)    y0 p0
    t2 [1, 0, 1.5, 0]    -> (2, 3.5, 0.5)    y0 p1   (the only training error)
    t3 [3, 0, 0, 0.5]    -> (6, -0.5, 2.5)   y0 p0
    t4 [0, 0.5, 2, 0]    -> (0.5, 5, 0)      y1 p1
    t5 [0, 1, 1.2, 1.5]  -> (1, 4.1, 3)      y1 p1
    t6 [0.5, 0, 0, 2]    -> (1, 1, 4.25)     y2 p2
test:
    s0 [2, 0, 0, 0] y0 p0 (TP)   s1 [0, 0, 1, 0] y1 p1 (TP)   s2 [0, 0, 0, 1] y2 p2 (TP)
    s3 [1, 0, 0, 0] y2 p0 (FP)   s4 [0, 0, 1, 1] y2 p1 (FP)   s5 [0, 0, 0, 3] y2 p2 (TP)

Training class sizes (4, 2, 1): majority = class 0, minority = class 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fragility.analysis.inputs import RunInputs
from fragility.analysis.tables import rq_tables
from fragility.catalog import claims, outputs
from fragility.catalog.outputs import RUN_FIGURES, RUN_TABLES
from fragility.errors import ConfigError, FragilityError
from fragility.io import write_parquet, write_table
from fragility.plotting.run_figures import plot_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

W = np.array([[2, 1, 0, 0], [0, 0, 3, 1], [0.5, 0, 0, 2]], dtype=np.float32)
BIAS = np.array([0, -1, 0], dtype=np.float32)
TRAIN_FE = np.array(
    [
        [2, 1, 0, 0.5],
        [1, 2, 0, 1.5],
        [1, 0, 1.5, 0],
        [3, 0, 0, 0.5],
        [0, 0.5, 2, 0],
        [0, 1, 1.2, 1.5],
        [0.5, 0, 0, 2],
    ],
    dtype=np.float32,
)
TRAIN_Y = [0, 0, 0, 0, 1, 1, 2]
TEST_FE = np.array(
    [[2, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 3]],
    dtype=np.float32,
)
TEST_Y = [0, 1, 2, 2, 2, 2]


# ---------------------------------------------------------------------------- run fixtures


def _fixed(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def _embeddings(fe, labels, W, bias, normed=False) -> pa.Table:
    fe = np.asarray(fe, dtype=np.float32)
    x = fe / np.linalg.norm(fe, axis=1, keepdims=True).clip(1e-12) if normed else fe
    logits = (x.astype(np.float64) @ W.T.astype(np.float64) + bias).astype(np.float32)
    return pa.table(
        {
            "index": pa.array(np.arange(len(fe), dtype=np.int64)),
            "label": pa.array(np.asarray(labels, dtype=np.int64)),
            "pred": pa.array(logits.argmax(1).astype(np.int64)),
            "fe": _fixed(fe),
            "logits": _fixed(logits),
        }
    )


def write_run(
    run_dir,
    W,
    bias,
    train,
    test,
    names,
    counts,
    history_rows=None,
    normed=False,
    kept_epoch=None,
    pool=True,
):
    """A run directory laid out as the catalog says; ``train``/``test`` are (fe, labels)."""
    meta = {"dataset": "synthetic", "normed": str(normed).lower()}
    emb = run_dir / "embeddings"
    write_parquet(_embeddings(*train, W, bias, normed), emb / "train.parquet", meta)
    write_parquet(_embeddings(*test, W, bias, normed), emb / "test.parquet", meta)
    if pool:
        write_parquet(_embeddings(*train, W, bias, normed), emb / "pool.parquet", meta)
    clf = pa.table(
        {
            "class": pa.array(np.arange(len(W), dtype=np.int64)),
            "weight": _fixed(W),
            "bias": pa.array(np.asarray(bias, dtype=np.float32)),
        }
    )
    write_parquet(clf, emb / "classifier.parquet", meta)
    if history_rows is not None:
        write_parquet(pa.Table.from_pylist(history_rows), run_dir / "history.parquet", meta)
    metrics = {"classes": list(names), "train_class_counts": [int(c) for c in counts]}
    if kept_epoch is not None:
        metrics["kept_epoch"] = kept_epoch
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


TINY_HISTORY = [
    {
        "epoch": 1,
        "lr": 0.1,
        "loss": 1.0,
        "train_bac": 0.5,
        "test_bac": 0.4,
        "train_acc": [0.5, 0.25, 0.75],
        "test_acc": [0.5, 0.5, 0.2],
        "seconds": 1.0,
    },
    {
        "epoch": 2,
        "lr": 0.1,
        "loss": 0.5,
        "train_bac": 0.9,
        "test_bac": 0.8,
        "train_acc": [0.75, 1.0, 1.0],
        "test_acc": [1.0, 1.0, 0.5],
        "seconds": 2.0,
    },
]


@pytest.fixture()
def tiny(tmp_path):
    run = write_run(
        tmp_path / "run",
        W,
        BIAS,
        (TRAIN_FE, TRAIN_Y),
        (TEST_FE, TEST_Y),
        ["zero", "one", "two"],
        [4, 2, 1],
        TINY_HISTORY,
        kept_epoch=2,
    )
    return RunInputs.load(run)


def _tables(inputs, rq):
    return rq_tables(rq, inputs, ks=(1, 2), k_fe=2)


def _row(table: pa.Table) -> dict:
    assert table.num_rows == 1
    return table.to_pylist()[0]


def _col(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


# ------------------------------------------------------------------------------- loading


def test_run_inputs_load(tiny, tmp_path):
    assert tiny.class_names == ["zero", "one", "two"]
    assert tiny.counts.tolist() == [4, 2, 1]
    assert (tiny.majority, tiny.minority) == (0, 2)
    assert tiny.role_names() == ["majority", "other", "minority"]
    assert tiny.train["pred"].tolist() == [0, 0, 1, 0, 1, 1, 2]
    assert tiny.test["pred"].tolist() == [0, 1, 2, 0, 1, 2]
    assert tiny.pool is not None and len(tiny.pool["label"]) == 7
    assert tiny.W.shape == (3, 4) and tiny.normed is False
    assert tiny.history is not None and tiny.history.num_rows == 2
    assert tiny.kept_epoch == 2
    assert RunInputs.load(tmp_path / "run", pool=False).pool is None


def test_run_inputs_missing_files(tmp_path):
    with pytest.raises(FragilityError, match="train.parquet"):
        RunInputs.load(tmp_path / "nothing")
    run = write_run(
        tmp_path / "r",
        W,
        BIAS,
        (TRAIN_FE, TRAIN_Y),
        (TEST_FE, TEST_Y),
        "abc",
        [4, 2, 1],
        pool=False,
    )
    assert RunInputs.load(run).pool is None
    assert RunInputs.load(run).history is None
    with pytest.raises(FragilityError, match="pool.parquet"):
        RunInputs.load(run, pool=True)
    (run / "metrics.json").write_text(
        json.dumps({"classes": ["a", "b"], "train_class_counts": [1, 2]})
    )
    with pytest.raises(FragilityError, match="3 classes"):
        RunInputs.load(run)
    (run / "metrics.json").unlink()  # fall back to indices and train label counts
    inputs = RunInputs.load(run)
    assert inputs.class_names == ["0", "1", "2"] and inputs.counts.tolist() == [4, 2, 1]


def test_every_rq_returns_its_declared_tables(tiny):
    for rq, names in ((rq, spec.tables) for rq, spec in RUN_TABLES.items()):
        tables = _tables(tiny, rq)
        assert tuple(tables) == names
        for name, table in tables.items():
            assert isinstance(table, pa.Table) and table.num_rows > 0, (rq, name)
            assert name == name.lower() and " " not in name
    with pytest.raises(ConfigError, match="rq2"):
        rq_tables("rq9", tiny)
    with pytest.raises(ConfigError, match=r"1\.\.4"):
        rq_tables("rq3", tiny)  # default K = 5, 7 exceed H = 4


# ---------------------------------------------------------------------------------- RQ2


def test_rq2_tables(tiny):
    t = _tables(tiny, "rq2")
    acc = t["per_class_accuracy"]
    assert _col(acc, "class") == [0, 1, 2]
    assert _col(acc, "class_name") == ["zero", "one", "two"]
    assert _col(acc, "n_train") == [4, 2, 1]
    assert _col(acc, "n_test") == [1, 1, 4]
    assert _col(acc, "train_acc") == [0.75, 1.0, 1.0]  # t2 of class 0 is predicted 1
    assert _col(acc, "test_acc") == [1.0, 1.0, 0.5]  # s2, s5 right; s3, s4 wrong
    assert _row(t["table2"]) == {
        "majority_class": 0,
        "majority_name": "zero",
        "minority_class": 2,
        "minority_name": "two",
        "n_train_majority": 4,
        "n_train_minority": 1,
        "train_acc_majority": 0.75,
        "test_acc_majority": 1.0,
        "train_acc_minority": 1.0,
        "test_acc_minority": 0.5,
        # the paper's premise: every class's train accuracy >= 0.90; class 0 has 0.75
        "lowest_train_acc": 0.75,
        "lowest_train_acc_class": 0,
        "lowest_train_acc_name": "zero",
        "premise_threshold": 0.9,
        "premise_met": False,
    }
    assert _col(acc, "class_group") == ["majority", "middle", "minority"]  # 40 % of 3: one
    ep = t["accuracy_over_epochs"]
    assert ep.num_rows == 2 * 3 * 2  # epochs x classes x {train, test}; no val column
    rows = [r for r in ep.to_pylist() if r["class"] == 2 and r["subset"] == "test"]
    assert [(r["epoch"], r["accuracy"], r["kept"]) for r in rows] == [
        (1, 0.2, False),
        (2, 0.5, True),
    ]
    assert set(_col(ep, "subset")) == {"train", "test"}


def test_accuracy_over_epochs_without_history(tmp_path):
    run = write_run(
        tmp_path / "r", W, BIAS, (TRAIN_FE, TRAIN_Y), (TEST_FE, TEST_Y), "abc", [4, 2, 1]
    )
    ep = rq_tables("rq2", RunInputs.load(run), ks=(1,), k_fe=2)["accuracy_over_epochs"]
    assert ep.num_rows == 0 and "accuracy" in ep.column_names


# ---------------------------------------------------------------------------------- RQ3


def test_rq3_topk_coverage(tiny):
    t = _tables(tiny, "rq3")
    rows = t["topk_coverage"].to_pylist()
    with_bias = {(r["class"], r["k"]): r["coverage_ratio_with_bias"] for r in rows}
    # with the bias: predicted 0: t0 CE [4,1] vs LG_A 2 covered at K=1; t1 CE [2,2] vs 3.5
    # only at K=2; t3 CE [6] vs 2.5 at K=1.  predicted 1 (bias -1): t2 4.5-1 > 2 at K=1;
    # t4 6-1 > 0.5; t5 3.6-1 = 2.6 < 3 at K=1, 3.6+1.5-1 = 4.1 > 3 at K=2.  predicted 2: t6.
    assert with_bias == {
        (0, 1): pytest.approx(2 / 3),
        (0, 2): 1.0,
        (1, 1): pytest.approx(2 / 3),
        (1, 2): 1.0,
        (2, 1): 1.0,
        (2, 2): 1.0,
    }
    # bias-free (the paper's logits, sum of ce): class 0 unchanged (its bias is 0 and A's
    # bias-free logit 2 / 3.5 / 2.5 is as before); t5 now 3.6 > 3 at K=1, t2 4.5 > 2, t4 6 > .5
    bias_free = {(r["class"], r["k"]): r["coverage_ratio"] for r in rows}
    assert bias_free == {**with_bias, (1, 1): 1.0}
    assert _col(t["topk_coverage"], "n_pred") == [3, 3, 3, 3, 1, 1]
    # all instances bias-free: K=1 covers 6/7 < 90 %, K=2 covers 7/7; with the bias 5/7, 7/7
    assert _row(t["smallest_k"]) == {
        "n_features": 4,
        "n_instances": 7,
        "n_changed_by_bias": 0,  # no instance changes class without the bias
        "few_features_bound": pytest.approx(0.8),
        **{f"smallest_k_{p}{v}": 2 for p in (94, 90) for v in ("", "_with_bias")},
        **{f"coverage_k_{p}{v}": 1.0 for p in (94, 90) for v in ("", "_with_bias")},
    }
    # the groups of (4, 2, 1) images are one class each: 0 and 2
    groups = t["group_coverage"].to_pylist()
    assert [(r["k"], r["majority_group"], r["minority_group"]) for r in groups] == [
        (1, "0", "2"),
        (2, "0", "2"),
    ]
    assert [r["coverage_majority_group"] for r in groups] == [pytest.approx(2 / 3), 1.0]
    assert [r["coverage_minority_group"] for r in groups] == [1.0, 1.0]


# ---------------------------------------------------------------------------------- RQ4


def test_rq4_tables(tiny):
    t = _tables(tiny, "rq4")
    # class-mean own CE (true class): class 0 mean of [4,1,0,0] [2,2,0,0] [2,0,0,0] [6,0,0,0]
    # = [3.5, 0.75, 0, 0]; class 1 mean of [0,0,6,0] [0,0,3.6,1.5] = [0, 0, 4.8, 0.75];
    # class 2 [0.25, 0, 0, 4]
    top = t["class_mean_ce_top10"]
    assert top.num_rows == 3 * 4  # ten largest, but H = 4
    first = [r for r in top.to_pylist() if r["rank"] == 1]
    assert [(r["class"], r["feature"]) for r in first] == [(0, 0), (1, 2), (2, 3)]
    assert [r["mean_ce"] for r in first] == pytest.approx([3.5, 4.8, 4.0])
    t3 = _row(t["table3"])
    assert t3["majority_largest_mean_ce"] == pytest.approx(3.5)
    assert t3["minority_largest_mean_ce"] == pytest.approx(4.0)
    assert t3["others_mean_largest_mean_ce"] == pytest.approx(4.4)  # (4.8 + 4) / 2
    assert t3["ratio_others_to_majority"] == pytest.approx(4.4 / 3.5)
    # logit shares of the top-2 ce, of the paper's bias-free logit: class 0 logits 5, 4, 2, 6
    # (bias 0) -> largest shares .8 .5 1 1; class 1 bias-free logits 6, 5.1 -> 6/6, 3.6/5.1;
    # class 2: 4/4.25. With class 1's bias of -1 its logits are 5 and 4.1: 6/5, 3.6/4.1
    rank1 = [r for r in t["topk_logit_share"].to_pylist() if r["rank"] == 1]
    free = (1.0 + 3.6 / 5.1) / 2
    biased = (1.2 + 3.6 / 4.1) / 2
    assert {r["class"]: r["share"] for r in rank1} == pytest.approx(
        {0: 0.825, 1: free, 2: 4 / 4.25}
    )
    assert rank1[1]["share_with_bias"] == pytest.approx(biased)
    t4 = _row(t["table4"])
    others, others_with_bias = (free + 4 / 4.25) / 2, (biased + 4 / 4.25) / 2
    assert t4["k"] == 2
    assert t4["majority_largest_share"] == pytest.approx(0.825)
    assert t4["minority_largest_share"] == pytest.approx(4 / 4.25)
    assert t4["others_mean_largest_share"] == pytest.approx(others)
    assert t4["ratio_others_to_majority"] == pytest.approx(others / 0.825)
    assert t4["ratio_others_to_majority_with_bias"] == pytest.approx(others_with_bias / 0.825)


# ---------------------------------------------------------------------------------- RQ5


def test_rq5_tables(tiny):
    t = _tables(tiny, "rq5")
    ws = _row(t["weight_sums"])
    assert ws["majority_class"] == 0 and ws["minority_class"] == 2 and ws["n_top"] == 4
    assert ws["majority_top_abs_w_sum"] == pytest.approx(3.0)  # |2| + |1| + 0 + 0
    assert ws["minority_top_abs_w_sum"] == pytest.approx(2.5)  # 0.5 + 2
    assert ws["largest_abs_w"] == pytest.approx(3.0)  # W[1, 2]
    assert ws["largest_mean_ce"] == pytest.approx(4.8)  # class 1, feature 2
    assert ws["ratio_ce_to_w"] == pytest.approx(1.6)
    top = [r for r in t["top_weights"].to_pylist() if r["class"] == 1]
    assert [(r["feature"], r["abs_weight"]) for r in top[:2]] == [(2, 3.0), (3, 1.0)]


# ---------------------------------------------------------------------------------- RQ6


def test_rq6_tables(tiny):
    t = _tables(tiny, "rq6")
    # instance top-2 fe (ties to the lower index): t0 {0,1} t1 {1,3} t3 {0,3} (predicted 0);
    # t2 {2,0} t4 {2,1} t5 {3,2} (predicted 1); t6 {3,0} (predicted 2).
    # Predicted 0: counts 0:2 1:2 3:2 -> members 0, 1, 3; t1 holds neither 0 -> needs 2.
    # Predicted 1: feature 2 is in every top-2 set -> 1.  Predicted 2: 1.
    cover = t["members_to_cover"]
    assert _col(cover, "members_needed") == [2, 1, 1]
    assert _col(cover, "n_pred") == [3, 3, 1]
    assert _col(cover, "role") == ["majority", "other", "minority"]
    mem = [r for r in t["class_topk_members"].to_pylist() if r["class"] == 1]
    assert [r["feature"] for r in mem] == [2, 0, 1, 3]
    assert [r["share"] for r in mem] == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3])
    # Fig 8 and 9 in one row: the most frequent member's share is 2/3 in class 0 (the
    # majority group), 1 in class 2 (the minority group); members needed 2 vs 1
    div = _row(t["diversity"])
    assert (div["majority_group"], div["minority_group"], div["k"]) == ("0", "2", 2)
    assert div["top_member_share_majority_group"] == pytest.approx(2 / 3)
    assert div["top_member_share_minority_group"] == 1.0
    assert (div["members_needed_majority"], div["members_needed_minority"]) == (2, 1)
    fe = [r for r in t["class_mean_fe_top10"].to_pylist() if r["class"] == 0]
    # class 0 mean fe = [1.75, 0.75, 0.375, 0.625]
    assert [(r["feature"], r["mean_fe"]) for r in fe] == [
        (0, 1.75),
        (1, 0.75),
        (3, 0.625),
        (2, 0.375),
    ]


# ---------------------------------------------------------------------------------- RQ7


def test_rq7_tables(tiny):
    t = _tables(tiny, "rq7")
    gap = _row(t["generalization_gap"])
    # mu_train = [1.75, .75, .375, .625], [0, .75, 1.6, .75], [.5, 0, 0, 2]
    # mu_TP    = [2, 0, 0, 0],            [0, 0, 1, 0],      [0, 0, 0, 2]
    # mu_FP    = [1, 0, 0, 0],            [0, 0, 1, 1],      (none)
    # squared gaps TP: 1.15625 + 1.485 + 0.25; FP: 1.65625 + 0.985 (class 2 left out)
    assert gap["frobenius_train_vs_tp"] == pytest.approx(math.sqrt(2.89125))
    assert gap["frobenius_train_vs_fp"] == pytest.approx(math.sqrt(2.64125))
    assert (gap["n_classes_tp"], gap["n_classes_fp"]) == (3, 2)
    assert (gap["n_top"], gap["k"]) == (4, 2)
    # the size-matched control: classes 0 and 1 have both TP and FP, one FP each, so each
    # draw takes their one TP: FB(TP) over rows 0, 1 = sqrt(1.15625 + 1.485), and FB(FP) there
    # is the full FB(FP) (class 2 has no FP)
    assert gap["frobenius_train_vs_tp_matched"] == pytest.approx(math.sqrt(2.64125))
    assert gap["frobenius_train_vs_fp_matched"] == pytest.approx(math.sqrt(2.64125))
    assert (gap["n_classes_matched"], gap["n_draws"]) == (2, claims.N_MATCHED_DRAWS)
    # FE identities (top-2 frequency): train {0,1,3,2} {2,1,3} {3,0}; TP {0,1} {2,0} {3,0};
    # FP {0,1} {2,3}. Over the classes with TP and FP (0 and 1), each divided by the smaller
    # set: TP 2/2 and 1/2, FP 2/2 and 2/2; with one FP a class, the matched TP are all of them
    assert gap["overlap_fe_tp"] == pytest.approx(0.75)
    assert gap["overlap_fe_tp_matched"] == pytest.approx(0.75)
    assert gap["overlap_fe_fp"] == pytest.approx(1.0)
    # CE identities: train {0,1} {2,0,3} {3,0}; TP {0,1} {2,0} {3,0}; FP {0,1} {2,3}: all 2/2
    assert gap["overlap_ce_tp"] == pytest.approx(1.0)
    assert gap["overlap_ce_fp"] == pytest.approx(1.0)
    # Fig 10's direction reads the minority group (class 2), which has no false positive
    assert gap["fe_top_mean_fp_minority_group"] is None and gap["n_classes_direction"] == 0
    ov = t["top_feature_overlap"]
    assert _col(ov, "n_tp") == [1, 1, 2] and _col(ov, "n_fp") == [1, 1, 0]
    assert _col(ov, "overlap_fe_tp") == [2, 1, 2]
    assert _col(ov, "overlap_fe_fp") == [2, 2, None]
    means = t["fe_means_top10"]
    assert means.num_rows == 3 * 3 * 4
    fp2 = [r for r in means.to_pylist() if r["class"] == 2 and r["group"] == "test_fp"]
    assert all(r["mean_fe"] is None and r["n_group"] == 0 for r in fp2)
    tp0 = [r for r in means.to_pylist() if r["class"] == 0 and r["group"] == "test_tp"]
    assert [(r["feature"], r["mean_fe"]) for r in tp0] == [(0, 2.0), (1, 0.0), (3, 0.0), (2, 0.0)]


def test_write_table(tiny, tmp_path):
    table = _tables(tiny, "rq7")["generalization_gap"]
    write_table(table, tmp_path / "out" / "gap.csv")
    write_table(table, tmp_path / "out" / "gap.parquet")
    assert pacsv.read_csv(tmp_path / "out" / "gap.csv").num_rows == 1
    assert pq.read_table(tmp_path / "out" / "gap.parquet").equals(table)
    with pytest.raises(ConfigError):
        write_table(table, tmp_path / "gap.txt")


# ------------------------------------------------------------------------------- figures


def synthetic_run(run_dir, n_classes: int, seed: int = 0, width: int = 16, normed=False):
    """An exp-imbalanced run whose classes each own a few strong features."""
    rng = np.random.default_rng(seed)
    n_max = 60 if n_classes <= 10 else 12
    counts = [max(2, int(n_max * 20 ** (-i / (n_classes - 1)))) for i in range(n_classes)]
    protos = np.zeros((n_classes, width))
    for c in range(n_classes):
        protos[c, rng.choice(width, 3, replace=False)] = rng.uniform(1.5, 3.0, 3)

    def draw(sizes):
        labels = np.repeat(np.arange(n_classes), sizes)
        fe = np.maximum(protos[labels] + rng.normal(0, 0.7, (len(labels), width)), 0)
        return fe.astype(np.float32), labels

    W = (protos / 2 + rng.normal(0, 0.1, protos.shape)).astype(np.float32)
    bias = rng.normal(0, 0.1, n_classes).astype(np.float32)
    epochs = 6
    history = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "lr": 0.1, "loss": 1.0 / e, "seconds": float(e)}
        for subset in ("train", "test", "val"):
            acc = np.clip(rng.uniform(0.3, 1.0, n_classes) * e / epochs + 0.1, 0, 1)
            row[f"{subset}_acc"] = acc.tolist()
            row[f"{subset}_bac"] = float(acc.mean())
        history.append(row)
    names = [f"class{c}" for c in range(n_classes)] if n_classes != 10 else [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    return write_run(
        run_dir,
        W,
        bias,
        draw(counts),
        draw([10 if n_classes <= 10 else 3] * n_classes),
        names,
        counts,
        history,
        normed=normed,
        kept_epoch=4,
    )


def all_tables(run_dir) -> dict[str, pa.Table]:
    inputs = RunInputs.load(run_dir)
    out: dict[str, pa.Table] = {}
    for rq in RUN_TABLES:
        out.update(rq_tables(rq, inputs))
    return out


def test_figure_registry():
    assert {spec.rq for spec in RUN_FIGURES.values()} == set(RUN_TABLES)
    for name, spec in RUN_FIGURES.items():
        assert name == name.lower() and " " not in name
        assert set(spec.tables) <= set(RUN_TABLES[spec.rq].tables), name
        assert 20 < len(spec.caption) < 500 and spec.caption.endswith(".")
    assert {name for name, spec in RUN_FIGURES.items() if spec.rq == "rq2"} == {
        "fig2_class_accuracy",
        "accuracy_over_epochs",
        "training_dynamics",
    }
    with pytest.raises(ConfigError, match="fig2_class_accuracy"):
        plot_figure("fig99", {}, "x.png")
    with pytest.raises(ConfigError, match="per_class_accuracy"):
        plot_figure("fig2_class_accuracy", {}, "x.png")


@pytest.mark.parametrize(("n_classes", "normed"), [(2, False), (10, True), (100, False)])
def test_every_figure_renders(tmp_path, n_classes, normed):
    tables = all_tables(synthetic_run(tmp_path / "run", n_classes, normed=normed))
    for name in RUN_FIGURES:
        out = tmp_path / "figs" / f"{name}.png"
        plot_figure(name, tables, out, title=f"synthetic, {n_classes} classes")
        data = out.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, name
    assert not [p for p in (tmp_path / "figs").iterdir() if p.suffix != ".png"]  # no temp left
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # every figure closed


def test_figures_without_history_or_false_positives(tmp_path):
    run = write_run(
        tmp_path / "r", W, BIAS, (TRAIN_FE, TRAIN_Y), (TEST_FE, TEST_Y), "abc", [4, 2, 1]
    )
    inputs = RunInputs.load(run)
    tables = {}
    for rq in RUN_TABLES:
        tables.update(rq_tables(rq, inputs, ks=(1, 2), k_fe=2))
    for name in RUN_FIGURES:
        out = tmp_path / f"{name}.png"
        plot_figure(name, tables, out)
        assert out.read_bytes().startswith(PNG_MAGIC)


def test_every_catalog_figure_reads_declared_tables():
    """A figure reads only tables its research question (per-run) or the cross-run step
    (cross-run) writes."""
    for name, spec in outputs.RUN_FIGURES.items():
        assert set(spec.tables) <= set(outputs.RUN_TABLES[spec.rq].tables), name
    for name, spec in outputs.CROSS_RUN_FIGURES.items():
        assert set(spec.tables) <= set(outputs.CROSS_RUN_TABLES), name
