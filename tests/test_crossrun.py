"""Cross-run tables and the paper's claims, on hand-built per-run files with known answers."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fragility.analysis.claims import claims_summary, measure_claims
from fragility.analysis.crossrun import cross_run_table
from fragility.analysis.runs import SINGLE_SEED_BOOTSTRAP, RunFiles, balanced_partner, over_seeds
from fragility.catalog.claims import CLAIMS
from fragility.errors import FragilityError

T975 = {1: 12.7062, 2: 4.30265}  # Student's t, 0.975 quantile, by degrees of freedom


def _boot_file(run_dir, stats: dict) -> None:
    """``uncertainty/bootstrap.parquet`` of a run: statistic -> (estimate, low, high)."""
    (run_dir / "uncertainty").mkdir(parents=True, exist_ok=True)
    rows = [
        {"statistic": name, "estimate": e, "ci_low": lo, "ci_high": hi,
         "interval": "bootstrap over test images", "replicates": [lo, hi]}
        for name, (e, lo, hi) in stats.items()
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), run_dir / "uncertainty/bootstrap.parquet")


def _run(tmp_path, imbalance, loss, seed, bac, retrained=None, boot=True) -> RunFiles:
    """A run folder with metrics.json, the RQ1 re-training (imbalanced runs) and a bootstrap
    whose interval of each BAC is the BAC -0.03 / +0.02 (so it is recognisable)."""
    run_dir = tmp_path / imbalance / loss / f"seed{seed}"
    (run_dir / "rq1").mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"bac": bac}))
    stats = {"bac": (bac, bac - 0.03, bac + 0.02)}
    if retrained is not None:
        pq.write_table(pa.table({"bac_retrained": [retrained]}), run_dir / "rq1/retrained.parquet")
        gain = retrained - bac
        stats.update(
            bac_imbalanced=(bac, bac - 0.03, bac + 0.02),
            bac_retrained=(retrained, retrained - 0.03, retrained + 0.02),
            bac_retrained_gain=(gain, gain - 0.03, gain + 0.02),
        )
    if boot:
        _boot_file(run_dir, stats)
    return RunFiles.in_folder("toy", imbalance, loss, seed, run_dir)


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


def test_over_seeds_lists_an_identity_that_varies_between_seeds_instead_of_averaging_it():
    # a seeded class order makes another class the majority in each seed
    by_seed = pa.table(
        {
            "dataset": ["d"] * 4,
            "imbalance": ["exp10", "exp10", "exp10", "balanced"],
            "loss": ["ce"] * 4,
            "seed": [0, 1, 2, 0],
            "majority_class": [3, 5, 3, 0],
            "bac": [0.5, 0.7, 0.9, 0.8],
        }
    )
    exp10, balanced = over_seeds(by_seed).to_pylist()
    assert exp10["majority_class"] == "3/5" and balanced["majority_class"] == "0"
    assert "majority_class_mean" not in exp10 and exp10["bac_mean"] == pytest.approx(0.7)


def test_balanced_partner_prefers_the_same_seed_and_loss_then_cross_entropy(tmp_path):
    bal_ce = _run(tmp_path, "balanced", "ce", 0, 0.9)
    bal_focal = _run(tmp_path, "balanced", "focal", 0, 0.8)
    bal_ce2 = _run(tmp_path, "balanced", "ce", 2, 0.9)
    imb_focal = _run(tmp_path, "exp100", "focal", 0, 0.5, 0.6)
    imb_ldam = _run(tmp_path, "exp100", "ldam", 0, 0.5, 0.6)
    imb_seed1 = _run(tmp_path, "exp100", "ce", 1, 0.5, 0.6)
    imb_seed2 = _run(tmp_path, "exp100", "focal", 2, 0.5, 0.6)
    runs = [bal_ce2, bal_ce, bal_focal, imb_focal, imb_ldam, imb_seed1, imb_seed2]
    assert balanced_partner(imb_focal, runs) is bal_focal
    assert balanced_partner(imb_ldam, runs) is bal_ce
    # no balanced run with seed 1: the lowest seed's (one reference for several seeds)
    assert balanced_partner(imb_seed1, runs) is bal_ce
    # the same seed first, even with cross-entropy rather than the same loss
    assert balanced_partner(imb_seed2, runs) is bal_ce2
    other = RunFiles.in_folder("other", "exp100", "ce", 0, tmp_path)
    assert balanced_partner(other, runs) is None  # no balanced run of that dataset


def _t(values):
    """Mean and t half-width of ``values``, by hand."""
    x = np.array(values)
    return x.mean(), T975[len(x) - 1] * x.std(ddof=1) / np.sqrt(len(x))


def test_table1_over_two_seeds_and_one(tmp_path):
    runs = [
        _run(tmp_path, "balanced", "ce", 0, 0.90),
        _run(tmp_path, "balanced", "ce", 1, 0.94),
        _run(tmp_path, "exp100", "ce", 0, 0.60, 0.70),
        _run(tmp_path, "exp100", "ce", 1, 0.64, 0.96),  # retrained above balanced
        _run(tmp_path, "exp10", "ce", 0, 0.80, 0.85),  # a group of one seed
    ]
    summary, by_seed = cross_run_table("table1", runs)
    rows = by_seed.to_pylist()
    assert [(r["imbalance"], r["seed"], r["balanced"], r["imbalanced"], r["retrained"])
            for r in rows] == [
        ("exp100", 0, 0.90, 0.60, 0.70),
        ("exp100", 1, 0.94, 0.64, 0.96),
        ("exp10", 0, 0.90, 0.80, 0.85),
    ]  # fmt: skip
    assert [r["balanced_seed"] for r in rows] == ["0", "1", "0"]
    assert "reproduces" not in by_seed.column_names  # the ordering is a claim (bac_order)
    # each run's bootstrap interval, the balanced one from its partner's "bac"
    first = rows[0]
    assert (first["imbalanced_boot_low"], first["imbalanced_boot_high"]) == pytest.approx(
        (0.57, 0.62)
    )
    assert (first["retrained_boot_low"], first["retrained_boot_high"]) == pytest.approx(
        (0.67, 0.72)
    )
    assert (first["retrain_gain_boot_low"], first["retrain_gain_boot_high"]) == pytest.approx(
        (0.07, 0.12)
    )
    assert (rows[1]["balanced_boot_low"], rows[1]["balanced_boot_high"]) == pytest.approx(
        (0.91, 0.96)
    )

    groups = {r["imbalance"]: r for r in summary.to_pylist()}
    two, one = groups["exp100"], groups["exp10"]
    assert two["n_seeds"] == 2 and two["interval"] == "t over 2 seeds"
    assert two["balanced_mean"] == pytest.approx(0.92)
    assert two["retrain_gain_mean"] == pytest.approx((0.10 + 0.32) / 2)
    # t-intervals over the two seeds: mean ± 12.706 * s / sqrt(2)
    for column, values in {
        "balanced": (0.90, 0.94),  # s / sqrt 2 = 0.02
        "imbalanced": (0.60, 0.64),
        "retrained": (0.70, 0.96),  # s / sqrt 2 = 0.13
        "retrain_gain": (0.10, 0.32),
    }.items():
        mean, half = _t(values)
        assert two[f"{column}_ci_low"] == pytest.approx(mean - half), column
        assert two[f"{column}_ci_high"] == pytest.approx(mean + half), column
    assert two["imbalanced_ci_low"] == pytest.approx(0.62 - 12.7062 * 0.02, abs=1e-4)
    assert two["retrained_ci_high"] == pytest.approx(0.83 + 12.7062 * 0.13, abs=1e-4)
    # one seed: the run's bootstrap interval, passed through and labelled as such
    assert one["n_seeds"] == 1 and one["interval"] == SINGLE_SEED_BOOTSTRAP
    assert "training randomness not included" in one["interval"]
    assert one["imbalanced_mean"] == pytest.approx(0.80) and one["imbalanced_std"] is None
    assert (one["imbalanced_ci_low"], one["imbalanced_ci_high"]) == pytest.approx((0.77, 0.82))
    assert (one["retrained_ci_low"], one["retrained_ci_high"]) == pytest.approx((0.82, 0.87))
    assert (one["retrain_gain_ci_low"], one["retrain_gain_ci_high"]) == pytest.approx((0.02, 0.07))
    assert (one["balanced_ci_low"], one["balanced_ci_high"]) == pytest.approx((0.87, 0.92))
    assert not any(c.endswith(("_boot_low", "_boot_high")) for c in summary.column_names)


def test_one_balanced_reference_for_three_seeds_keeps_its_bootstrap_interval(tmp_path):
    runs = [_run(tmp_path, "balanced", "ce", 0, 0.88)]
    runs += [_run(tmp_path, "exp100", "ce", s, 0.6 + 0.02 * s, 0.7) for s in (0, 1, 2)]
    summary, by_seed = cross_run_table("table1", runs)
    assert by_seed["balanced"].to_pylist() == [0.88] * 3  # the one balanced run, thrice
    (row,) = summary.to_pylist()
    # not a zero-width t-interval over three copies of one number: that run's bootstrap
    assert (row["balanced_mean"], row["balanced_std"]) == (pytest.approx(0.88), None)
    assert (row["balanced_ci_low"], row["balanced_ci_high"]) == pytest.approx((0.85, 0.90))
    assert row["balanced_interval"] == SINGLE_SEED_BOOTSTRAP
    assert row["interval"] == "t over 3 seeds"  # the imbalanced columns vary by seed
    mean, half = _t((0.60, 0.62, 0.64))
    assert (row["imbalanced_ci_low"], row["imbalanced_ci_high"]) == pytest.approx(
        (mean - half, mean + half)
    )


def test_paper_columns_appear_on_the_paper_s_own_models_only(tmp_path):
    from fragility.analysis.paper import with_paper_columns

    summary = pa.Table.from_pylist(
        [
            {"dataset": "cifar10", "imbalance": "exp100", "loss": "ce", "balanced_mean": 0.9},
            {"dataset": "cifar10", "imbalance": "exp100", "loss": "ldam_drw", "balanced_mean": 0.9},
            {"dataset": "fashion_mnist", "imbalance": "exp100", "loss": "ce", "balanced_mean": 0.9},
        ]
    )
    losses = {"ce": "ce", "ldam_drw": None}  # LDAM-DRW is not the paper's LDAM
    rows = with_paper_columns("table1", summary, losses).to_pylist()
    assert (rows[0]["paper_balanced"], rows[0]["paper_imbalanced"]) == (0.9265, 0.7256)
    assert rows[0]["paper_retrained"] == 0.786 and rows[0]["paper_model"] == "CIFAR-10 CE"
    assert rows[1]["paper_balanced"] is None and rows[2]["paper_model"] is None
    # a table the paper prints no numbers of, or a study without the paper's models: unchanged
    assert with_paper_columns("rq3_coverage", summary, losses).equals(summary)
    assert with_paper_columns("table1", summary.slice(2), losses).equals(summary.slice(2))
    # the paper prints no Table 3 for CIFAR-10 CE: nothing to put beside ours
    assert with_paper_columns("table3", summary, {"ce": "ce"}).equals(summary)


def test_table1_without_a_balanced_run_leaves_that_column_empty(tmp_path):
    runs = [_run(tmp_path, "exp100", "focal", 0, 0.6, 0.7)]
    summary, by_seed = cross_run_table("table1", runs)
    (row,) = by_seed.to_pylist()
    assert row["balanced"] is None and row["balanced_loss"] is None
    assert row["balanced_seed"] is None
    assert row["balanced_boot_low"] is None and row["balanced_boot_high"] is None
    (group,) = summary.to_pylist()
    assert group["balanced_mean"] is None and group["balanced_ci_low"] is None
    assert (group["retrained_ci_low"], group["retrained_ci_high"]) == pytest.approx((0.67, 0.72))


def test_missing_per_run_table_is_one_clear_error(tmp_path):
    runs = [_run(tmp_path, "exp100", "ce", 0, 0.6)]  # no rq1/retrained.parquet
    with pytest.raises(FragilityError, match="retrained.parquet is missing"):
        cross_run_table("table1", runs)
    with pytest.raises(FragilityError, match="unknown cross-run table"):
        cross_run_table("table9", runs)
    runs = [_run(tmp_path, "exp10", "ce", 0, 0.6, 0.7, boot=False)]
    with pytest.raises(FragilityError, match="bootstrap.parquet is missing"):
        cross_run_table("table1", runs)


def _keys(seed, imbalance="exp100"):
    return {"dataset": "toy", "imbalance": imbalance, "loss": "ce", "seed": seed}


THREE, ONE = (0, 1, 2), (0,)  # exp100 has three seeds (t-interval), exp10 one (bootstrap)


def _premise(k: dict) -> dict:
    """table2's premise columns: exp100 seed 1 misses it (class 9 at 0.72), the rest meet it."""
    low = 0.72 if (k["imbalance"], k["seed"]) == ("exp100", 1) else 0.95
    return dict(lowest_train_acc=low, lowest_train_acc_class=9, lowest_train_acc_name="boot",
                premise_threshold=0.9, premise_met=low >= 0.9)  # fmt: skip


def _premise_table():
    """``table2_by_seed``: exp100 (3 seeds), exp10 (1 seed) and a balanced run (which the
    claims must ignore: it has no bootstrap of the differences)."""
    runs = [_keys(s) for s in THREE] + [_keys(0, "exp10"), _keys(0, "balanced")]
    return pa.Table.from_pylist([dict(k, **_premise(k)) for k in runs])


R = np.arange(1001) / 1000  # replicates whose 2.5 % / 97.5 % quantiles are 0.025 / 0.975
NONE = [None] * len(R)
NO_PARTNER = "no balanced toy run with loss ce"

# exp100: one estimate per seed; the t-interval of the three decides (replicates unused,
# except for a claim only one seed could measure). A claim missing here is n/a on every seed.
EXP100 = {
    "bac_order": [0.10, 0.12, 0.14],  # .12 ± 4.303 * .02 / sqrt 3 = [.0703, .1697]: holds
    "minority_overfits": [-0.20, -0.25, -0.30],  # -.25 ± .1242: fails
    "few_features_decide": [7.8, -52.2, 7.8],  # straddles 0: inconclusive
    "minority_smaller_k": [0.30, None, None],  # one seed measured: its bootstrap, holds
    "majority_ce_smaller": [0.40, 0.41, 0.42],  # log 3 - log 2 ~ .405: holds
    "majority_share_smaller": [-0.92, -0.93, -0.94],  # log .4 ~ -.916: fails
    "fig6_shares": [0.40, 0.45, 0.50],  # holds; the same balanced partner for all three
    "majority_weights_larger": [3.0, 3.1, 2.9],  # 3 ± .2484: holds
    "ce_far_above_weights": [1.2, 1.3, 1.1],  # holds
    "minority_features_frequent": [0.35, 0.36, 0.34],  # holds
    "majority_needs_more_members": [6.0, 6.0, None],  # two seeds measured: bootstrap
    "tp_closer_than_fp": [None, None, None],  # never measurable: n/a
    "identity_overlap_ce": [0.56, 0.5, 0.6],  # holds
    "identity_overlap_fe": [0.26, -0.3, 0.1],  # straddles 0: inconclusive
}
# exp10: one seed, the percentile interval of its replicates (offset + 0.1 * R)
EXP10 = {
    "bac_order": (0.05, 0.01),  # [0.0125, 0.1075]: holds
    "minority_overfits": (-0.15, -0.2),  # [-0.1975, -0.1025]: fails
    "few_features_decide": (0.0, -0.05),  # [-0.0475, 0.0475]: inconclusive
    "majority_ce_smaller": (1.0, 0.9),  # holds
    "majority_share_smaller": (-0.1, -0.15),  # fails
    "majority_weights_larger": (3.0, None),  # the weights alone: no replicates, inconclusive
    "ce_far_above_weights": (1.0, 0.95),  # holds
    "minority_features_frequent": (0.3, 0.25),  # holds
    "majority_needs_more_members": (6.0, 5.95),  # holds
    "tp_closer_than_fp": (10.0, 9.0),  # holds
    "identity_overlap_ce": (-0.2, -0.3),  # fails
    "identity_overlap_fe": (0.0, -0.05),  # inconclusive
}
SIDE = {name: "training" for name in ("few_features_decide", "minority_smaller_k",
        "majority_ce_smaller", "majority_share_smaller", "ce_far_above_weights",
        "minority_features_frequent", "majority_needs_more_members")}  # fmt: skip
FIXED = "none: a property of the trained weights, no image to resample"
# what each seed's bootstrap recorded for the detail of a few claims
PARTS = {
    "bac_order": lambda seed: {"imbalanced": 0.6, "retrained": 0.7, "balanced": 0.9,
                               "partner": "ce seed 0"},  # fmt: skip
    "few_features_decide": lambda seed: (
        {"k": None, "coverage": None, "width": 64, "bound": 12.8} if seed == 1
        else {"k": 5, "coverage": 0.95, "width": 64, "bound": 12.8}
    ),  # fmt: skip
    "minority_smaller_k": lambda seed: {"k": 2, "minority": 0.8 if seed == 0 else None,
                                        "majority": 0.5, "minority_group": "6,7,8,9",
                                        "majority_group": "0,1,2,3", "changed": 0, "n": 100},
    "majority_needs_more_members": lambda seed: {"majority": 9.0, "minority": None},
    "tp_closer_than_fp": lambda seed: {"fb_fp": 12.0, "fb_tp": 4.0, "fb_tp_all": 2.0},
    "fig6_shares": lambda seed: {"imbalanced": 0.5, "balanced": 0.3, "above_35": 5,
                                 "balanced_above_26": 0, "partner": "ce seed 0"},
}  # fmt: skip


def _claim_boot(stats: dict, seed: int) -> pa.Table:
    """A run's bootstrap.parquet of the claims: name -> (estimate, replicates); every claim
    not in ``stats`` is n/a without a balanced partner."""
    rows = []
    for name in CLAIMS:
        e, reps = stats.get(name, (None, NONE))
        rows.append({
            "statistic": name, "estimate": e, "replicates": reps,
            "interval": FIXED if name == "majority_weights_larger"
            else f"bootstrap over {SIDE.get(name, 'test')} images",
            "reason": None if name in stats else NO_PARTNER,
            "parts": json.dumps(PARTS[name](seed) if name in PARTS else {}),
        })  # fmt: skip
    return pa.Table.from_pylist(rows)


def _bootstraps():
    out = {}
    for i, seed in enumerate(THREE):
        stats = {}
        for name, values in EXP100.items():
            e = values[i]
            # replicates 0.25..0.35 for a claim fewer than three seeds measured; elsewhere
            # junk (9), which the t-interval over three seeds must not read
            few = sum(v is not None for v in values) < 3
            reps = NONE if e is None else list(0.25 + 0.1 * R if few else np.full(3, 9.0))
            stats[name] = (e, reps)
        out[("toy", "exp100", "ce", seed)] = _claim_boot(stats, seed)
    out[("toy", "exp10", "ce", 0)] = _claim_boot(
        {
            n: (e, NONE if e is None or off is None else list(off + 0.1 * R))
            for n, (e, off) in EXP10.items()
        },
        0,
    )
    return out


AS_LARGE = "holds, as large as the paper's"
VERDICTS = {
    "exp100": {"bac_order": AS_LARGE, "minority_overfits": "fails",
               "few_features_decide": "inconclusive", "minority_smaller_k": "holds",
               "majority_ce_smaller": "holds", "majority_share_smaller": "fails",
               "fig6_shares": "holds",
               "majority_weights_larger": "holds", "ce_far_above_weights": "holds",
               "minority_features_frequent": "holds", "majority_needs_more_members": "holds",
               "tp_closer_than_fp": "n/a", "identity_overlap_ce": "holds",
               "identity_overlap_fe": "inconclusive"},
    "exp10": {"bac_order": "holds", "minority_overfits": "fails",
              "few_features_decide": "inconclusive",
              "majority_ce_smaller": "holds", "majority_share_smaller": "fails",
              "majority_weights_larger": "inconclusive", "ce_far_above_weights": "holds",
              "minority_features_frequent": "holds", "majority_needs_more_members": "holds",
              "tp_closer_than_fp": "holds", "identity_overlap_ce": "fails",
              "identity_overlap_fe": "inconclusive"},
}  # fmt: skip


def test_claims_verdicts_rest_on_known_intervals():
    table = measure_claims(_premise_table(), _bootstraps())
    claims = {(r["imbalance"], r["claim"]): r for r in table.to_pylist()}
    assert set(claims) == {(g, name) for g in ("exp100", "exp10") for name in CLAIMS}
    verdicts = {key: r["verdict"] for key, r in claims.items()}
    want = {(g, c): group.get(c, "n/a") for g, group in VERDICTS.items() for c in CLAIMS}
    assert verdicts == want
    # a claim no seed could measure: n/a with the seeds' reason; a measured one: no reason
    assert claims[("exp10", "fig3_trend")]["reason"] == NO_PARTNER
    assert claims[("exp100", "bac_order")]["reason"] is None

    # three seeds: a t-interval over them, by hand; the paper's +0.060 (CIFAR-10 CE) is
    # within reach of its upper limit: as large as the paper's
    bac = claims[("exp100", "bac_order")]
    assert (bac["n_seeds"], bac["n"], bac["n_positive"]) == (3, 3, 3)
    # every seed read the one balanced model (PARTS: "ce seed 0"): held fixed, and said so
    assert bac["interval"] == "t over 3 seeds (the balanced partner ce seed 0 held fixed)"
    assert bac["difference"] == pytest.approx(0.12)
    assert (bac["ci_low"], bac["ci_high"]) == pytest.approx(
        (0.12 - 4.30265 * 0.02 / np.sqrt(3), 0.12 + 4.30265 * 0.02 / np.sqrt(3)), abs=1e-5
    )
    assert bac["size_compared_with"] == "CIFAR-10 CE, other dataset and loss"
    gap = claims[("exp100", "minority_overfits")]
    assert (gap["ci_low"], gap["ci_high"]) == pytest.approx((-0.3742, -0.1258), abs=1e-4)
    assert gap["n_positive"] == 0 and gap["size_compared_with"] is None
    few = claims[("exp100", "few_features_decide")]
    assert few["ci_low"] < 0 < few["ci_high"] and few["n_positive"] == 2
    assert (
        "seed 1: K covering 90 %: n/a of 64 (coverage n/a; H/5 = 12.8) (difference -52.200)"
        in (few["detail"])
    )
    assert "seed 0: K covering 90 %: 5 of 64 (coverage 0.950; H/5 = 12.8)" in few["detail"]
    # three seeds, but only one measured the claim: its bootstrap, labelled as such
    k = claims[("exp100", "minority_smaller_k")]
    assert (k["n_seeds"], k["n"], k["difference"]) == (3, 1, 0.30)
    assert (k["ci_low"], k["ci_high"]) == pytest.approx((0.2525, 0.3475))
    assert k["interval"] == (
        "bootstrap over training images (1 seed; training randomness not included)"
    )
    assert (
        "K = 2: minority group (6,7,8,9) covers 0.800, majority group (0,1,2,3) 0.500"
        in (k["detail"])
    )
    assert "seed 1: n/a" in k["detail"]  # seed 1 did not measure it
    members = claims[("exp100", "majority_needs_more_members")]
    assert (members["n"], members["difference"]) == (2, 6.0)
    assert "members needed: majority 9.0" in members["detail"]
    na = claims[("exp100", "tp_closer_than_fp")]
    assert (na["difference"], na["ci_low"], na["ci_high"], na["n"]) == (None, None, None, 0)
    assert na["interval"] == "none"
    # the same balanced partner under every seed: held fixed, and said so
    shares = claims[("exp100", "fig6_shares")]
    assert shares["interval"] == "t over 3 seeds (the balanced partner ce seed 0 held fixed)"
    assert "mean top-1 share 0.500 imbalanced (5 classes above 35 %)" in shares["detail"]

    # one seed: the percentile interval of its replicates; no size against the paper's
    one = claims[("exp10", "bac_order")]
    assert (one["n_seeds"], one["n"]) == (1, 1) and one["difference"] == pytest.approx(0.05)
    assert (one["ci_low"], one["ci_high"]) == pytest.approx((0.0125, 0.1075))
    assert one["interval"] == (
        "bootstrap over test images (1 seed; training randomness not included)"
    )
    assert one["detail"] == (
        "seed 0: imbalanced 0.600, re-trained 0.700, balanced 0.900 (ce seed 0) (difference +0.050)"
    )
    fails = claims[("exp10", "minority_overfits")]
    assert (fails["ci_low"], fails["ci_high"]) == pytest.approx((-0.1975, -0.1025))
    inc = claims[("exp10", "few_features_decide")]
    assert (inc["ci_low"], inc["ci_high"]) == pytest.approx((-0.0475, 0.0475))
    assert claims[("exp10", "minority_smaller_k")]["interval"] == "none"
    # a statistic of the weights alone on one seed: no interval, a verdict needs seeds
    weights = claims[("exp10", "majority_weights_larger")]
    assert (weights["difference"], weights["ci_low"]) == (3.0, None)
    assert weights["interval"] == f"{FIXED} (1 seed; an interval needs 3 seeds)"


def test_claims_carry_the_premise_and_the_paper_beside_them():
    losses = {"ce": {"loss": "ce"}}
    table = measure_claims(_premise_table(), _bootstraps(), losses)
    claims = {(r["imbalance"], r["claim"]): r for r in table.to_pylist()}
    # exp100 seed 1 has a class at 0.72: the group misses the premise, verdicts still shown
    miss = claims[("exp100", "bac_order")]
    assert (miss["premise_met"], miss["premise_share"]) == (False, pytest.approx(2 / 3))
    assert miss["reading"] == "premise not met" and miss["verdict"] == AS_LARGE
    assert miss["premise_detail"] == (
        "premise not met (2 of 3 seeds meet it): lowest class train accuracy 0.72 (class 9 "
        "'boot', seed 1; needs >= 0.90 in every class)"
    )
    met = claims[("exp10", "bac_order")]
    assert (met["premise_met"], met["premise_share"], met["reading"]) == (
        True, 1.0, "test of the paper")  # fmt: skip
    assert met["premise_detail"].startswith("premise met (1 of 1 seeds meet it)")
    # the paper's value: a toy dataset matches none of the paper's; loss and imbalance do
    assert miss["paper_model"] == "CIFAR-10 CE, other dataset"
    assert (
        claims[("exp10", "bac_order")]["paper_model"] == "CIFAR-10 CE, other dataset and imbalance"
    )
    assert miss["paper_value"] == pytest.approx(min(0.7860 - 0.7256, 0.9265 - 0.7860))
    assert miss["paper_reported"] == "72.56 < 78.60 < 92.65"
    # Table 3 prints no CE value for CIFAR-10: the paper's SVHN CE is the nearest
    t3 = claims[("exp100", "majority_ce_smaller")]
    assert t3["paper_model"] == "SVHN CE, other dataset"
    assert t3["paper_value"] == pytest.approx(np.log(3.4955 / 1.4899) - np.log(2))
    assert t3["size_compared_with"] is None  # ours is size-matched: no size against it
    assert claims[("exp100", "majority_needs_more_members")]["paper_value"] is None
    text = claims_summary(table)
    assert (
        "[holds, as large as the paper's (CIFAR-10 CE, other dataset) (premise not met)] "
        "RQ1: imbalanced < re-trained < balanced BAC"
    ) in text
    assert "paper's value: +0.060 (CIFAR-10 CE, other dataset: 72.56 < 78.60 < 92.65)" in text


def test_claims_summary_in_words():
    text = claims_summary(measure_claims(_premise_table(), _bootstraps()))
    n_claims = len(CLAIMS)
    assert (
        f"toy/exp100/ce (3 seeds): 1 holds, as large as the paper's, 8 holds, 2 fails, "
        f"2 inconclusive, {n_claims - 13} n/a"
    ) in text
    assert f"toy/exp10/ce (1 seed): 6 holds, 3 fails, 3 inconclusive, {n_claims - 12} n/a" in text
    assert "[n/a (premise not met)] RQ7: FB(TP) < FB(FP), size-matched (§5.7, Fig 10)" in text
    assert f"[n/a: {NO_PARTNER}] Fig 3: the coverage trend comes with the imbalance" in text
    assert "+0.120 [+0.070, +0.170]" in text
    assert "(> 0): not measurable" in text
    assert "training randomness not included" in text
    assert "premise not met (2 of 3 seeds meet it)" in text and "premise met (1 of 1" in text
    assert "balanced" not in [line.split("/")[1] for line in text.splitlines() if "/ce (" in line]


def test_cross_run_figures_draw_from_summary_tables(tmp_path):
    from fragility.catalog.outputs import CROSS_RUN_FIGURES
    from fragility.plotting.cross_run import plot_cross_run

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
    # training_dynamics is drawn from its own table in tests/test_dynamics.py
    assert set(tables) == set(CROSS_RUN_FIGURES) - {"training_dynamics"}
    for name, table in tables.items():
        out = tmp_path / f"{name}.png"
        plot_cross_run(name, table, out)
        assert out.read_bytes()[:4] == b"\x89PNG"


# -- remedies: predictions on 60 test images (20 per class), index 500..559; training
# counts 100 / 30 / 10, so class 0 is the majority and class 2 the minority.
TEST_LABELS = np.repeat([0, 1, 2], 20)
TEST_INDEX = np.arange(500, 560)


def _preds(fixed: int = 0, broken: int = 0) -> np.ndarray:
    """The untreated model: class 0 all right, class 1 half (10 -> 0), class 2 2 of 20
    (18 -> 0); ``fixed`` of class 2's errors repaired, ``broken`` of class 0's images -> 1."""
    preds = TEST_LABELS.copy()
    preds[30:40] = 0
    preds[42 + fixed : 60] = 0
    preds[:broken] = 1
    return preds


def _model_folder(folder, preds, seconds, counts=None, order=None) -> dict:
    """metrics.json (from the predictions) and embeddings/test.parquet (rows in ``order``)."""
    from fragility.embeddings.files import embeddings_table
    from fragility.metrics import summary

    (folder / "embeddings").mkdir(parents=True, exist_ok=True)
    metrics = dict(summary(TEST_LABELS, preds, 3), wall_seconds=seconds)
    if counts is not None:
        metrics["train_class_counts"] = counts
    (folder / "metrics.json").write_text(json.dumps(metrics))
    order = np.arange(60) if order is None else order
    logits = np.eye(3)[preds[order]]  # argmax = the prediction
    table = embeddings_table(TEST_INDEX[order], TEST_LABELS[order], np.zeros((60, 2)), logits)
    pq.write_table(table, folder / "embeddings/test.parquet")
    return metrics


def _remedied_seed(tmp_path, seed: int, fixed: int) -> list[RunFiles]:
    """An untreated ce run, its eos remedy fixing ``fixed`` minority errors, a remedy that
    breaks 10 majority images, and a focal run predicting exactly as the untreated model."""
    shuffled = np.random.default_rng(seed).permutation(60)  # files in another row order
    runs = []
    for loss, seconds in (("ce", 100.0), ("focal", 120.0)):
        run_dir = tmp_path / "toy/exp100" / loss / f"seed{seed}"
        _model_folder(run_dir, _preds(), seconds, [100, 30, 10], None if loss == "ce" else shuffled)
        treated = tuple(REMEDIES) if loss == "ce" else ()
        runs.append(RunFiles.in_folder("toy", "exp100", loss, seed, run_dir, treated))
    base = tmp_path / "toy/exp100/ce" / f"seed{seed}"
    _model_folder(base / "remedies/eos", _preds(fixed=fixed), 2.0, order=shuffled)
    _model_folder(base / "remedies/bad", _preds(broken=10), 3.0)
    return runs


REMEDIES = {"eos": "eos", "bad": "eos"}


def test_remedies_table_compares_every_method_with_the_untreated_model(tmp_path):
    from fragility.analysis.crossrun import remedies_table

    runs = _remedied_seed(tmp_path, 0, fixed=16)
    summary, by_seed = remedies_table(runs, REMEDIES, n_boot=300)
    rows = {r["remedy"]: r for r in by_seed.to_pylist()}
    assert set(rows) == {"none", "eos", "bad", "focal"}
    assert rows["none"]["kind"] == "untreated" and rows["focal"]["kind"] == "loss-level"
    # untreated BAC (1 + .5 + .1) / 3; eos repairs 16 of class 2's images: +16/20/3
    assert rows["none"]["bac"] == pytest.approx(1.6 / 3)
    assert rows["eos"]["bac_gain"] == pytest.approx(0.8 / 3)
    assert rows["bad"]["bac_gain"] == pytest.approx(-0.5 / 3)
    assert rows["focal"]["bac_gain"] == pytest.approx(0.0)
    assert (rows["eos"]["majority_acc"], rows["eos"]["minority_acc"]) == (1.0, 0.9)
    assert rows["eos"]["seconds"] == 2.0 and rows["eos"]["total_seconds"] == 102.0
    assert rows["focal"]["total_seconds"] == 120.0  # a loss-level remedy is its own training
    # paired intervals: eos only ever gains (each replicate redraws class 2's 20 images, at
    # least one of them among the 16 repaired ones); identical predictions gain exactly 0
    assert 0 < rows["eos"]["bac_gain_boot_low"] < 0.8 / 3 < rows["eos"]["bac_gain_boot_high"]
    assert rows["eos"]["bac_gain_boot_high"] <= 1.0 / 3  # at most all 20 repaired
    assert (rows["focal"]["bac_gain_boot_low"], rows["focal"]["bac_gain_boot_high"]) == (0.0, 0.0)
    assert (rows["none"]["bac_gain_boot_low"], rows["none"]["bac_gain_boot_high"]) == (0.0, 0.0)
    assert rows["bad"]["bac_gain_boot_high"] < 0
    assert rows["eos"]["minority_acc_boot_low"] < 0.9 < rows["eos"]["minority_acc_boot_high"]
    assert rows["eos"]["majority_acc_boot_low"] == rows["eos"]["majority_acc_boot_high"] == 1.0

    assert summary.num_rows == 4 and "bac_mean" in summary.column_names
    groups = {r["remedy"]: r for r in summary.to_pylist()}
    verdicts = {name: (r["verdict"], r["verdict_interval"]) for name, r in groups.items()}
    single = "paired bootstrap over test images (1 seed; training randomness not included)"
    assert verdicts == {
        "none": ("untreated", "none: the untreated model itself"),
        "eos": ("better", single),
        "bad": ("worse", single),
        "focal": ("no detectable difference", single),
    }
    # one seed: the summary's interval is the paired bootstrap's
    eos = groups["eos"]
    assert eos["interval"] == SINGLE_SEED_BOOTSTRAP
    assert (eos["bac_gain_ci_low"], eos["bac_gain_ci_high"]) == (
        rows["eos"]["bac_gain_boot_low"],
        rows["eos"]["bac_gain_boot_high"],
    )
    from fragility.plotting.remedies import plot_remedy_costs

    plot_remedy_costs(summary, tmp_path / "remedies.png")
    assert (tmp_path / "remedies.png").read_bytes()[:4] == b"\x89PNG"


def test_remedies_over_three_seeds_decide_by_t(tmp_path):
    from fragility.analysis.crossrun import remedies_table

    runs = []
    for seed, fixed in ((0, 16), (1, 12), (2, 18)):
        runs += _remedied_seed(tmp_path, seed, fixed)
    summary, by_seed = remedies_table(runs, REMEDIES, n_boot=100)
    assert by_seed.num_rows == 12
    groups = {r["remedy"]: r for r in summary.to_pylist()}
    eos = groups["eos"]
    gains = [16 / 60, 12 / 60, 18 / 60]  # fixed / 20 / 3
    mean, half = np.mean(gains), 4.30265 * np.std(gains, ddof=1) / np.sqrt(3)
    assert eos["n_seeds"] == 3 and eos["interval"] == "t over 3 seeds"
    assert eos["bac_gain_mean"] == pytest.approx(mean)
    assert (eos["bac_gain_ci_low"], eos["bac_gain_ci_high"]) == pytest.approx(
        (mean - half, mean + half), abs=1e-5
    )
    assert (eos["verdict"], eos["verdict_interval"]) == ("better", "t over 3 seeds")
    assert (groups["bad"]["verdict"], groups["bad"]["verdict_interval"]) == (
        "worse",
        "t over 3 seeds",
    )
    # the same gain on every seed: a zero-width interval at 0, not a difference
    focal = groups["focal"]
    assert (focal["bac_gain_ci_low"], focal["bac_gain_ci_high"]) == (0.0, 0.0)
    assert focal["verdict"] == "no detectable difference"
    assert groups["none"]["verdict"] == "untreated"


def test_remedies_need_the_same_test_images(tmp_path):
    from fragility.analysis.crossrun import remedies_table

    runs = _remedied_seed(tmp_path, 0, fixed=16)
    eos = tmp_path / "toy/exp100/ce/seed0/remedies/eos/embeddings/test.parquet"
    table = pq.read_table(eos)
    pq.write_table(table.slice(0, 59), eos)  # one test image fewer
    with pytest.raises(FragilityError, match="other test images than the untreated model"):
        remedies_table(runs, REMEDIES, n_boot=10)
    eos.unlink()
    with pytest.raises(FragilityError, match="test.parquet is missing"):
        remedies_table(runs, REMEDIES, n_boot=10)


def test_provenance_names_what_produced_each_run(tmp_path):
    from fragility.analysis.crossrun import provenance_table
    from fragility.workflow.provenance import environment

    run = _run(tmp_path, "exp100", "ce", 0, 0.6)
    metrics = json.loads((tmp_path / "exp100/ce/seed0/metrics.json").read_text())
    metrics.update(config_hash="abc", device="cpu", environment=environment())
    (tmp_path / "exp100/ce/seed0/metrics.json").write_text(json.dumps(metrics))
    (row,) = provenance_table([run]).to_pylist()
    assert (row["config_hash"], row["device"], row["seed"]) == ("abc", "cpu", 0)
    assert row["code_version"]  # a git commit here, the package version elsewhere
    assert row["torch"] == environment()["torch"]
