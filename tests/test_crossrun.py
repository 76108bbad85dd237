"""Cross-run tables and the paper's claims, on hand-built per-run files with known answers."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fragility.analysis.claims import CLAIMS, claims_summary, measure_claims
from fragility.analysis.crossrun import RunRef, balanced_partner, cross_run_table, over_seeds
from fragility.errors import FragilityError


def _run(tmp_path, imbalance, loss, seed, bac, retrained=None) -> RunRef:
    run_dir = tmp_path / imbalance / loss / f"seed{seed}"
    (run_dir / "rq1").mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"bac": bac}))
    if retrained is not None:
        pq.write_table(pa.table({"bac_retrained": [retrained]}), run_dir / "rq1/retrained.parquet")
    return RunRef("toy", imbalance, loss, seed, str(run_dir))


def test_over_seeds_gives_mean_and_sample_std_and_keeps_identities():
    by_seed = pa.table(
        {
            "dataset": ["d", "d", "d"],
            "imbalance": ["exp10"] * 3,
            "loss": ["ce", "ce", "focal"],
            "seed": [0, 1, 0],
            "majority_class": [0, 0, 0],
            "majority_name": ["cat", "cat", "cat"],
            "bac": [0.5, 0.7, 0.9],
            "count": [3, 5, 4],
            "ok": [True, False, True],
        }
    )
    out = over_seeds(by_seed).to_pylist()
    ce, focal = out
    assert ce["n_seeds"] == 2 and focal["n_seeds"] == 1
    assert ce["bac_mean"] == pytest.approx(0.6)
    assert ce["bac_std"] == pytest.approx(0.1414213562)  # sqrt(((.1)^2 + (.1)^2) / 1)
    assert focal["bac_std"] is None  # one seed: no spread to report
    assert ce["count_mean"] == 4.0 and ce["count_std"] == pytest.approx(1.4142135623)
    assert ce["majority_class"] == 0 and ce["majority_name"] == "cat"
    assert ce["ok"] is False and focal["ok"] is True  # booleans: true in every seed


def test_balanced_partner_prefers_the_same_loss_then_cross_entropy(tmp_path):
    bal_ce = _run(tmp_path, "balanced", "ce", 0, 0.9)
    bal_focal = _run(tmp_path, "balanced", "focal", 0, 0.8)
    imb_focal = _run(tmp_path, "exp100", "focal", 0, 0.5, 0.6)
    imb_ldam = _run(tmp_path, "exp100", "ldam", 0, 0.5, 0.6)
    imb_seed1 = _run(tmp_path, "exp100", "ce", 1, 0.5, 0.6)
    runs = [bal_ce, bal_focal, imb_focal, imb_ldam, imb_seed1]
    assert balanced_partner(imb_focal, runs) is bal_focal
    assert balanced_partner(imb_ldam, runs) is bal_ce
    assert balanced_partner(imb_seed1, runs) is None  # no balanced run with seed 1


def test_table1_over_two_seeds(tmp_path):
    runs = [
        _run(tmp_path, "balanced", "ce", 0, 0.90),
        _run(tmp_path, "balanced", "ce", 1, 0.94),
        _run(tmp_path, "exp100", "ce", 0, 0.60, 0.70),
        _run(tmp_path, "exp100", "ce", 1, 0.64, 0.96),  # retrained above balanced: claim fails
    ]
    summary, by_seed = cross_run_table("table1", runs)
    rows = by_seed.to_pylist()
    assert [(r["seed"], r["balanced"], r["imbalanced"], r["retrained"]) for r in rows] == [
        (0, 0.90, 0.60, 0.70),
        (1, 0.94, 0.64, 0.96),
    ]
    assert [r["reproduces"] for r in rows] == [True, False]
    (row,) = summary.to_pylist()
    assert row["imbalance"] == "exp100" and row["n_seeds"] == 2
    assert row["balanced_mean"] == pytest.approx(0.92)
    assert row["retrain_gain_mean"] == pytest.approx((0.10 + 0.32) / 2)
    assert row["reproduces"] is False


def test_table1_without_a_balanced_run_leaves_that_column_empty(tmp_path):
    runs = [_run(tmp_path, "exp100", "focal", 0, 0.6, 0.7)]
    _, by_seed = cross_run_table("table1", runs)
    (row,) = by_seed.to_pylist()
    assert row["balanced"] is None and row["balanced_loss"] is None
    assert row["reproduces"] is True  # only imbalanced < retrained can be checked


def test_missing_per_run_table_is_one_clear_error(tmp_path):
    runs = [_run(tmp_path, "exp100", "ce", 0, 0.6)]  # no rq1/retrained.parquet
    with pytest.raises(FragilityError, match="retrained.parquet is missing"):
        cross_run_table("table1", runs)
    with pytest.raises(FragilityError, match="unknown cross-run table"):
        cross_run_table("table9", runs)


def _keys(seed, imbalance="exp100"):
    return {"dataset": "toy", "imbalance": imbalance, "loss": "ce", "seed": seed}


def _by_seed_tables():
    """Two seeds of one imbalanced group (plus a balanced run the claims must ignore)."""
    return {
        "table1": pa.Table.from_pylist(
            [
                dict(_keys(0), imbalanced=0.6, retrained=0.7, balanced=0.9),
                dict(_keys(1), imbalanced=0.6, retrained=0.95, balanced=0.9),
            ]
        ),
        "table2": pa.Table.from_pylist(
            [
                dict(
                    _keys(s),
                    train_acc_minority=1.0,
                    test_acc_minority=0.4,
                    train_acc_majority=1.0,
                    test_acc_majority=0.95,
                )
                for s in (0, 1)
            ]
            + [
                dict(
                    _keys(0, "balanced"),
                    train_acc_minority=1.0,
                    test_acc_minority=1.0,
                    train_acc_majority=1.0,
                    test_acc_majority=1.0,
                )
            ]
        ),  # fmt: skip
        "rq3_smallest_k": pa.Table.from_pylist(
            [
                dict(_keys(0), threshold=0.94, smallest_k=5, coverage_at_smallest_k=0.95),
                dict(_keys(1), threshold=0.94, smallest_k=None, coverage_at_smallest_k=None),
            ]
        ),
        "rq3_coverage": pa.Table.from_pylist(
            [
                dict(_keys(s), role=role, k=k, coverage_ratio=ratio)
                for s in (0, 1)
                for role, k, ratio in [
                    ("majority", 2, 0.5),
                    ("minority", 2, None if s else 0.8),  # seed 1: minority never predicted
                    ("majority", 3, 0.9),
                    ("minority", 3, 0.1),  # K = 3 must be ignored: the smallest K is 2
                ]
            ]
        ),
        "table3": pa.Table.from_pylist(
            [
                dict(_keys(s), majority_largest_mean_ce=2.0, minority_largest_mean_ce=3.0)
                for s in (0, 1)
            ]
        ),
        "table4": pa.Table.from_pylist(
            [dict(_keys(s), majority_largest_share=0.5, minority_largest_share=0.4) for s in (0, 1)]
        ),
        "rq7_generalization": pa.Table.from_pylist(
            [dict(_keys(s), frobenius_train_vs_tp=2.0, frobenius_train_vs_fp=12.0) for s in (0, 1)]
        ),
    }


def test_claims_hold_fail_or_cannot_be_measured_per_seed():
    claims = {row["claim"]: row for row in measure_claims(_by_seed_tables()).to_pylist()}
    assert set(claims) == {c.name for c in CLAIMS}
    assert all(r["n_seeds"] == 2 and r["imbalance"] == "exp100" for r in claims.values())

    bac = claims["bac_order"]  # seed 1: retrained 0.95 > balanced 0.9
    assert (bac["holds"], bac["n_holding"]) == (False, 1)
    assert bac["value_mean"] == pytest.approx((0.1 + 0.35) / 2)

    gap = claims["minority_overfits"]  # gap 0.6 >= 0.1 and above the majority's 0.05
    assert (gap["holds"], gap["n_holding"]) == (True, 2)
    assert gap["value_mean"] == pytest.approx(0.6) and gap["value_std"] == pytest.approx(0.0)

    few = claims["few_features_decide"]  # seed 1: no K reaches the threshold -> fails
    assert (few["holds"], few["n_holding"], few["value_mean"]) == (False, 1, 5.0)

    k = claims["minority_smaller_k"]  # seed 0: 0.8 >= 0.5 at K = 2; seed 1 not measurable
    assert (k["holds"], k["n_holding"]) == (True, 1)
    assert k["value_mean"] == pytest.approx(0.3) and k["value_std"] is None
    assert "never predicted" in k["detail"]

    assert claims["majority_ce_smaller"]["holds"] is True
    assert claims["majority_ce_smaller"]["value_mean"] == pytest.approx(1.0)
    assert claims["majority_share_smaller"]["holds"] is False
    assert claims["tp_closer_than_fp"]["holds"] is True
    assert claims["tp_closer_than_fp"]["value_mean"] == pytest.approx(10.0)


def test_a_claim_never_measurable_is_not_a_pass():
    tables = _by_seed_tables()
    tables["table1"] = pa.Table.from_pylist(
        [dict(_keys(0), imbalanced=0.6, retrained=0.7, balanced=None)]
    )
    claims = {row["claim"]: row for row in measure_claims(tables).to_pylist()}
    assert claims["bac_order"]["holds"] is None
    text = claims_summary(measure_claims(tables))
    assert "[  n/a] imbalanced < retrained" in text
    assert "toy/exp100/ce (2 seeds)" in text


def test_cross_run_figures_draw_from_summary_tables(tmp_path):
    from fragility.plotting import CROSS_RUN_FIGURES, plot_cross_run

    runs = [
        _run(tmp_path, "balanced", "ce", 0, 0.90),
        _run(tmp_path, "exp100", "ce", 0, 0.60, 0.70),
        _run(tmp_path, "exp100", "ce", 1, 0.64, 0.72),
    ]
    table1, _ = cross_run_table("table1", runs)
    members = over_seeds(
        pa.Table.from_pylist(
            [
                dict(_keys(s), role=role, k=7, members_needed=n)
                for s in (0, 1)
                for role, n in (("majority", 9 + s), ("minority", 2))
            ]
        ),
        ("dataset", "imbalance", "loss", "role"),
    )
    tables = {"table1_bac": table1, "fig9_members_to_cover": members}
    assert set(tables) == set(CROSS_RUN_FIGURES)
    for name, table in tables.items():
        out = tmp_path / f"{name}.png"
        plot_cross_run(name, table, out)
        assert out.read_bytes()[:4] == b"\x89PNG"


def _metrics_file(path, bac, per_class, seconds, counts=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"bac": bac, "macro_f1": bac - 0.1, "gmean": bac - 0.2, "per_class_accuracy": per_class,
            "wall_seconds": seconds}  # fmt: skip
    if counts is not None:
        data["train_class_counts"] = counts
    path.write_text(json.dumps(data))


def test_remedies_table_compares_every_method_with_the_untreated_model(tmp_path):
    from fragility.analysis.crossrun import remedies_table

    runs = []
    for loss, bac, seconds in (("ce", 0.5, 100.0), ("focal", 0.6, 120.0)):
        run_dir = tmp_path / "toy/exp100" / loss / "seed0"
        _metrics_file(run_dir / "metrics.json", bac, [0.9, 0.5, 0.1], seconds, [100, 30, 10])
        runs.append(RunRef("toy", "exp100", loss, 0, str(run_dir)))
    base = runs[0].run_dir
    _metrics_file(tmp_path / base / "remedies/eos/metrics.json", 0.7, [0.8, 0.6, 0.7], 2.0)
    summary, by_seed = remedies_table(runs, ["toy/exp100/ce/seed0"], {"eos": "eos"})
    rows = {r["remedy"]: r for r in by_seed.to_pylist()}
    assert set(rows) == {"none", "eos", "focal"}
    assert rows["none"]["kind"] == "untreated" and rows["focal"]["kind"] == "loss-level"
    assert rows["eos"]["bac_gain"] == pytest.approx(0.2)
    assert rows["focal"]["bac_gain"] == pytest.approx(0.1)
    # class 0 has the most training images, class 2 the fewest
    assert (rows["eos"]["majority_acc"], rows["eos"]["minority_acc"]) == (0.8, 0.7)
    assert rows["eos"]["seconds"] == 2.0 and rows["eos"]["total_seconds"] == 102.0
    assert rows["focal"]["total_seconds"] == 120.0  # a loss-level remedy is its own training
    assert summary.num_rows == 3 and "bac_mean" in summary.column_names
    from fragility.plotting import plot_remedy_costs

    plot_remedy_costs(summary, tmp_path / "remedies.png")
    assert (tmp_path / "remedies.png").read_bytes()[:4] == b"\x89PNG"


def test_provenance_names_what_produced_each_run(tmp_path):
    from fragility.analysis.crossrun import provenance_table
    from fragility.provenance import environment

    run = _run(tmp_path, "exp100", "ce", 0, 0.6)
    metrics = json.loads((tmp_path / "exp100/ce/seed0/metrics.json").read_text())
    metrics.update(config_hash="abc", device="cpu", environment=environment())
    (tmp_path / "exp100/ce/seed0/metrics.json").write_text(json.dumps(metrics))
    (row,) = provenance_table([run]).to_pylist()
    assert (row["config_hash"], row["device"], row["seed"]) == ("abc", "cpu", 0)
    assert row["code_version"]  # a git commit here, the package version elsewhere
    assert row["torch"] == environment()["torch"]
