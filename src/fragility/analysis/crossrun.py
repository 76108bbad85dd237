"""Cross-run tables (SPEC §4, §6): the per-run tables of many runs, side by side and
summarised over seeds, and the paper's qualitative claims checked on them.

Every cross-run table exists twice: ``{name}_by_seed`` holds one row per run (the run's
``dataset``, ``imbalance``, ``loss``, ``seed`` followed by its per-run row), and ``{name}``
holds one row per (dataset, imbalance, loss) with ``{column}_mean`` and ``{column}_std``
(sample standard deviation, null for a single seed) of every numeric column and
``n_seeds``. Columns that do not vary over seeds (class names, roles) are kept as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fragility.analysis.rq1 import table1 as table1_row
from fragility.errors import FragilityError

GROUP_KEYS = ("dataset", "imbalance", "loss")
RUN_KEYS = (*GROUP_KEYS, "seed")


@dataclass(frozen=True)
class RunRef:
    """One run of the study and the folder holding its outputs."""

    dataset: str
    imbalance: str
    loss: str
    seed: int
    run_dir: str

    @property
    def balanced(self) -> bool:
        return self.imbalance == "balanced"

    def keys(self) -> dict:
        return {
            "dataset": self.dataset,
            "imbalance": self.imbalance,
            "loss": self.loss,
            "seed": self.seed,
        }


def _read(run: RunRef, relative: str) -> pa.Table:
    path = Path(run.run_dir) / relative
    if not path.is_file():
        raise FragilityError(f"{path} is missing; build the per-run tables of {run.run_dir} first")
    return pq.read_table(path)


def _tagged(run: RunRef, table: pa.Table) -> pa.Table:
    """``table`` with the run's keys as its first columns."""
    keys = run.keys()
    n = table.num_rows
    cols = {
        k: pa.array([v] * n, type=pa.int64() if k == "seed" else pa.string())
        for k, v in keys.items()
    }
    for name in table.column_names:
        if name not in cols:
            cols[name] = table[name]
    return pa.table(cols)


def stack(
    runs: Sequence[RunRef], relative: str, where: Callable[[pa.Table], pa.Table] | None = None
) -> pa.Table:
    """The per-run table ``relative`` (e.g. ``rq2/table2.parquet``) of every run, one
    under the other, each row tagged with its run's keys; ``where`` filters each table."""
    parts = []
    for run in runs:
        table = _read(run, relative)
        parts.append(_tagged(run, where(table) if where else table))
    if not parts:
        raise FragilityError(f"no runs to collect {relative} from")
    return pa.concat_tables(parts, promote_options="default")


def _numeric(type_: pa.DataType) -> bool:
    return pa.types.is_floating(type_) or pa.types.is_integer(type_)


def _identity(column: str) -> bool:
    """Integer columns that name something (a class, K) rather than measure it."""
    return column in ("class", "k", "n_top") or column.endswith("_class")


def over_seeds(by_seed: pa.Table, keys: Sequence[str] = GROUP_KEYS) -> pa.Table:
    """One row per ``keys`` group of ``by_seed``: mean and sample std of numeric columns,
    the value itself for identity columns (class indices, K) and text that does not vary,
    ``all`` for booleans, and ``n_seeds``."""
    key_cols = [by_seed[k].to_pylist() for k in keys]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*key_cols)):
        groups.setdefault(key, []).append(i)
    extra_keys = [c for c in by_seed.column_names if c not in keys and c != "seed"]
    out: dict[str, list] = {k: [g[j] for g in groups] for j, k in enumerate(keys)}
    out["n_seeds"] = [len(rows) for rows in groups.values()]
    for name in extra_keys:
        column = by_seed[name]
        values = column.to_pylist()
        per_group = [[values[i] for i in rows] for rows in groups.values()]
        if pa.types.is_boolean(column.type):
            out[name] = [all(v is True for v in g) for g in per_group]
        elif _identity(name) and all(len(set(g)) == 1 for g in per_group):
            out[name] = [g[0] for g in per_group]
        elif _numeric(column.type):
            means, stds = [], []
            for g in per_group:
                x = np.array([np.nan if v is None else v for v in g], dtype=np.float64)
                x = x[~np.isnan(x)]
                means.append(float(x.mean()) if len(x) else None)
                stds.append(float(x.std(ddof=1)) if len(x) > 1 else None)
            out[f"{name}_mean"] = means
            out[f"{name}_std"] = stds
        else:
            out[name] = [
                g[0] if len(set(g)) == 1 else "/".join(map(str, dict.fromkeys(g)))
                for g in per_group
            ]
    return pa.table(out)


# -- the cross-run tables -------------------------------------------------------------------


def _metrics(path: Path) -> dict:
    if not path.is_file():
        raise FragilityError(f"{path} is missing; run that model or remedy first")
    return json.loads(path.read_text())


def _bac(run: RunRef) -> float:
    return float(_metrics(Path(run.run_dir) / "metrics.json")["bac"])


def balanced_partner(run: RunRef, runs: Sequence[RunRef]) -> RunRef | None:
    """The balanced run Table 1 compares ``run`` with: same dataset and seed, the same loss
    when such a run exists, else the cross-entropy one (the paper's balanced column)."""
    candidates = [r for r in runs if r.balanced and r.dataset == run.dataset and r.seed == run.seed]
    for loss in (run.loss, "ce"):
        for r in candidates:
            if r.loss == loss:
                return r
    return None


def table1_by_seed(runs: Sequence[RunRef], all_runs: Sequence[RunRef]) -> pa.Table:
    """RQ1 / Table 1 per imbalanced run: test BAC of the balanced model, of the imbalanced
    model, and of the imbalanced extractor with a classifier re-trained on the pool FE."""
    rows = []
    for run in runs:
        retrained = _read(run, "rq1/retrained.parquet")
        partner = balanced_partner(run, all_runs)
        row = table1_row(
            None if partner is None else _bac(partner),
            _bac(run),
            float(retrained["bac_retrained"][0].as_py()),
        )
        rows.append(
            dict(
                run.keys(),
                balanced_loss=None if partner is None else partner.loss,
                **{k: v[0] for k, v in row.items() if k != "description"},
            )
        )
    if not rows:
        raise FragilityError("Table 1 needs at least one imbalanced run with its RQ1 re-training")
    table = pa.Table.from_pylist(rows)
    return table.set_column(
        table.schema.get_field_index("balanced"),
        "balanced",
        pc.if_else(pc.is_nan(table["balanced"]), None, table["balanced"]),
    )


def _role_rows(table: pa.Table) -> pa.Table:
    return table.filter(pc.is_in(table["role"], pa.array(["majority", "minority"])))


@dataclass(frozen=True)
class CrossRunTable:
    """A cross-run table: the per-run files it reads and how it combines them."""

    inputs: tuple[str, ...]  # relative to a run folder
    imbalanced_only: bool
    build: Callable[[Sequence[RunRef], Sequence[RunRef]], pa.Table]
    description: str


def _stacked(relative: str, where=None):
    return lambda runs, all_runs: stack(runs, relative, where)


CROSS_RUN_TABLES: dict[str, CrossRunTable] = {
    "table1": CrossRunTable(
        ("metrics.json", "rq1/retrained.parquet"),
        True,
        table1_by_seed,
        "RQ1: test BAC of the balanced, the imbalanced and the re-trained-classifier model",
    ),
    "table2": CrossRunTable(
        ("rq2/table2.parquet",),
        False,
        _stacked("rq2/table2.parquet"),
        "RQ2: train and test accuracy of the largest and the smallest class",
    ),
    "rq3_coverage": CrossRunTable(
        ("rq3/topk_coverage.parquet",),
        False,
        _stacked("rq3/topk_coverage.parquet", _role_rows),
        "RQ3: top-K coverage ratio of the majority and the minority class, per K",
    ),
    "rq3_smallest_k": CrossRunTable(
        ("rq3/smallest_k.parquet",),
        False,
        _stacked("rq3/smallest_k.parquet"),
        "RQ3: the smallest K whose top-K ce cover the threshold share of all instances",
    ),
    "table3": CrossRunTable(
        ("rq4/table3.parquet",),
        False,
        _stacked("rq4/table3.parquet"),
        "RQ4: largest class-mean ce of the majority class against the other classes",
    ),
    "table4": CrossRunTable(
        ("rq4/table4.parquet",),
        False,
        _stacked("rq4/table4.parquet"),
        "RQ4: largest share of the logit from one ce, majority against the other classes",
    ),
    "rq5_weight_sums": CrossRunTable(
        ("rq5/weight_sums.parquet",),
        False,
        _stacked("rq5/weight_sums.parquet"),
        "RQ5: sums of the ten largest absolute weights of the majority and the minority class, and the largest weight against the largest class-mean ce",
    ),
    "fig9_members_to_cover": CrossRunTable(
        ("rq6/members_to_cover.parquet",),
        False,
        _stacked("rq6/members_to_cover.parquet", _role_rows),
        "RQ6 / Fig 9: class top-K members needed to cover every instance, majority vs minority",
    ),
    "rq7_generalization": CrossRunTable(
        ("rq7/generalization_gap.parquet",),
        False,
        _stacked("rq7/generalization_gap.parquet"),
        "RQ7: Frobenius distance of train FE means to test TP and FP means; feature overlap",
    ),
}

# tables with one row per (run, class role) summarise per role as well
_EXTRA_GROUP_KEYS = {"rq3_coverage": ("role", "k"), "fig9_members_to_cover": ("role",)}


def cross_run_table(name: str, runs: Sequence[RunRef]) -> tuple[pa.Table, pa.Table]:
    """``(summary over seeds, by seed)`` of cross-run table ``name`` over ``runs``."""
    if name not in CROSS_RUN_TABLES:
        raise FragilityError(
            f"unknown cross-run table {name!r}; choose one of {sorted(CROSS_RUN_TABLES)}"
        )
    spec = CROSS_RUN_TABLES[name]
    selected = [r for r in runs if not (spec.imbalanced_only and r.balanced)]
    by_seed = spec.build(selected, runs)
    summary = over_seeds(by_seed, (*GROUP_KEYS, *_EXTRA_GROUP_KEYS.get(name, ())))
    return summary, by_seed


# -- remedies (SPEC §5) -------------------------------------------------------------------------


def _remedy_row(
    run: RunRef, remedy: str, method: str, kind: str, metrics: dict, counts, base_seconds, seconds
) -> dict:
    counts = np.asarray(counts)
    per_class = metrics["per_class_accuracy"]
    majority, minority = int(np.argmax(counts)), int(len(counts) - 1 - np.argmin(counts[::-1]))
    return {
        "dataset": run.dataset,
        "imbalance": run.imbalance,
        "base_loss": run.loss,
        "remedy": remedy,
        "method": method,
        "kind": kind,
        "seed": run.seed,
        "bac": metrics["bac"],
        "macro_f1": metrics["macro_f1"],
        "gmean": metrics["gmean"],
        "minority_acc": per_class[minority],
        "majority_acc": per_class[majority],
        "seconds": float(seconds),
        "total_seconds": float(seconds + base_seconds),
    }


def remedies_by_seed(
    runs: Sequence[RunRef], base_dirs: Sequence[str], remedies: dict[str, str]
) -> pa.Table:
    """One row per (treated run, method): the untreated model, each feature-space remedy
    (``remedies``: name -> method) and each loss-level run of the same dataset, imbalance
    and seed. ``seconds`` is the method's own wall time (a remedy's fit, a loss-level run's
    training); ``total_seconds`` adds the base model's training for feature-space remedies."""
    rows = []
    wanted = {Path(d).parts for d in base_dirs}  # "dataset/imbalance/loss/seedN"
    base_runs = [r for r in runs if Path(r.run_dir).parts[-4:] in wanted]
    for run in base_runs:
        base = _metrics(Path(run.run_dir) / "metrics.json")
        counts = base["train_class_counts"]
        untreated = base["wall_seconds"]
        rows.append(_remedy_row(run, "none", "none", "untreated", base, counts, 0.0, untreated))
        for name, method in remedies.items():
            m = _metrics(Path(run.run_dir) / "remedies" / name / "metrics.json")
            rows.append(
                _remedy_row(
                    run, name, method, "feature-space", m, counts, untreated, m["wall_seconds"]
                )
            )
        for other in runs:
            same_data = (other.dataset, other.imbalance, other.seed) == (
                run.dataset,
                run.imbalance,
                run.seed,
            )
            if same_data and other.loss != run.loss:
                m = _metrics(Path(other.run_dir) / "metrics.json")
                rows.append(
                    _remedy_row(
                        run, other.loss, "loss", "loss-level", m, counts, 0.0, m["wall_seconds"]
                    )
                )
    if not rows:
        raise FragilityError("no remedied runs: configure remedies.methods and runs to treat")
    by_seed = pa.Table.from_pylist(rows)
    untreated_bac = {
        (r["dataset"], r["imbalance"], r["base_loss"], r["seed"]): r["bac"]
        for r in rows
        if r["kind"] == "untreated"
    }
    gain = [
        r["bac"] - untreated_bac[(r["dataset"], r["imbalance"], r["base_loss"], r["seed"])]
        for r in rows
    ]
    return by_seed.append_column("bac_gain", pa.array(gain, type=pa.float64()))


REMEDY_KEYS = ("dataset", "imbalance", "base_loss", "remedy", "method", "kind")


def remedies_table(
    runs: Sequence[RunRef], base_dirs: Sequence[str], remedies: dict[str, str]
) -> tuple[pa.Table, pa.Table]:
    """``(summary over seeds, by seed)`` of the remedies comparison."""
    by_seed = remedies_by_seed(runs, base_dirs, remedies)
    return over_seeds(by_seed, REMEDY_KEYS), by_seed


def provenance_table(runs: Sequence[RunRef]) -> pa.Table:
    """One row per run: what produced it (config hash, code version, device, versions)."""
    rows = []
    for run in runs:
        m = _metrics(Path(run.run_dir) / "metrics.json")
        env = m.get("environment", {})
        rows.append(
            dict(
                run.keys(),
                config_hash=m.get("config_hash"),
                code_version=env.get("code_version"),
                device=m.get("device"),
                kept_epoch=m.get("kept_epoch"),
                wall_seconds=m.get("wall_seconds"),
                torch=env.get("torch"),
                python=env.get("python"),
                platform=env.get("platform"),
            )
        )
    return pa.Table.from_pylist(rows)
