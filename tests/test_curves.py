"""Fragility curves: curve tables and the smallest-R rule on constructed rows with answers
worked out by hand, the curve figures, and the workflow planning only what a curve needs."""

import math

import pyarrow as pa
import pytest
import yaml
from snakemake_cli import SMOKE, run_snakemake

from fragility.analysis.curves import (
    NEVER,
    balanced_row,
    claims_curve_table,
    curve_groups,
    curve_table,
    figure_sources,
    joined_curve_table,
    per_run_values,
    ratio_of,
    smallest_ratio_table,
    source_curve_table,
)
from fragility.catalog.outputs import CURVE_FIGURES
from fragility.errors import ConfigError
from fragility.plotting.curves import plot_curve_figure

T_975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom
T_975_DF1 = 12.706204736174707  # … 1 degree of freedom


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("balanced", ("balanced", 1.0)),
        ("exp100", ("exp", 100.0)),
        ("exp2.5", ("exp", 2.5)),
        ("step10", ("step", 10.0)),
    ],
)
def test_ratio_is_parsed_from_the_imbalance_spec(spec, expected):
    assert ratio_of(spec) == expected


def test_ratio_of_a_malformed_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="malformed imbalance"):
        ratio_of("exp")


def _table2(imbalance, seed, train_min, test_min, train_maj=1.0, test_maj=0.9, loss="ce"):
    return {
        "dataset": "toy",
        "imbalance": imbalance,
        "loss": loss,
        "seed": seed,
        "train_acc_minority": train_min,
        "test_acc_minority": test_min,
        "train_acc_majority": train_maj,
        "test_acc_majority": test_maj,
    }


def _by_seed_table2():
    return pa.Table.from_pylist(
        [
            # exp10, three seeds: minority gaps 0.2, 0.4, 0.6
            _table2("exp10", 0, 1.0, 0.8),
            _table2("exp10", 1, 1.0, 0.6),
            _table2("exp10", 2, 1.0, 0.4),
            # exp100, two seeds: gaps 0.5 and 0.7
            _table2("exp100", 0, 1.0, 0.5),
            _table2("exp100", 1, 0.9, 0.2),
            # step10, one seed whose minority gap cannot be measured
            _table2("step10", 0, None, 0.3),
            # the balanced run: R = 1, gap 0.1
            _table2("balanced", 0, 1.0, 0.9, test_maj=0.95),
        ]
    )


def test_curve_table_gives_hand_computed_means_and_t_intervals():
    curves = source_curve_table("table2", _by_seed_table2())
    rows = {r["imbalance"]: r for r in curves.to_pylist()}
    # sorted by dataset, loss, then balanced first, then family and R
    assert [(r["family"], r["ratio"]) for r in curves.to_pylist()] == [
        ("balanced", 1.0),
        ("exp", 10.0),
        ("exp", 100.0),
        ("step", 10.0),
    ]
    exp10 = rows["exp10"]
    assert exp10["n_seeds"] == 3 and exp10["minority_gap_n"] == 3
    # mean 0.4, sample sd 0.2, half width t(0.975, 2) * 0.2 / sqrt(3)
    half = T_975_DF2 * 0.2 / math.sqrt(3)
    assert exp10["minority_gap_mean"] == pytest.approx(0.4)
    assert exp10["minority_gap_ci_low"] == pytest.approx(0.4 - half)
    assert exp10["minority_gap_ci_high"] == pytest.approx(0.4 + half)
    # the majority gap is 0.1 in every seed: a zero-width interval
    assert exp10["majority_gap_mean"] == pytest.approx(0.1)
    assert exp10["majority_gap_ci_low"] == pytest.approx(0.1)
    exp100 = rows["exp100"]
    # gaps 0.5 and 0.7: mean 0.6, sd 0.1414, half width t(0.975, 1) * 0.1414 / sqrt(2)
    half = T_975_DF1 * math.sqrt(0.02) / math.sqrt(2)
    assert exp100["minority_gap_mean"] == pytest.approx(0.6)
    assert exp100["minority_gap_ci_high"] == pytest.approx(0.6 + half)
    step10 = rows["step10"]
    assert step10["n_seeds"] == 1 and step10["minority_gap_n"] == 0
    assert step10["minority_gap_mean"] is None and step10["minority_gap_ci_low"] is None
    assert step10["majority_gap_mean"] == pytest.approx(0.1)  # one seed: a mean, no interval
    assert step10["majority_gap_ci_low"] is None and step10["majority_gap_n"] == 1
    balanced = rows["balanced"]
    assert balanced["ratio"] == 1.0 and balanced["minority_gap_mean"] == pytest.approx(0.1)
    assert balanced["majority_gap_mean"] == pytest.approx(0.05)


def test_curve_table_column_layout():
    curves = curve_table(per_run_values("table2", _by_seed_table2()), ["minority_gap"])
    assert curves.column_names == [
        "dataset",
        "family",
        "ratio",
        "imbalance",
        "loss",
        "n_seeds",
        "minority_gap_mean",
        "minority_gap_ci_low",
        "minority_gap_ci_high",
        "minority_gap_n",
    ]


def test_table1_balanced_bac_becomes_the_r1_row_of_the_balanced_runs_loss():
    by_seed = pa.Table.from_pylist(
        [
            dict(dataset="toy", imbalance=imb, loss=loss, seed=s, balanced_loss="ce",
                 balanced=bal, imbalanced=imp, retrained=ret, retrain_gain=ret - imp)
            for imb, loss, s, bal, imp, ret in [
                ("exp10", "ce", 0, 0.90, 0.80, 0.85),
                ("exp100", "ce", 0, 0.90, 0.60, 0.75),
                ("exp10", "ce", 1, 0.94, 0.82, 0.86),
                ("exp10", "focal", 0, 0.90, 0.81, 0.84),  # partner: the ce balanced run
            ]
        ]
    )  # fmt: skip
    rows = {
        (r["imbalance"], r["loss"]): r for r in source_curve_table("table1", by_seed).to_pylist()
    }
    bal = rows[("balanced", "ce")]
    assert bal["n_seeds"] == 2  # seed 0 once, although two ce rows of seed 0 carry it
    assert bal["bac_mean"] == pytest.approx(0.92) and bal["bac_retrained_mean"] is None
    assert ("balanced", "focal") not in rows  # its balanced partner is the ce run
    assert rows[("exp100", "ce")]["retrain_gain_mean"] == pytest.approx(0.15)
    assert rows[("exp10", "ce")]["bac_balanced_mean"] == pytest.approx(0.92)


def test_one_balanced_run_serving_several_seeds_counts_once():
    by_seed = pa.Table.from_pylist(
        [
            dict(dataset="toy", imbalance="exp10", loss="ce", seed=s, balanced_loss="ce",
                 balanced_seed="0", balanced=0.9, imbalanced=0.8, retrained=0.85)
            for s in (0, 1, 2)
        ]
    )  # fmt: skip
    rows = {r["imbalance"]: r for r in source_curve_table("table1", by_seed).to_pylist()}
    assert rows["balanced"]["n_seeds"] == 1 and rows["balanced"]["bac_n"] == 1
    assert rows["balanced"]["bac_ci_low"] is None  # one balanced run: no interval
    assert rows["exp10"]["bac_balanced_n"] == 3  # the column as Table 1 holds it


def test_coverage_is_taken_at_the_smallest_k_per_group():
    by_seed = pa.Table.from_pylist(
        [
            dict(dataset="toy", imbalance="exp10", loss="ce", seed=0, k=k,
                 coverage_majority_group=maj, coverage_minority_group=mino)
            for k, maj, mino in [(2, 0.5, 0.2), (3, 0.9, 0.8)]
        ]
    )  # fmt: skip
    (row,) = per_run_values("rq3_coverage", by_seed)
    assert row["coverage_minority"] == 0.2 and row["coverage_majority"] == 0.5
    assert (row["family"], row["ratio"]) == ("exp", 10.0)


def test_remedy_gains_are_per_remedy_and_keyed_by_the_treated_loss():
    by_seed = pa.Table.from_pylist(
        [
            dict(dataset="toy", imbalance=imb, base_loss="ce", remedy=rem, kind=kind, seed=s, bac_gain=g)
            for imb, rem, kind, s, g in [
                ("exp10", "none", "untreated", 0, 0.0),
                ("exp10", "eos", "feature-space", 0, 0.05),
                ("exp10", "eos", "feature-space", 1, 0.07),
                ("exp10", "cb_reweight", "loss-level", 0, 0.02),
                ("exp100", "eos", "feature-space", 0, 0.10),
            ]
        ]
    )  # fmt: skip
    rows = {r["imbalance"]: r for r in source_curve_table("remedies", by_seed).to_pylist()}
    assert rows["exp10"]["loss"] == "ce"
    assert rows["exp10"]["gain_eos_mean"] == pytest.approx(0.06)
    assert rows["exp10"]["gain_eos_n"] == 2 and rows["exp10"]["gain_cb_reweight_n"] == 1
    assert rows["exp100"]["gain_cb_reweight_mean"] is None
    assert "gain_none_mean" not in source_curve_table("remedies", by_seed).column_names


def test_joined_curve_table_puts_every_statistic_of_a_row_side_by_side():
    gaps = source_curve_table("table2", _by_seed_table2())
    remedies = source_curve_table(
        "remedies",
        pa.Table.from_pylist(
            [
                dict(dataset="toy", imbalance="exp10", base_loss="ce", remedy="eos",
                     kind="feature-space", seed=s, bac_gain=g)
                for s, g in [(0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4)]
            ]
        ),
    )  # fmt: skip
    joined = joined_curve_table([gaps, remedies])
    rows = {r["imbalance"]: r for r in joined.to_pylist()}
    assert joined.num_rows == gaps.num_rows  # the remedy's only row is exp10, already there
    assert rows["exp10"]["minority_gap_mean"] == pytest.approx(0.4)
    assert rows["exp10"]["gain_eos_mean"] == pytest.approx(0.25)
    assert rows["exp10"]["n_seeds"] == 4  # the most runs any source saw
    assert rows["balanced"]["gain_eos_mean"] is None and rows["balanced"]["gain_eos_n"] is None


def test_a_curve_is_a_family_with_at_least_two_ratios():
    runs = [
        ("toy", "balanced", "ce"),
        ("toy", "exp10", "ce"),
        ("toy", "exp100", "ce"),
        ("toy", "step10", "ce"),  # one step ratio: no step curve
        ("toy", "exp100", "focal"),  # balanced + one ratio: no curve either
        ("toy", "balanced", "focal"),
    ]
    assert curve_groups(runs) == {("toy", "ce", "exp"): [10.0, 100.0]}


def test_the_balanced_row_prefers_the_same_loss_then_cross_entropy():
    curves = source_curve_table(
        "table2",
        pa.Table.from_pylist(
            [_table2("balanced", 0, 1.0, 0.9), _table2("balanced", 0, 1.0, 0.8, loss="focal")]
        ),
    )
    assert balanced_row(curves, "toy", "focal")["minority_gap_mean"] == pytest.approx(0.2)
    assert balanced_row(curves, "toy", "ldam")["minority_gap_mean"] == pytest.approx(0.1)
    assert balanced_row(curves, "other", "ce") is None


def _claim(imbalance, verdict, claim="minority_overfits", loss="ce", diff=0.1):
    return {
        "claim": claim,
        "statement": f"{claim} statement",
        "dataset": "toy",
        "imbalance": imbalance,
        "loss": loss,
        "verdict": verdict,
        "difference": diff,
        "ci_low": None if diff is None else diff - 0.05,
        "ci_high": None if diff is None else diff + 0.05,
        "n": 3,
        "interval": "t over 3 seeds",
    }


def test_smallest_ratio_is_the_first_holding_verdict_along_r():
    claims = pa.Table.from_pylist(
        [
            # listed out of order: the rule sorts by R, not by row order
            _claim("exp100", "holds", diff=0.3),
            _claim("exp10", "fails", diff=-0.1),
            _claim("exp50", "holds", diff=0.2),
            _claim("exp20", "inconclusive", diff=0.0),
            _claim("balanced", "holds"),  # not a ratio a claim is tested at
            # step: holds at 10, fails at 100
            _claim("step10", "holds", diff=0.15),
            _claim("step100", "fails"),
            # never holds
            _claim("exp10", "inconclusive", claim="tp_closer_than_fp"),
            _claim("exp100", "n/a", claim="tp_closer_than_fp"),
        ]
    )
    rows = {(r["claim"], r["family"]): r for r in smallest_ratio_table(claims).to_pylist()}
    assert set(rows) == {
        ("minority_overfits", "exp"),
        ("minority_overfits", "step"),
        ("tp_closer_than_fp", "exp"),
    }
    exp = rows[("minority_overfits", "exp")]
    assert exp["smallest_ratio"] == 50.0 and exp["smallest_imbalance"] == "exp50"
    assert exp["holds_at_every_larger_ratio"] is True
    assert exp["difference"] == pytest.approx(0.2) and exp["ci_low"] == pytest.approx(0.15)
    assert exp["ratios"] == "10, 20, 50, 100"
    assert exp["verdicts"] == "10: fails, 20: inconclusive, 50: holds, 100: holds"
    step = rows[("minority_overfits", "step")]
    assert step["smallest_ratio"] == 10.0 and step["holds_at_every_larger_ratio"] is False
    never = rows[("tp_closer_than_fp", "exp")]
    assert never["smallest_ratio"] is None and never["smallest_imbalance"] == NEVER
    assert never["holds_at_every_larger_ratio"] is None and never["difference"] is None


def test_claims_become_a_curve_of_their_differences_and_verdict_intervals():
    claims = pa.Table.from_pylist(
        [
            _claim("exp10", "fails", diff=-0.1),
            _claim("exp100", "holds", diff=0.3),
            _claim("balanced", "holds"),  # left out: claims compare imbalanced models
            _claim("exp10", "n/a", claim="tp_closer_than_fp", diff=None),
        ]
    )
    curve = claims_curve_table(claims)
    rows = {r["imbalance"]: r for r in curve.to_pylist()}
    assert set(rows) == {"exp10", "exp100"} and rows["exp100"]["ratio"] == 100.0
    assert rows["exp100"]["minority_overfits_mean"] == pytest.approx(0.3)
    assert rows["exp100"]["minority_overfits_ci_low"] == pytest.approx(0.25)
    assert rows["exp10"]["minority_overfits_n"] == 3
    assert rows["exp10"]["tp_closer_than_fp_mean"] is None
    assert rows["exp100"]["tp_closer_than_fp_mean"] is None  # not measured there at all


def test_smallest_ratio_needs_the_verdict_column():
    with pytest.raises(Exception, match="verdict"):
        smallest_ratio_table(pa.table({"claim": ["x"], "imbalance": ["exp10"]}))


def _full_curves():
    """Curve tables of every source for exp and step lines, three seeds each."""
    rows = []
    for imb, gap in [("balanced", 0.05), ("exp10", 0.2), ("exp100", 0.5), ("step10", 0.3),
                     ("step100", 0.6)]:  # fmt: skip
        for s in range(3):
            rows.append(_table2(imb, s, 1.0, 1.0 - gap - 0.02 * s))
    return {"table2": source_curve_table("table2", pa.Table.from_pylist(rows))}


def test_a_curve_figure_is_drawn(tmp_path):
    out = tmp_path / "rq2_gaps.png"
    plot_curve_figure("rq2_gaps", _full_curves(), "toy", "ce", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="unknown curve figure"):
        plot_curve_figure("rq9", _full_curves(), "toy", "ce", out)


def test_every_curve_figure_names_the_claim_it_tests():
    for name, spec in CURVE_FIGURES.items():
        assert "Tests" in spec.caption or spec.every_stat_of, name
        assert figure_sources(spec), name


def _curve_config(tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"] = [
        {
            "dataset": "digits",
            "imbalance": ["balanced", "exp5", "exp10"],
            "loss": ["ce"],
            "seeds": [0],
        }
    ]
    config["remedies"]["base"] = {"imbalance": ["exp5", "exp10"], "loss": ["ce"]}
    path = tmp_path / "curves.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _planned(result) -> dict[str, int]:
    from test_workflow import planned_jobs

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return planned_jobs(result)


def test_one_curve_figure_plans_only_the_runs_and_tables_it_needs(tmp_path):
    config = _curve_config(tmp_path)
    target = "results/figures/curves/digits/ce/rq7_fb.png"
    jobs = _planned(run_snakemake(tmp_path, config, "-n", target))
    assert jobs == {
        "prepare_dataset": 1,
        "make_split": 3,
        "train_model": 3,
        "extract_embeddings": 3,
        "analyze_rq7": 3,  # its statistic's per-run tables, no other question's
        "cross_run_rq7_generalization": 1,
        "plot_curve_figure": 1,
    }
    remedy = "results/figures/curves/digits/ce/remedy_gains.png"
    jobs = _planned(run_snakemake(tmp_path, config, "-n", remedy))
    assert jobs["apply_remedy"] == 2 * 4  # two treated runs, four smoke remedies
    assert "analyze_rq7" not in jobs and "cross_run_table2" not in jobs


def test_curve_targets_exist_only_for_a_study_with_a_curve(tmp_path):
    smoke = _planned(run_snakemake(tmp_path, SMOKE, "-n"))  # exp10 only: no curve
    assert not [rule for rule in smoke if "curve" in rule]
    jobs = _planned(run_snakemake(tmp_path, _curve_config(tmp_path), "-n", "curves"))
    assert jobs["plot_curve_figure"] == len(CURVE_FIGURES)
    assert jobs["curve_claims_smallest_ratio"] == 1 and jobs["curve_table_all"] == 1
    assert "plot_run_figure" not in jobs  # `curves` skips the per-run figures
