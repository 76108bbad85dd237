"""The paper's qualitative claims (SPEC §4, last paragraph), measured with uncertainty.

Each claim is a signed difference that is positive when the claim holds (the definitions
are in :mod:`fragility.analysis.bootstrap`, computed per imbalanced run into its
``uncertainty/bootstrap.parquet``). For a (dataset, imbalance, loss) group the verdict is
*holds* when the 95 % interval of the difference lies above 0, *fails* when it lies below,
*inconclusive* otherwise, and *n/a* when no seed could measure it (no balanced run, a
class never predicted). The interval is a t-interval over seeds when at least three seeds
measured the claim; with fewer it is the stratified bootstrap over images (the mean of the
seeds' replicates), which leaves training randomness out, and the tables and text say so.
The ``*_by_seed`` tables supply the plain-words detail of every seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fragility.analysis.crossrun import GROUP_KEYS, RUN_KEYS
from fragility.analysis.uncertainty import (
    MIN_SEEDS_FOR_VERDICT,
    VERDICTS,
    Interval,
    percentile_interval,
    t_interval,
    verdict,
)
from fragility.catalog import CLAIMS as CATALOG_CLAIMS


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    table: str  # the *_by_seed table its detail is read from
    statistic: str  # the signed difference, positive when the claim holds
    detail: Callable[[dict], str]
    label: str  # a few words, for tables


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
    k = row["smallest_k"]
    if k is None:
        return f"no K covers {row['threshold']:.0%} of the instances"
    return f"smallest K={k} covers {_fmt(row['coverage_at_smallest_k'])}"


def _coverage_detail(row: dict) -> str:
    return (
        f"K={row['k']}: minority covers {_fmt(row['coverage_minority'])}, "
        f"majority {_fmt(row['coverage_majority'])}"
    )


def _roles_detail(prefix: str) -> Callable[[dict], str]:
    def detail(row: dict) -> str:
        return (
            f"majority {_fmt(row[f'majority_{prefix}'])} vs minority "
            f"{_fmt(row[f'minority_{prefix}'])}"
        )

    return detail


def _fb_detail(row: dict) -> str:
    return (
        f"FB(TP) {_fmt(row['frobenius_train_vs_tp'], '.2f')} vs FB(FP) "
        f"{_fmt(row['frobenius_train_vs_fp'], '.2f')}"
    )


# how each claim of :data:`fragility.catalog.CLAIMS` reads in plain words for one seed
DETAILS: dict[str, Callable[[dict], str]] = {
    "bac_order": _bac_detail,
    "minority_overfits": _gap_detail,
    "few_features_decide": _k_detail,
    "minority_smaller_k": _coverage_detail,
    "majority_ce_smaller": _roles_detail("largest_mean_ce"),
    "majority_share_smaller": _roles_detail("largest_share"),
    "tp_closer_than_fp": _fb_detail,
}
CLAIMS: tuple[Claim, ...] = tuple(
    Claim(name, spec.statement, spec.table, spec.statistic, DETAILS[name], spec.label)
    for name, spec in CATALOG_CLAIMS.items()
)
CLAIM_LABELS = {c.name: c.label for c in CLAIMS}


def _coverage_rows(table: pa.Table) -> list[dict]:
    """rq3_coverage by seed (one row per run, role and K) → one row per run at its smallest K."""
    rows: dict[tuple, dict] = {}
    smallest = min(table["k"].to_pylist())
    for r in table.to_pylist():
        if r["k"] != smallest:
            continue
        key = tuple(r[k] for k in RUN_KEYS)
        row = rows.setdefault(key, {**{k: r[k] for k in RUN_KEYS}, "k": smallest})
        row[f"coverage_{r['role']}"] = r["coverage_ratio"]
    return [
        dict({"coverage_majority": None, "coverage_minority": None}, **r) for r in rows.values()
    ]


def bootstrap_note(kind: str, n_seeds: int) -> str:
    """The interval label of a verdict that rests on the bootstrap: what it leaves out."""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
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


def measure_claims(
    by_seed: Mapping[str, pa.Table], bootstraps: Mapping[tuple, pa.Table]
) -> pa.Table:
    """One row per (claim, dataset, imbalance, loss) over the imbalanced runs.

    ``by_seed``: the ``*_by_seed`` cross-run tables keyed by name (the words of each seed's
    detail); ``bootstraps``: each imbalanced run's ``bootstrap.parquet`` keyed by
    ``(dataset, imbalance, loss, seed)`` (the differences and their replicates)."""
    stats = {
        key: {r["statistic"]: r for r in table.to_pylist()} for key, table in bootstraps.items()
    }
    out = []
    for claim in CLAIMS:
        table = by_seed[claim.table]
        rows = _coverage_rows(table) if claim.table == "rq3_coverage" else table.to_pylist()
        groups: dict[tuple, list[dict]] = {}
        for row in rows:
            if row["imbalance"] != "balanced":
                groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
        for key, members in groups.items():
            measured = []
            for row in sorted(members, key=lambda r: r["seed"]):
                run_stats = stats.get((*key, row["seed"]))
                if run_stats is None or claim.name not in run_stats:
                    raise KeyError(f"no bootstrap of {claim.name} for run {(*key, row['seed'])}")
                measured.append((row, run_stats[claim.name]))
            estimates = [_num(s["estimate"]) for _, s in measured]
            interval = combine_seeds(
                estimates, [_replicates(s) for _, s in measured], measured[0][1]["interval"]
            )
            out.append(
                {
                    "claim": claim.name,
                    "statement": claim.statement,
                    **dict(zip(GROUP_KEYS, key)),
                    "verdict": verdict(interval.low, interval.high, interval.estimate),
                    "statistic": claim.statistic,
                    "difference": interval.estimate,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "n": interval.n,
                    "interval": interval.kind,
                    "n_seeds": len(measured),
                    "n_positive": sum(e is not None and e > 0 for e in estimates),
                    "detail": "; ".join(
                        f"seed {row['seed']}: {claim.detail(row)} (difference "
                        f"{_fmt(s['estimate'], '+.3f')})"
                        for row, s in measured
                    ),
                }
            )
    schema = pa.schema(
        [
            ("claim", pa.string()),
            ("statement", pa.string()),
            *[(k, pa.string()) for k in GROUP_KEYS],
            ("verdict", pa.string()),
            ("statistic", pa.string()),
            ("difference", pa.float64()),
            ("ci_low", pa.float64()),
            ("ci_high", pa.float64()),
            ("n", pa.int64()),
            ("interval", pa.string()),
            ("n_seeds", pa.int64()),
            ("n_positive", pa.int64()),
            ("detail", pa.string()),
        ]
    )
    return pa.Table.from_pylist(out, schema=schema)


def _interval_text(row: dict) -> str:
    if row["difference"] is None:
        return "not measurable"
    if row["ci_low"] is None:
        return f"{row['difference']:+.3f}, no interval"
    return f"{row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


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
    interval each rests on, then every claim with its difference and 95 % interval."""
    rows = claims.to_pylist()
    lines = [
        "The paper's claims on this study's runs. Each claim is a difference that is positive",
        "when it holds: 'holds' = its 95 % interval lies above 0, 'fails' = below 0,",
        "'inconclusive' = the interval contains 0, 'n/a' = not measurable.",
        "",
    ]
    groups = claim_groups(rows)
    for key, group in groups.items():
        n_seeds, tally = group_tally(group)
        kinds = sorted({r["interval"] for r in group if r["interval"] != "none"})
        lines.append(f"{'/'.join(key)} ({n_seeds} seed{'s' if n_seeds != 1 else ''}): {tally}")
        lines.append(f"  intervals: {'; '.join(kinds) or 'none'}")
        for r in group:
            lines.append(f"  [{r['verdict']:>12}] {r['statement']}")
            lines.append(f"                 {r['statistic']}: {_interval_text(r)}")
            lines.append(f"                 {r['detail']}")
        lines.append("")
    if not groups:
        lines.append("(no imbalanced runs: the claims compare imbalanced models)")
    return "\n".join(lines).rstrip() + "\n"
