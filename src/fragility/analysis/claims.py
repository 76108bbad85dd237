"""The paper's claims (SPEC §4, "The paper's claims"), measured with uncertainty, beside the
paper's own numbers and with the paper's premise checked.

Each claim is a signed difference that is positive when the claim holds (the definitions
are in :mod:`fragility.analysis.bootstrap`, computed per imbalanced run into its
``uncertainty/bootstrap.parquet``). For a (dataset, imbalance, loss) group the verdict is
*holds* when the 95 % interval of the difference lies above 0, *fails* when it lies below,
*inconclusive* otherwise, and *n/a* when no seed could measure it (no balanced run, a
class never predicted). The interval is a t-interval over seeds when at least three seeds
measured the claim; with fewer it is the stratified bootstrap over images (the mean of the
seeds' replicates), which leaves training randomness out, and the tables and text say so.

**The premise.** The paper's mechanism (a memorised minority decided by a few large ce)
presumes models that "almost perfectly memorize the training data" (§5.2). A seed meets it
when every class's train accuracy at the kept checkpoint is >= 0.90 (``rq2/table2``); each
claim row reports the share of its group's seeds that do, and a verdict on a group where
some seed does not is labelled "premise not met": shown, but not read as a test of the paper.

**The paper beside us.** Each row carries the paper's value of the same statistic, from the
model of the paper that matches the group best (same dataset and loss, else the same loss or
the same dataset, else CIFAR-10 CE) and says which, and how it differs.

The ``*_by_seed`` tables supply the plain-words detail of every seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fragility.analysis.crossrun import GROUP_KEYS
from fragility.analysis.paper import paper_loss, reference
from fragility.analysis.uncertainty import (
    MIN_SEEDS_FOR_VERDICT,
    VERDICTS,
    Interval,
    percentile_interval,
    t_interval,
    verdict,
)
from fragility.catalog import CLAIMS as CATALOG_CLAIMS
from fragility.catalog import PREMISE_TABLE, PREMISE_TRAIN_ACC, PaperValue

READ_AS_TEST = "test of the paper"
PREMISE_NOT_MET = "premise not met"


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    source: str  # the paper's section, table or figure
    table: str  # the *_by_seed table its detail is read from
    statistic: str  # the signed difference, positive when the claim holds
    threshold: str  # what "holds" means in the paper's units
    detail: Callable[[dict], str]
    label: str  # a few words, for tables
    paper: Mapping[str, PaperValue]


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x, spec: str = ".3f") -> str:
    x = _num(x)
    return "n/a" if x is None else format(x, spec)


def _bac_detail(row: dict) -> str:
    text = f"imbalanced {_fmt(row['imbalanced'])}, retrained {_fmt(row['retrained'])}"
    if _num(row["balanced"]) is None:
        return text + ", no balanced run"
    return text + f", balanced {_fmt(row['balanced'])}"


def _gap_detail(row: dict) -> str:
    return (
        f"minority train {_fmt(row['train_acc_minority'])} / test "
        f"{_fmt(row['test_acc_minority'])}; majority train {_fmt(row['train_acc_majority'])} / "
        f"test {_fmt(row['test_acc_majority'])}"
    )


def _k_detail(row: dict) -> str:
    k, width = row.get("smallest_k_90"), row.get("n_features")
    if k is None:
        return f"no K covers 90 % of the instances (H = {width})"
    return f"K = {k} of {width} covers {_fmt(row['coverage_k_90'])} (H/5 = {width / 5:g})"


def _coverage_detail(row: dict) -> str:
    return (
        f"K = {row['k']}: minority group ({row.get('minority_group')}) covers "
        f"{_fmt(row['coverage_minority_group'])}, majority group ({row.get('majority_group')}) "
        f"{_fmt(row['coverage_majority_group'])}"
    )


def _ratio_detail(prefix: str) -> Callable[[dict], str]:
    def detail(row: dict) -> str:
        return (
            f"majority {_fmt(row[f'majority_{prefix}'])}, others' mean "
            f"{_fmt(row[f'others_mean_{prefix}'])} (ratio {_fmt(row['ratio_others_to_majority'], '.2f')})"
        )

    return detail


def _weights_detail(row: dict) -> str:
    return (
        f"top-10 |W| sum: majority {_fmt(row['majority_top_abs_w_sum'])}, minority "
        f"{_fmt(row['minority_top_abs_w_sum'])}"
    )


def _scale_detail(row: dict) -> str:
    return (
        f"largest class-mean ce {_fmt(row['largest_mean_ce'])}, largest |W| "
        f"{_fmt(row['largest_abs_w'])} (ratio {_fmt(row['ratio_ce_to_w'], '.2f')})"
    )


def _frequency_detail(row: dict) -> str:
    return (
        f"most frequent top-{row['k']} feature in {_fmt(row['top_member_share_minority_group'])} "
        f"of the minority group's instances, {_fmt(row['top_member_share_majority_group'])} of "
        "the majority group's"
    )


def _members_detail(row: dict) -> str:
    return (
        f"members needed: majority {_fmt(row.get('members_needed_majority'), '.0f')}, "
        f"minority {_fmt(row.get('members_needed_minority'), '.0f')}"
    )


def _fb_detail(row: dict) -> str:
    return (
        f"FB(FP) {_fmt(row.get('frobenius_train_vs_fp_matched'), '.2f')} vs size-matched FB(TP) "
        f"{_fmt(row.get('frobenius_train_vs_tp_matched'), '.2f')} (all TP: "
        f"{_fmt(row['frobenius_train_vs_tp'], '.2f')})"
    )


def _overlap_detail(kind: str) -> Callable[[dict], str]:
    def detail(row: dict) -> str:
        return (
            f"{kind.upper()} top-10 overlap: train~TP {_fmt(row[f'overlap_{kind}_tp'], '.2f')}, "
            f"train~FP {_fmt(row[f'overlap_{kind}_fp'], '.2f')}"
        )

    return detail


# how each claim of :data:`fragility.catalog.CLAIMS` reads in plain words for one seed
DETAILS: dict[str, Callable[[dict], str]] = {
    "bac_order": _bac_detail,
    "minority_overfits": _gap_detail,
    "few_features_decide": _k_detail,
    "minority_smaller_k": _coverage_detail,
    "majority_ce_smaller": _ratio_detail("largest_mean_ce"),
    "majority_share_smaller": _ratio_detail("largest_share"),
    "majority_weights_larger": _weights_detail,
    "ce_far_above_weights": _scale_detail,
    "minority_features_frequent": _frequency_detail,
    "majority_needs_more_members": _members_detail,
    "tp_closer_than_fp": _fb_detail,
    "identity_overlap_ce": _overlap_detail("ce"),
    "identity_overlap_fe": _overlap_detail("fe"),
}
CLAIMS: tuple[Claim, ...] = tuple(
    Claim(
        name,
        spec.statement,
        spec.source,
        spec.table,
        spec.statistic,
        spec.threshold,
        DETAILS[name],
        spec.label,
        spec.paper,
    )  # fmt: skip
    for name, spec in CATALOG_CLAIMS.items()
)
CLAIM_LABELS = {c.name: c.label for c in CLAIMS}


# -- the paper beside us -----------------------------------------------------------------------


# -- the premise -------------------------------------------------------------------------------


def group_premise(rows: list[dict]) -> dict:
    """The premise of a group from its seeds' ``table2`` rows: ``premise_met`` (every seed
    meets it), ``premise_share`` (the share that does) and ``premise_detail`` in words, naming
    the lowest class train accuracy of any seed."""
    known = [r for r in rows if r.get("premise_met") is not None]
    if not known:
        return {"premise_met": None, "premise_share": None,
                "premise_detail": "not measured (no per-class train accuracy)"}  # fmt: skip
    met = sum(bool(r["premise_met"]) for r in known)
    worst = min(known, key=lambda r: (r["lowest_train_acc"], r["seed"]))
    name = worst.get("lowest_train_acc_name")
    cls = f"class {worst['lowest_train_acc_class']}" + (
        f" '{name}'" if name not in (None, str(worst["lowest_train_acc_class"])) else ""
    )
    lowest = (
        f"lowest class train accuracy {worst['lowest_train_acc']:.2f} ({cls}, seed "
        f"{worst['seed']}; needs >= {PREMISE_TRAIN_ACC:.2f} in every class)"
    )
    all_met = met == len(known)
    head = "premise met" if all_met else PREMISE_NOT_MET
    return {
        "premise_met": all_met,
        "premise_share": met / len(known),
        "premise_detail": f"{head} ({met} of {len(known)} seeds meet it): {lowest}",
    }


def _coverage_rows(table: pa.Table) -> list[dict]:
    """rq3_coverage by seed (one row per run and K) → the rows of each run's smallest K."""
    smallest = min(table["k"].to_pylist())
    return [r for r in table.to_pylist() if r["k"] == smallest]


def bootstrap_note(kind: str, n_seeds: int) -> str:
    """The interval label of a verdict that rests on the bootstrap: what it leaves out."""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if kind.startswith("none"):  # nothing to resample: only seeds give an interval
        return f"{kind} ({seeds}; an interval needs {MIN_SEEDS_FOR_VERDICT} seeds)"
    return f"{kind} ({seeds}; training randomness not included)"


def combine_seeds(
    estimates: list[float | None], replicates: list[np.ndarray], kind: str
) -> Interval:
    """The interval of a difference measured on several seeds of one group: a t-interval
    over the seeds that measured it when there are at least
    :data:`~fragility.analysis.uncertainty.MIN_SEEDS_FOR_VERDICT`, else the percentile
    interval of the seeds' mean bootstrap replicate (replicate b of every seed averaged)."""
    measured = [i for i, e in enumerate(estimates) if e is not None and np.isfinite(e)]
    if len(measured) >= MIN_SEEDS_FOR_VERDICT:
        return t_interval([estimates[i] for i in measured])
    if not measured:
        return Interval(None, None, None, 0, "none")
    mean = float(np.mean([estimates[i] for i in measured]))
    stacked = np.vstack([replicates[i] for i in measured])
    return percentile_interval(
        stacked.mean(axis=0), mean, len(measured), bootstrap_note(kind, len(measured))
    )


def _replicates(row: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row["replicates"]], dtype=np.float64)


def _groups_of(table: pa.Table, name: str) -> dict[tuple, list[dict]]:
    """The imbalanced rows of by-seed table ``name``, by (dataset, imbalance, loss)."""
    rows = _coverage_rows(table) if name == "rq3_coverage" else table.to_pylist()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["imbalance"] != "balanced":
            groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    return groups


CLAIMS_SCHEMA = pa.schema(
    [
        ("claim", pa.string()),
        ("label", pa.string()),
        ("statement", pa.string()),
        ("source", pa.string()),
        *[(k, pa.string()) for k in GROUP_KEYS],
        ("verdict", pa.string()),
        ("reading", pa.string()),
        ("statistic", pa.string()),
        ("threshold", pa.string()),
        ("difference", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int64()),
        ("interval", pa.string()),
        ("n_seeds", pa.int64()),
        ("n_positive", pa.int64()),
        ("premise_met", pa.bool_()),
        ("premise_share", pa.float64()),
        ("premise_detail", pa.string()),
        ("paper_value", pa.float64()),
        ("paper_model", pa.string()),
        ("paper_reported", pa.string()),
        ("detail", pa.string()),
    ]
)


def _claim_row(claim: Claim, key: tuple, measured: list, premise: dict, loss: str | None):
    """One row of ``claims``: ``measured`` = (by-seed row, bootstrap row) per seed."""
    estimates = [_num(s["estimate"]) for _, s in measured]
    interval = combine_seeds(
        estimates, [_replicates(s) for _, s in measured], measured[0][1]["interval"]
    )
    paper, model = reference(claim.paper, *key[:2], loss)
    return {
        "claim": claim.name,
        "label": claim.label,
        "statement": claim.statement,
        "source": claim.source,
        **dict(zip(GROUP_KEYS, key)),
        "verdict": verdict(interval.low, interval.high, interval.estimate),
        "reading": READ_AS_TEST if premise["premise_met"] else PREMISE_NOT_MET,
        "statistic": claim.statistic,
        "threshold": claim.threshold,
        "difference": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n": interval.n,
        "interval": interval.kind,
        "n_seeds": len(measured),
        "n_positive": sum(e is not None and e > 0 for e in estimates),
        **premise,
        "paper_value": None if paper is None else paper.value,
        "paper_model": model,
        "paper_reported": "" if paper is None else paper.reported,
        "detail": "; ".join(
            f"seed {row['seed']}: {claim.detail(row)} (difference {_fmt(s['estimate'], '+.3f')})"
            for row, s in measured
        ),
    }


def measure_claims(
    by_seed: Mapping[str, pa.Table],
    bootstraps: Mapping[tuple, pa.Table],
    losses: Mapping[str, Mapping] | None = None,
) -> pa.Table:
    """One row per (claim, dataset, imbalance, loss) over the imbalanced runs.

    ``by_seed``: the ``*_by_seed`` cross-run tables keyed by name (the words of each seed's
    detail, and ``table2`` the premise); ``bootstraps``: each imbalanced run's
    ``bootstrap.parquet`` keyed by ``(dataset, imbalance, loss, seed)`` (the differences and
    their replicates); ``losses``: the study's loss entries by name (which of the paper's
    models a group compares with, :func:`paper_loss`)."""
    stats = {
        key: {r["statistic"]: r for r in table.to_pylist()} for key, table in bootstraps.items()
    }
    premise_rows = _groups_of(by_seed[PREMISE_TABLE], PREMISE_TABLE)
    premises = {key: group_premise(rows) for key, rows in premise_rows.items()}
    out = []
    for claim in CLAIMS:
        for key, members in _groups_of(by_seed[claim.table], claim.table).items():
            measured = []
            for row in sorted(members, key=lambda r: r["seed"]):
                run_stats = stats.get((*key, row["seed"]))
                if run_stats is None or claim.name not in run_stats:
                    raise KeyError(f"no bootstrap of {claim.name} for run {(*key, row['seed'])}")
                measured.append((row, run_stats[claim.name]))
            premise = premises.get(key) or group_premise([])
            loss = paper_loss((losses or {}).get(key[2]))
            out.append(_claim_row(claim, key, measured, premise, loss))
    return pa.Table.from_pylist(out, schema=CLAIMS_SCHEMA)


def interval_text(row: dict) -> str:
    """A claim's difference with its interval, in words where there is none."""
    if row["difference"] is None:
        return "not measurable"
    if row["ci_low"] is None:
        return f"{row['difference']:+.3f}, no interval"
    return f"{row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def paper_text(row: dict) -> str:
    """The paper's value of a claim row and which model it is ("none" where it prints none)."""
    if not row.get("paper_model"):
        return "none"
    value = row.get("paper_value")
    number = f"{value:+.3f}" if value is not None else "no number"
    return f"{number} ({row['paper_model']}: {row['paper_reported']})"


def verdict_text(row: dict) -> str:
    """The verdict, and beside it that the premise was not met where it was not."""
    if row.get("premise_met") is False:
        return f"{row['verdict']} ({PREMISE_NOT_MET})"
    return row["verdict"]


def claim_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """``claims`` rows by (dataset, imbalance, loss), in order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    return groups


def group_tally(group: list[dict]) -> tuple[int, str]:
    """``(seeds, "4 holds, 1 fails, ...")`` of one run group's claims."""
    tally = ", ".join(
        f"{sum(r['verdict'] == v for r in group)} {v}"
        for v in VERDICTS
        if any(r["verdict"] == v for r in group)
    )
    return max(r["n_seeds"] for r in group), tally


def claims_summary(claims: pa.Table) -> str:
    """:func:`measure_claims` in words, one block per run group: the tally of verdicts, the
    premise, the interval each rests on, then every claim with its difference, 95 % interval,
    the paper's value and each seed's detail."""
    rows = claims.to_pylist()
    lines = [
        "The paper's claims on this study's runs. Each claim is a difference that is positive",
        "when it holds: 'holds' = its 95 % interval lies above 0, 'fails' = below 0,",
        "'inconclusive' = the interval contains 0, 'n/a' = not measurable. Where the paper's",
        "premise (every class's training images memorised: train accuracy >= 0.90) is not",
        "met, a verdict is shown but is not a test of the paper.",
        "",
    ]
    groups = claim_groups(rows)
    for key, group in groups.items():
        n_seeds, tally = group_tally(group)
        kinds = sorted({r["interval"] for r in group if r["interval"] != "none"})
        lines.append(f"{'/'.join(key)} ({n_seeds} seed{'s' if n_seeds != 1 else ''}): {tally}")
        lines.append(f"  {group[0]['premise_detail']}")
        lines.append(f"  intervals: {'; '.join(kinds) or 'none'}")
        for r in group:
            lines.append(f"  [{verdict_text(r)}] {r['label']} ({r['source']})")
            lines.append(f"      the paper: {r['statement']}")
            lines.append(f"      {r['statistic']} ({r['threshold']}): {interval_text(r)}")
            lines.append(f"      paper's value: {paper_text(r)}")
            lines.append(f"      {r['detail']}")
        lines.append("")
    if not groups:
        lines.append("(no imbalanced runs: the claims compare imbalanced models)")
    return "\n".join(lines).rstrip() + "\n"
