"""Fragility curves (docs/metrics-and-claims.md): every claim statistic and every remedy's
gain against the imbalance ratio R, for runs that differ only in R.

The inputs are the cross-run ``*_by_seed`` tables (one row per run) and
``remedies_by_seed``; the imbalance spec is parsed by :class:`fragility.data.splits.Imbalance`
(``balanced`` is R = 1, ``exp{R}`` and ``step{R}`` are two *families*). A curve is a
(dataset, loss, family) group; the balanced runs of the same dataset and loss are its R = 1
point, shared by both families.

- :func:`per_run_values`: one row per run with the statistics of one source table.
- :func:`curve_table`: one row per (dataset, family, R, loss) with ``{stat}_mean``,
  ``{stat}_ci_low``, ``{stat}_ci_high``, ``{stat}_n`` (a t-interval over seeds,
  :func:`fragility.analysis.uncertainty.t_interval`) and ``n_seeds``.
- :func:`joined_curve_table`: the curve tables of every source side by side.
- :func:`claims_curve_table`: each claim's difference and verdict interval from
  ``claims.parquet``, in the same shape (the claims figure).
- :func:`smallest_ratio_table`: for each claim and curve, the smallest R at which the
  claim's verdict is ``holds`` (from ``claims.parquet``), or "never in the range".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from fragility.analysis.uncertainty import CONFIDENCE, t_interval
from fragility.catalog.outputs import CLAIMS_TABLE, REMEDY_TABLE, CurveFigure
from fragility.data.splits import Imbalance
from fragility.errors import ConfigError, FragilityError

CURVE_KEYS = ("dataset", "family", "ratio", "imbalance", "loss")
NEVER = "never in the range"
REMEDY_SOURCE = REMEDY_TABLE  # remedies_by_seed: every remedy's gain
CLAIMS_SOURCE = CLAIMS_TABLE  # claims.parquet: each claim's difference and verdict interval


def ratio_of(imbalance: str) -> tuple[str, float]:
    """``(family, R)`` of an imbalance spec: ``("balanced", 1.0)``, ``("exp", 100.0)``, …"""
    parsed = Imbalance.parse(imbalance)
    return parsed.kind, float(parsed.ratio)


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN is "not measured", as null is


# -- statistics: one value per run, from one by-seed table -----------------------------------


@dataclass(frozen=True)
class Statistic:
    """A number measured once per run: ``value(row)`` on a row of ``source``'s per-run rows
    (see :data:`SOURCES`); ``claim`` names the claim of :mod:`fragility.analysis.claims`
    it bears on."""

    source: str
    label: str  # axis label, plain words
    claim: str
    value: Callable[[dict], float | None]


def _column(name: str) -> Callable[[dict], float | None]:
    return lambda row: _num(row.get(name))


def _gap(role: str) -> Callable[[dict], float | None]:
    def value(row: dict) -> float | None:
        train, test = _num(row.get(f"train_acc_{role}")), _num(row.get(f"test_acc_{role}"))
        return None if train is None or test is None else train - test

    return value


STATISTICS: dict[str, Statistic] = {
    "bac": Statistic("table1", "test BAC of the model", "bac_order", _column("imbalanced")),
    "bac_retrained": Statistic(
        "table1",
        "test BAC, classifier re-trained on balanced FE",
        "bac_order",
        _column("retrained"),
    ),
    "bac_balanced": Statistic(
        "table1", "test BAC of the balanced model", "bac_order", _column("balanced")
    ),
    "retrain_gain": Statistic(
        "table1", "re-trained − model test BAC", "bac_order", _column("retrain_gain")
    ),
    "minority_gap": Statistic(
        "table2", "minority train − test accuracy", "minority_overfits", _gap("minority")
    ),
    "majority_gap": Statistic(
        "table2", "majority train − test accuracy", "minority_overfits", _gap("majority")
    ),
    "lowest_train_acc": Statistic(
        "table2", "lowest class train accuracy (the premise)", "", _column("lowest_train_acc")
    ),
    "smallest_k": Statistic(
        "rq3_smallest_k",
        "smallest K covering 90 %",
        "few_features_decide",
        _column("smallest_k_90"),
    ),
    "coverage_minority": Statistic(
        "rq3_coverage",
        "minority group's coverage at the smallest K",
        "minority_smaller_k",
        _column("coverage_minority_group"),
    ),
    "coverage_majority": Statistic(
        "rq3_coverage",
        "majority group's coverage at the smallest K",
        "minority_smaller_k",
        _column("coverage_majority_group"),
    ),
    "others_largest_mean_ce": Statistic(
        "table3",
        "other classes' largest class-mean ce (mean)",
        "majority_ce_smaller",
        _column("others_mean_largest_mean_ce"),
    ),
    "majority_largest_mean_ce": Statistic(
        "table3",
        "majority's largest class-mean ce",
        "majority_ce_smaller",
        _column("majority_largest_mean_ce"),
    ),
    "others_largest_share": Statistic(
        "table4",
        "other classes' largest logit share (mean)",
        "majority_share_smaller",
        _column("others_mean_largest_share"),
    ),
    "majority_largest_share": Statistic(
        "table4",
        "majority's largest logit share",
        "majority_share_smaller",
        _column("majority_largest_share"),
    ),
    "minority_weight_sum": Statistic(
        "rq5_weight_sums",
        "minority: sum of ten largest |W|",
        "majority_weights_larger",
        _column("minority_top_abs_w_sum"),
    ),
    "majority_weight_sum": Statistic(
        "rq5_weight_sums",
        "majority: sum of ten largest |W|",
        "majority_weights_larger",
        _column("majority_top_abs_w_sum"),
    ),
    "ce_to_w": Statistic(
        "rq5_weight_sums",
        "largest class-mean ce / largest |W|",
        "ce_far_above_weights",
        _column("ratio_ce_to_w"),
    ),
    "top_share_minority": Statistic(
        "rq6_diversity",
        "minority group: share holding its top feature",
        "minority_features_frequent",
        _column("top_member_share_minority_group"),
    ),
    "top_share_majority": Statistic(
        "rq6_diversity",
        "majority group: share holding its top feature",
        "minority_features_frequent",
        _column("top_member_share_majority_group"),
    ),
    "members_majority": Statistic(
        "rq6_diversity",
        "majority: top-K members needed",
        "majority_needs_more_members",
        _column("members_needed_majority"),
    ),
    "members_minority": Statistic(
        "rq6_diversity",
        "minority: top-K members needed",
        "majority_needs_more_members",
        _column("members_needed_minority"),
    ),
    "fb_tp": Statistic(
        "rq7_generalization",
        "FB(TP), size-matched to the FP",
        "tp_closer_than_fp",
        _column("frobenius_train_vs_tp_matched"),
    ),  # fmt: skip
    "fb_fp": Statistic(
        "rq7_generalization",
        "FB(FP): train vs test FP means",
        "tp_closer_than_fp",
        _column("frobenius_train_vs_fp_matched"),
    ),  # fmt: skip
}


# the claim statistics' by-seed tables (the remedy gains come from remedies_by_seed)
CURVE_SOURCES = tuple(dict.fromkeys(s.source for s in STATISTICS.values()))


# -- sources: a by-seed table as one row per run -----------------------------------------------


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def _table1_rows(table: pa.Table) -> list[dict]:
    """Table 1 holds imbalanced runs only; the balanced model's BAC (column ``balanced``)
    becomes an R = 1 row of the balanced run itself: its loss (``balanced_loss``: the same
    loss when that balanced run exists, else cross-entropy) and its seed (``balanced_seed``:
    one balanced run may serve several imbalanced seeds, and counts once)."""
    rows = _rows(table)
    balanced: dict[tuple, dict] = {}
    for row in rows:
        bac = _num(row.get("balanced"))
        if bac is None:
            continue
        loss = row.get("balanced_loss") or row["loss"]
        seed = row.get("balanced_seed")
        seed = row["seed"] if seed is None else int(seed)
        balanced.setdefault(
            (row["dataset"], loss, seed),
            {
                "dataset": row["dataset"],
                "imbalance": "balanced",
                "loss": loss,
                "seed": seed,
                "imbalanced": bac,
                "balanced": bac,
            },
        )
    return rows + list(balanced.values())


def _coverage_rows(table: pa.Table) -> list[dict]:
    """rq3_coverage (a row per run and K) as the row of each run's smallest K."""
    rows = _rows(table)
    if not rows:
        return []
    smallest = min(r["k"] for r in rows)
    return [r for r in rows if r["k"] == smallest]


def _remedy_rows(table: pa.Table) -> list[dict]:
    """remedies_by_seed (a row per treated run and method) as a row per treated run with
    ``gain_{remedy}`` = the method's test BAC minus the untreated model's, same seed."""
    out: dict[tuple, dict] = {}
    for r in _rows(table):
        if r["kind"] == "untreated":
            continue
        key = (r["dataset"], r["imbalance"], r["base_loss"], r["seed"])
        run = out.setdefault(key, dict(zip(("dataset", "imbalance", "loss", "seed"), key)))
        run[f"gain_{r['remedy']}"] = r["bac_gain"]
    return list(out.values())


SOURCES: dict[str, Callable[[pa.Table], list[dict]]] = {
    "table1": _table1_rows,
    "table2": _rows,
    "rq3_smallest_k": _rows,
    "rq3_coverage": _coverage_rows,
    "table3": _rows,
    "table4": _rows,
    "rq5_weight_sums": _rows,
    "rq6_diversity": _rows,
    "rq7_generalization": _rows,
    REMEDY_SOURCE: _remedy_rows,
}


def remedy_statistics(table: pa.Table) -> dict[str, Statistic]:
    """One gain statistic per remedy in ``remedies_by_seed`` (feature-space and loss-level)."""
    kinds = zip(table["remedy"].to_pylist(), table["kind"].to_pylist())
    names = dict.fromkeys(remedy for remedy, kind in kinds if kind != "untreated")
    return {
        f"gain_{name}": Statistic(
            REMEDY_SOURCE, label_of(f"gain_{name}"), "", _column(f"gain_{name}")
        )
        for name in names
    }


def source_of(stat: str) -> str:
    """The by-seed table statistic ``stat`` is read from (``gain_*``: the remedies table)."""
    return STATISTICS[stat].source if stat in STATISTICS else REMEDY_SOURCE


def label_of(stat: str) -> str:
    """Plain-words name of statistic ``stat`` (an axis or panel label)."""
    if stat in STATISTICS:
        return STATISTICS[stat].label
    return f"{stat.removeprefix('gain_')}: test BAC gain"


def figure_sources(spec: CurveFigure) -> tuple[str, ...]:
    """The sources (:func:`curve_input`) whose curve tables curve figure ``spec`` draws."""
    if spec.every_stat_of:
        return (spec.every_stat_of,)
    return tuple(dict.fromkeys(source_of(stat) for stat, _ in spec.panels))


def curve_stats(curve: pa.Table) -> list[str]:
    """The statistics a curve table holds, in its column order."""
    return [c.removesuffix("_mean") for c in curve.column_names if c.endswith("_mean")]


def statistics_of(source: str, table: pa.Table | None = None) -> dict[str, Statistic]:
    """The statistics read from by-seed table ``source`` (remedy gains need the table)."""
    if source == REMEDY_SOURCE:
        if table is None:
            raise ValueError("the remedy gains are named by the remedies_by_seed table")
        return remedy_statistics(table)
    return {name: s for name, s in STATISTICS.items() if s.source == source}


def per_run_values(source: str, table: pa.Table) -> list[dict]:
    """One dict per run of by-seed table ``source``: ``dataset, family, ratio, imbalance,
    loss, seed`` and the value of each of its statistics (None when not measured)."""
    if source not in SOURCES:
        raise ConfigError(f"unknown curve source {source!r}; choose one of {sorted(SOURCES)}")
    stats = statistics_of(source, table)
    out = []
    for row in SOURCES[source](table):
        family, ratio = ratio_of(row["imbalance"])
        values = {
            "dataset": row["dataset"],
            "family": family,
            "ratio": ratio,
            "imbalance": row["imbalance"],
            "loss": row["loss"],
            "seed": int(row["seed"]),
        }
        values.update({name: stat.value(row) for name, stat in stats.items()})
        out.append(values)
    return out


# -- curves ---------------------------------------------------------------------------------


def curve_groups(runs: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], list[float]]:
    """The curves among ``(dataset, imbalance, loss)`` runs: ``(dataset, loss, family)`` ->
    its sorted ratios R > 1, for every family with at least two of them (runs that differ
    only in R). The balanced run of the dataset and loss, if any, is their R = 1 point."""
    ratios: dict[tuple[str, str, str], set[float]] = {}
    for dataset, imbalance, loss in runs:
        family, ratio = ratio_of(imbalance)
        if family != "balanced":
            ratios.setdefault((dataset, loss, family), set()).add(ratio)
    return {key: sorted(r) for key, r in sorted(ratios.items()) if len(r) >= 2}


def curve_table(
    rows: Sequence[Mapping], stats: Sequence[str], confidence: float = CONFIDENCE
) -> pa.Table:
    """One row per (dataset, family, R, imbalance, loss) of per-run ``rows`` (as from
    :func:`per_run_values`), sorted by dataset, loss, family and R: ``n_seeds`` (runs in the
    group) and, for each statistic, ``{stat}_mean``, ``{stat}_ci_low``, ``{stat}_ci_high``
    (the t-interval over the seeds where it was measured; null below two) and ``{stat}_n``."""
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in CURVE_KEYS), []).append(row)
    order = sorted(groups, key=lambda k: (k[0], k[4], k[1] != "balanced", k[1], k[2]))
    cols: dict[str, list] = {k: [key[i] for key in order] for i, k in enumerate(CURVE_KEYS)}
    cols["n_seeds"] = [len(groups[key]) for key in order]
    for stat in stats:
        intervals = [t_interval([r.get(stat) for r in groups[key]], confidence) for key in order]
        cols[f"{stat}_mean"] = [i.estimate for i in intervals]
        cols[f"{stat}_ci_low"] = [i.low for i in intervals]
        cols[f"{stat}_ci_high"] = [i.high for i in intervals]
        cols[f"{stat}_n"] = [i.n for i in intervals]
    schema = [
        ("dataset", pa.string()),
        ("family", pa.string()),
        ("ratio", pa.float64()),
        ("imbalance", pa.string()),
        ("loss", pa.string()),
        ("n_seeds", pa.int64()),
    ]
    for stat in stats:
        schema += [(f"{stat}_{p}", pa.float64()) for p in ("mean", "ci_low", "ci_high")]
        schema.append((f"{stat}_n", pa.int64()))
    return pa.table(cols, schema=pa.schema(schema))


def source_curve_table(source: str, by_seed: pa.Table) -> pa.Table:
    """The curve table of every statistic of by-seed table ``source``."""
    stats = statistics_of(source, by_seed)
    return curve_table(per_run_values(source, by_seed), list(stats))


def joined_curve_table(tables: Sequence[pa.Table]) -> pa.Table:
    """Curve tables of several sources side by side: one row per (dataset, family, R,
    imbalance, loss) found in any of them, every statistic's columns (null where a source
    has no such row) and ``n_seeds`` the most runs any source saw in that row."""
    rows: dict[tuple, dict] = {}
    stat_columns: list[str] = []
    for table in tables:
        columns = [c for c in table.column_names if c not in (*CURVE_KEYS, "n_seeds")]
        stat_columns += [c for c in columns if c not in stat_columns]
        for r in table.to_pylist():
            key = tuple(r[k] for k in CURVE_KEYS)
            row = rows.setdefault(key, {**dict(zip(CURVE_KEYS, key)), "n_seeds": 0})
            row["n_seeds"] = max(row["n_seeds"], r["n_seeds"])
            row.update({c: r[c] for c in columns})
    order = sorted(rows, key=lambda k: (k[0], k[4], k[1] != "balanced", k[1], k[2]))
    schema = [
        *[(k, pa.float64() if k == "ratio" else pa.string()) for k in CURVE_KEYS],
        ("n_seeds", pa.int64()),
        *[(c, pa.int64() if c.endswith("_n") else pa.float64()) for c in stat_columns],
    ]
    return pa.Table.from_pylist([rows[k] for k in order], schema=pa.schema(schema))


def claims_curve_table(claims: pa.Table) -> pa.Table:
    """``claims.parquet`` (a row per claim, dataset, imbalance and loss) as a curve table:
    a row per (dataset, family, R, imbalance, loss) of the imbalanced runs with, per claim,
    ``{claim}_mean`` (its signed difference, positive on the claimed side), ``{claim}_ci_low``,
    ``{claim}_ci_high`` (the interval its verdict rests on) and ``{claim}_n``."""
    rows: dict[tuple, dict] = {}
    names: list[str] = []
    for r in claims.to_pylist():
        family, ratio = ratio_of(r["imbalance"])
        if family == "balanced":
            continue
        key = (r["dataset"], family, ratio, r["imbalance"], r["loss"])
        row = rows.setdefault(key, {**dict(zip(CURVE_KEYS, key)), "n_seeds": 0})
        row["n_seeds"] = max(row["n_seeds"], r.get("n_seeds") or r.get("n") or 0)
        names += [r["claim"]] if r["claim"] not in names else []
        row.update(
            {
                f"{r['claim']}_mean": _num(r.get("difference")),
                f"{r['claim']}_ci_low": _num(r.get("ci_low")),
                f"{r['claim']}_ci_high": _num(r.get("ci_high")),
                f"{r['claim']}_n": r.get("n"),
            }
        )
    order = sorted(rows, key=lambda k: (k[0], k[4], k[1], k[2]))
    schema = [
        *[(k, pa.float64() if k == "ratio" else pa.string()) for k in CURVE_KEYS],
        ("n_seeds", pa.int64()),
    ]
    for name in names:
        schema += [(f"{name}_{p}", pa.float64()) for p in ("mean", "ci_low", "ci_high")]
        schema.append((f"{name}_n", pa.int64()))
    return pa.Table.from_pylist([rows[k] for k in order], schema=pa.schema(schema))


def curve_input(source: str) -> str:
    """The cross-run table (under ``{results}/tables/``, ``catalog.Layout.table``) a curve of
    ``source`` is computed from."""
    return CLAIMS_SOURCE if source == CLAIMS_SOURCE else f"{source}_by_seed"


def curve_of(source: str, table: pa.Table) -> pa.Table:
    """The curve table of ``source`` from its input table (see :func:`curve_input`)."""
    if source == CLAIMS_SOURCE:
        return claims_curve_table(table)
    return source_curve_table(source, table)


def balanced_row(curves: pa.Table, dataset: str, loss: str) -> dict | None:
    """The balanced (R = 1) row a curve of ``dataset`` and ``loss`` is compared with: the
    same loss when that balanced run exists, else cross-entropy's (Table 1's rule)."""
    rows = [r for r in curves.to_pylist() if r["family"] == "balanced" and r["dataset"] == dataset]
    for wanted in (loss, "ce"):
        for r in rows:
            if r["loss"] == wanted:
                return r
    return None


# -- where each claim starts to hold ------------------------------------------------------------

SMALLEST_RATIO_SCHEMA = pa.schema(
    [
        ("claim", pa.string()),
        ("statement", pa.string()),
        ("dataset", pa.string()),
        ("family", pa.string()),
        ("loss", pa.string()),
        ("smallest_ratio", pa.float64()),
        ("smallest_imbalance", pa.string()),
        ("holds_at_every_larger_ratio", pa.bool_()),
        ("difference", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int64()),
        ("interval", pa.string()),
        ("ratios", pa.string()),
        ("verdicts", pa.string()),
    ]
)


def _ratio_text(ratio: float) -> str:
    return f"{ratio:g}"


def smallest_ratio_table(claims: pa.Table) -> pa.Table:
    """For each (claim, dataset, family, loss) of ``claims`` (one row per claim, dataset,
    imbalance and loss with a ``verdict``, as ``claims.parquet``), the smallest R whose
    verdict is ``holds`` with that row's difference and interval, whether it holds at every
    larger R too, the ratios tested and the verdict at each; ``smallest_imbalance`` is
    "never in the range" (and ``smallest_ratio`` null) when it holds at none. Balanced rows
    are left out: a claim compares an imbalanced model."""
    needed = {"claim", "statement", "dataset", "imbalance", "loss", "verdict"}
    missing = needed - set(claims.column_names)
    if missing:
        raise FragilityError(f"the claims table lacks the columns {sorted(missing)}")
    groups: dict[tuple, list[tuple[float, dict]]] = {}
    for row in claims.to_pylist():
        family, ratio = ratio_of(row["imbalance"])
        if family == "balanced":
            continue
        key = (row["claim"], row["dataset"], family, row["loss"])
        groups.setdefault(key, []).append((ratio, row))
    out = []
    for (claim, dataset, family, loss), members in groups.items():
        members.sort(key=lambda m: m[0])
        holding = [i for i, (_, r) in enumerate(members) if r["verdict"] == "holds"]
        first = members[holding[0]][1] if holding else {}
        out.append(
            {
                "claim": claim,
                "statement": members[0][1]["statement"],
                "dataset": dataset,
                "family": family,
                "loss": loss,
                "smallest_ratio": members[holding[0]][0] if holding else None,
                "smallest_imbalance": first.get("imbalance", NEVER),
                "holds_at_every_larger_ratio": (
                    all(r["verdict"] == "holds" for _, r in members[holding[0] :])
                    if holding
                    else None
                ),
                "difference": _num(first.get("difference")),
                "ci_low": _num(first.get("ci_low")),
                "ci_high": _num(first.get("ci_high")),
                "n": first.get("n"),
                "interval": first.get("interval"),
                "ratios": ", ".join(_ratio_text(r) for r, _ in members),
                "verdicts": ", ".join(f"{_ratio_text(r)}: {m['verdict']}" for r, m in members),
            }
        )
    out.sort(key=lambda r: (r["dataset"], r["loss"], r["family"], r["claim"]))
    return pa.Table.from_pylist(out, schema=SMALLEST_RATIO_SCHEMA)
