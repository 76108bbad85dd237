"""The paper's qualitative claims (SPEC §4, last paragraph), measured on this study's runs.

Each claim is checked per imbalanced run (one seed) on the ``*_by_seed`` cross-run tables;
a claim *holds* for a (dataset, imbalance, loss) group when it holds in every seed where it
can be measured. A claim that cannot be measured (e.g. the minority class is never
predicted, or there is no balanced run) is reported with ``holds`` null, never as a pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fragility.analysis.crossrun import GROUP_KEYS, RUN_KEYS

MIN_MINORITY_GAP = 0.10  # "far below": the minority's train-test gap is at least 10 points…
MAX_COVERING_K = 7  # the paper: K = 7 of 64 features cover over 94 % of predictions


@dataclass(frozen=True)
class Measured:
    value: float | None  # the claim's statistic for one seed
    holds: bool | None  # None: not measurable on this seed
    detail: str


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    table: str  # the *_by_seed table it reads
    statistic: str  # what ``value`` is
    measure: Callable[[dict], Measured]


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _less(a, b, fmt: str = "{:.3f}") -> tuple[bool | None, str]:
    a, b = _num(a), _num(b)
    if a is None or b is None:
        return None, "not measurable"
    return a < b, f"{fmt.format(a)} vs {fmt.format(b)}"


def _bac_order(row: dict) -> Measured:
    imb, ret, bal = (_num(row[k]) for k in ("imbalanced", "retrained", "balanced"))
    if bal is None:
        return Measured(
            ret - imb, None, f"imbalanced {imb:.3f}, retrained {ret:.3f}, no balanced run"
        )
    holds = imb < ret < bal
    return Measured(
        ret - imb, holds, f"imbalanced {imb:.3f} < retrained {ret:.3f} < balanced {bal:.3f}"
    )


def _minority_gap(row: dict) -> Measured:
    gap_min = _num(row["train_acc_minority"]) - _num(row["test_acc_minority"])
    gap_maj = _num(row["train_acc_majority"]) - _num(row["test_acc_majority"])
    holds = gap_min >= MIN_MINORITY_GAP and gap_min > gap_maj
    return Measured(
        gap_min,
        holds,
        f"minority train {row['train_acc_minority']:.3f} / test {row['test_acc_minority']:.3f}; "
        f"majority train {row['train_acc_majority']:.3f} / test {row['test_acc_majority']:.3f}",
    )


def _smaller_k(row: dict) -> Measured:
    maj, mino = _num(row["coverage_majority"]), _num(row["coverage_minority"])
    if maj is None or mino is None:
        return Measured(None, None, f"K={row['k']}: a class is never predicted")
    return Measured(
        mino - maj, mino >= maj, f"K={row['k']}: minority covers {mino:.3f}, majority {maj:.3f}"
    )


def _few_features(row: dict) -> Measured:
    k = row["smallest_k"]
    if k is None:
        return Measured(None, False, f"no K covers {row['threshold']:.0%} of the instances")
    return Measured(
        float(k), k <= MAX_COVERING_K, f"K={k} covers {row['coverage_at_smallest_k']:.3f}"
    )


def _majority_smaller(prefix: str) -> Callable[[dict], Measured]:
    def measure(row: dict) -> Measured:
        maj, mino = row[f"majority_{prefix}"], row[f"minority_{prefix}"]
        holds, detail = _less(maj, mino)
        value = None if holds is None else _num(mino) - _num(maj)
        return Measured(value, holds, f"majority vs minority: {detail}")

    return measure


def _tp_below_fp(row: dict) -> Measured:
    holds, detail = _less(row["frobenius_train_vs_tp"], row["frobenius_train_vs_fp"], "{:.2f}")
    value = (
        None
        if holds is None
        else _num(row["frobenius_train_vs_fp"]) - _num(row["frobenius_train_vs_tp"])
    )
    return Measured(value, holds, f"FB(TP) vs FB(FP): {detail}")


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "bac_order",
        "imbalanced < retrained-classifier < balanced test BAC (RQ1)",
        "table1",
        "retrained BAC - imbalanced BAC",
        _bac_order,
    ),
    Claim(
        "minority_overfits",
        f"minority test accuracy far below its train accuracy (gap >= {MIN_MINORITY_GAP:.2f} "
        "and above the majority's gap) (RQ2)",
        "table2",
        "minority train - test accuracy",
        _minority_gap,
    ),
    Claim(
        "few_features_decide",
        f"a few features decide: the top-K ce with K <= {MAX_COVERING_K} cover the threshold share "
        "of all predictions (RQ3)",
        "rq3_smallest_k",
        "smallest covering K",
        _few_features,
    ),
    Claim(
        "minority_smaller_k",
        "minority classes are covered with smaller K: at the smallest K, the minority's coverage "
        "ratio is at least the majority's (RQ3)",
        "rq3_coverage",
        "minority - majority coverage ratio at the smallest K",
        _smaller_k,
    ),
    Claim(
        "majority_ce_smaller",
        "the majority class's largest class-mean ce is smaller than the minority's (RQ4, Table 3)",
        "table3",
        "minority - majority largest class-mean ce",
        _majority_smaller("largest_mean_ce"),
    ),
    Claim(
        "majority_share_smaller",
        "the majority class's largest share of the logit is smaller than the minority's "
        "(RQ4, Table 4)",
        "table4",
        "minority - majority largest logit share",
        _majority_smaller("largest_share"),
    ),
    Claim(
        "tp_closer_than_fp",
        "test true positives keep the training FE means, false positives do not: FB(TP) < FB(FP) "
        "(RQ7)",
        "rq7_generalization",
        "FB(FP) - FB(TP)",
        _tp_below_fp,
    ),
)

CLAIM_TABLES = tuple(dict.fromkeys(c.table for c in CLAIMS))


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


def measure_claims(by_seed: Mapping[str, pa.Table]) -> pa.Table:
    """One row per (claim, dataset, imbalance, loss) over the imbalanced runs of the
    ``*_by_seed`` tables in ``by_seed`` (keyed by cross-run table name)."""
    out = []
    for claim in CLAIMS:
        table = by_seed[claim.table]
        rows = _coverage_rows(table) if claim.table == "rq3_coverage" else table.to_pylist()
        groups: dict[tuple, list[Measured]] = {}
        for row in rows:
            if row["imbalance"] == "balanced":
                continue
            groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(claim.measure(row))
        for key, measured in groups.items():
            known = [m for m in measured if m.holds is not None]
            values = np.array([m.value for m in measured if m.value is not None], dtype=float)
            out.append(
                {
                    "claim": claim.name,
                    "statement": claim.statement,
                    **dict(zip(GROUP_KEYS, key)),
                    "n_seeds": len(measured),
                    "n_holding": sum(bool(m.holds) for m in known),
                    "holds": all(m.holds for m in known) if known else None,
                    "statistic": claim.statistic,
                    "value_mean": float(values.mean()) if len(values) else None,
                    "value_std": float(values.std(ddof=1)) if len(values) > 1 else None,
                    "detail": "; ".join(m.detail for m in measured),
                }
            )
    schema = pa.schema(
        [
            ("claim", pa.string()),
            ("statement", pa.string()),
            *[(k, pa.string()) for k in GROUP_KEYS],
            ("n_seeds", pa.int64()),
            ("n_holding", pa.int64()),
            ("holds", pa.bool_()),
            ("statistic", pa.string()),
            ("value_mean", pa.float64()),
            ("value_std", pa.float64()),
            ("detail", pa.string()),
        ]
    )
    return pa.Table.from_pylist(out, schema=schema)


def claims_summary(claims: pa.Table) -> str:
    """A short plain-text summary of :func:`measure_claims`, one block per run group."""
    rows = claims.to_pylist()
    lines = ["The paper's claims on this study's runs (holds = in every seed where measurable)", ""]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    for key, group in groups.items():
        n_seeds = max(r["n_seeds"] for r in group)
        held = sum(r["holds"] is True for r in group)
        measurable = sum(r["holds"] is not None for r in group)
        lines.append(
            f"{'/'.join(key)} ({n_seeds} seed{'s' if n_seeds != 1 else ''}): "
            f"{held} of {measurable} measurable claims hold"
        )
        for r in group:
            verdict = {True: "holds", False: "fails", None: "n/a"}[r["holds"]]
            lines.append(f"  [{verdict:>5}] {r['statement']}: {r['detail']}")
        lines.append("")
    if not groups:
        lines.append("(no imbalanced runs: the claims compare imbalanced models)")
    return "\n".join(lines).rstrip() + "\n"
