"""A study's runs as the cross-run tables read them, and their summary over seeds.

Every cross-run table exists twice: ``{name}_by_seed`` holds one row per run (the run's
``dataset``, ``imbalance``, ``loss``, ``seed`` followed by its per-run row), and ``{name}``
holds one row per (dataset, imbalance, loss) with ``{column}_mean``, ``{column}_std``
(sample standard deviation, null for a single seed) and ``{column}_ci_low`` /
``{column}_ci_high`` (95 % interval) of every numeric column, ``n_seeds`` and ``interval``
(which kind of interval, over what n). The interval is a t-interval over seeds when a group
has two or more; for a single seed, a by-seed column ``{column}_boot_low`` /
``{column}_boot_high`` (the run's stratified bootstrap over test images) supplies it, and
``interval`` says that it leaves training randomness out. Columns that do not vary over seeds
(class names, roles) are kept as they are.

A by-seed table is built by the function its catalog entry names
(:data:`fragility.catalog.outputs.CROSS_RUN_TABLES`), called with that entry, the runs it
covers and every run of the study; :func:`stack_reads` stacks the per-run table the entry
reads first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.analysis.uncertainty import t_interval
from fragility.catalog.layout import MODEL_FILES, REMEDY, model_file
from fragility.catalog.outputs import RUN_TABLES, CrossRunTable
from fragility.errors import FragilityError
from fragility.io import read_json, read_table

GROUP_KEYS = ("dataset", "imbalance", "loss")


@dataclass(frozen=True)
class RunFiles:
    """One run of the study and the files of it that a cross-run table may read: ``files``
    maps a kind of :data:`fragility.catalog.layout.MODEL_FILES` (or ``{rq}/{table}``) to the path
    the workflow declared; ``remedies`` maps a remedied model's name to its files likewise
    (empty unless the run is treated)."""

    dataset: str
    imbalance: str
    loss: str
    seed: int
    files: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    remedies: Mapping[str, Mapping[str, str]] = field(
        default_factory=dict, compare=False, hash=False
    )
    # the paper's loss the run trains (fragility.analysis.paper.paper_loss), for the paper's
    # numbers beside ours
    paper_loss: str | None = field(default=None, compare=False, hash=False)

    @classmethod
    def in_folder(
        cls, dataset: str, imbalance: str, loss: str, seed: int, run_dir, remedies=()
    ) -> RunFiles:
        """A run laid out under ``run_dir`` as :mod:`fragility.catalog` says, with the
        remedied models ``remedies`` under it: the Python API's way in (the workflow hands
        each stage exactly the files its rule declares)."""
        kinds = [
            *MODEL_FILES,
            *(f"{rq}/{t}" for rq, spec in RUN_TABLES.items() for t in spec.tables),
        ]

        def files(folder: Path) -> dict[str, str]:
            return {kind: str(folder / model_file(kind)) for kind in kinds}

        run_dir = Path(run_dir)
        treated = {name: files(run_dir / REMEDY.format(remedy=name)) for name in remedies}
        return cls(dataset, imbalance, loss, int(seed), files(run_dir), treated)

    @property
    def balanced(self) -> bool:
        return self.imbalance == "balanced"

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.imbalance}/{self.loss}/seed{self.seed}"

    def keys(self) -> dict:
        return {
            "dataset": self.dataset,
            "imbalance": self.imbalance,
            "loss": self.loss,
            "seed": self.seed,
        }

    def path(self, kind: str, remedy: str | None = None) -> Path:
        """The declared file ``kind`` of this run (or of its remedied model ``remedy``)."""
        files = self.files if remedy is None else self.remedies.get(remedy, {})
        owner = self.label if remedy is None else f"remedy {remedy} of {self.label}"
        if kind not in files:
            raise FragilityError(f"{owner}: its {kind} file is not among the declared inputs")
        path = Path(files[kind])
        if not path.is_file():
            raise FragilityError(f"{path} is missing; build {kind} of {owner} first")
        return path


def read_run_table(run: RunFiles, kind: str) -> pa.Table:
    return read_table(run.path(kind))


def _tagged(run: RunFiles, table: pa.Table) -> pa.Table:
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
    runs: Sequence[RunFiles], kind: str, where: Callable[[pa.Table], pa.Table] | None = None
) -> pa.Table:
    """The per-run table ``kind`` (e.g. ``rq2/table2``) of every run, one under the other,
    each row tagged with its run's keys; ``where`` filters each table."""
    parts = []
    for run in runs:
        table = read_run_table(run, kind)
        parts.append(_tagged(run, where(table) if where else table))
    if not parts:
        raise FragilityError(f"no runs to collect {kind} from")
    return pa.concat_tables(parts, promote_options="default")


def _numeric(type_: pa.DataType) -> bool:
    return pa.types.is_floating(type_) or pa.types.is_integer(type_)


def _identity(column: str) -> bool:
    """Integer columns that name something (a class, K) rather than measure it."""
    return column in ("class", "k", "n_top") or column.endswith("_class")


BOOT_SUFFIXES = ("_boot_low", "_boot_high")


SINGLE_SEED_BOOTSTRAP = "bootstrap over test images (1 seed; training randomness not included)"


def _interval_kind(n: int, has_bootstrap: bool) -> str:
    if n >= 2:
        return f"t over {n} seeds"
    return SINGLE_SEED_BOOTSTRAP if has_bootstrap else "none (1 seed)"


def _one_source(by_seed: pa.Table, name: str, rows: list[int]) -> bool:
    """Whether column ``name`` of a group comes from one run: a column ``{name}_seed`` names
    the run each value was measured on (Table 1's balanced model serves several seeds)."""
    source = f"{name}_seed"
    if source not in by_seed.column_names:
        return False
    return len({by_seed[source][i].as_py() for i in rows}) == 1


def over_seeds(by_seed: pa.Table, keys: Sequence[str] = GROUP_KEYS) -> pa.Table:
    """One row per ``keys`` group of ``by_seed``: mean, sample std and 95 % interval of
    numeric columns (see the module docstring for the interval), the value itself for
    identity columns (class indices, K) and text that does not vary, ``all`` for booleans,
    ``n_seeds`` and ``interval``. A column whose values a ``{column}_seed`` column traces to
    a single run (one balanced run for several seeds) takes that run's bootstrap
    interval instead of a zero-width t-interval, and ``{column}_interval`` says so."""
    key_cols = [by_seed[k].to_pylist() for k in keys]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*key_cols)):
        groups.setdefault(key, []).append(i)
    names = by_seed.column_names
    boot = [c for c in names if c.endswith(BOOT_SUFFIXES)]
    extra_keys = [c for c in names if c not in keys and c != "seed" and c not in boot]
    out: dict[str, list] = {k: [g[j] for g in groups] for j, k in enumerate(keys)}
    out["n_seeds"] = [len(rows) for rows in groups.values()]
    out["interval"] = [_interval_kind(len(rows), bool(boot)) for rows in groups.values()]
    for name in extra_keys:
        column = by_seed[name]
        values = column.to_pylist()
        per_group = [[values[i] for i in rows] for rows in groups.values()]
        if pa.types.is_boolean(column.type):
            out[name] = [all(v is True for v in g) for g in per_group]
        elif _identity(name) and all(len(set(g)) == 1 for g in per_group):
            out[name] = [g[0] for g in per_group]
        elif _identity(name):  # e.g. the majority class of seeded class orders: never a mean
            out[name] = ["/".join(map(str, dict.fromkeys(g))) for g in per_group]
        elif _numeric(column.type):
            stats = {f"{name}_{s}": [] for s in ("mean", "std", "ci_low", "ci_high")}
            for rows, g in zip(groups.values(), per_group):
                x = np.array([np.nan if v is None else v for v in g], dtype=np.float64)
                x = x[~np.isnan(x)]
                single = _one_source(by_seed, name, rows)
                x = x[:1] if single else x  # one run's value, repeated: count it once
                interval = t_interval(x)
                if (len(rows) == 1 or single) and f"{name}_boot_low" in names:
                    low = by_seed[f"{name}_boot_low"][rows[0]].as_py()
                    high = by_seed[f"{name}_boot_high"][rows[0]].as_py()
                else:
                    low, high = interval.low, interval.high
                stats[f"{name}_mean"].append(interval.estimate)
                stats[f"{name}_std"].append(float(x.std(ddof=1)) if len(x) > 1 else None)
                stats[f"{name}_ci_low"].append(low)
                stats[f"{name}_ci_high"].append(high)
                if f"{name}_seed" in names:
                    runs = 1 if single else len(rows)
                    stats.setdefault(f"{name}_interval", []).append(
                        _interval_kind(runs, f"{name}_boot_low" in names)
                    )
            out.update(stats)
        else:
            out[name] = [
                g[0] if len(set(g)) == 1 else "/".join(map(str, dict.fromkeys(g)))
                for g in per_group
            ]
    return pa.table(out)


def bootstrap_columns(run: RunFiles, columns: dict[str, str]) -> dict[str, float | None]:
    """``{column}_boot_low/_high`` of a by-seed row from the run's ``bootstrap.parquet``;
    ``columns`` maps the by-seed column to the bootstrap statistic."""
    rows = {r["statistic"]: r for r in read_run_table(run, "bootstrap").to_pylist()}
    out = {}
    for column, statistic in columns.items():
        row = rows.get(statistic, {})
        out[f"{column}_boot_low"] = row.get("ci_low")
        out[f"{column}_boot_high"] = row.get("ci_high")
    return out


def run_metrics(run: RunFiles, remedy: str | None = None) -> dict:
    return read_json(run.path("metrics", remedy))


def balanced_partner(run: RunFiles, runs: Sequence[RunFiles]) -> RunFiles | None:
    """The balanced run Table 1 compares ``run`` with: same dataset, the same seed when such
    a run exists (else the lowest seed: a study may train one balanced run for several
    imbalanced seeds), the same loss when such a run exists, else the cross-entropy one (the
    paper's balanced column)."""
    candidates = [r for r in runs if r.balanced and r.dataset == run.dataset]
    candidates.sort(key=lambda r: (r.seed != run.seed, r.seed))
    for same_seed in (True, False):
        for loss in (run.loss, "ce"):
            for r in candidates:
                if (r.seed == run.seed) == same_seed and r.loss == loss:
                    return r
    return None


def stack_reads(
    spec: CrossRunTable, runs: Sequence[RunFiles], all_runs: Sequence[RunFiles]
) -> pa.Table:
    """The by-seed table of a cross-run table that stacks the per-run table its entry
    ``spec`` reads first."""
    return stack(runs, spec.reads[0])


def stack_with_bootstrap(runs: Sequence[RunFiles], kind: str, columns: dict[str, str]) -> pa.Table:
    """:func:`stack` of a one-row-per-run table, with the runs' bootstrap intervals of
    ``columns`` (by-seed column -> bootstrap statistic) appended."""
    table = stack(runs, kind)
    rows = [bootstrap_columns(run, columns) for run in runs]
    for name in rows[0]:
        table = table.append_column(name, pa.array([r[name] for r in rows], pa.float64()))
    return table
