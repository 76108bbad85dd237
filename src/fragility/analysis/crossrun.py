"""Cross-run tables (SPEC §4, §6): the per-run tables of many runs, side by side and
summarised over seeds, and the paper's qualitative claims checked on them.

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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fragility.analysis.inputs import majority_minority
from fragility.analysis.rq1 import table1 as table1_row
from fragility.analysis.uncertainty import combine_seeds, t_interval, verdict
from fragility.catalog.layout import MODEL_FILES, REMEDY, model_file
from fragility.catalog.outputs import CROSS_RUN_TABLES, RUN_TABLES
from fragility.errors import FragilityError
from fragility.io import read_json, read_table

GROUP_KEYS = ("dataset", "imbalance", "loss")
RUN_KEYS = (*GROUP_KEYS, "seed")


@dataclass(frozen=True)
class RunRef:
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
    ) -> RunRef:
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


def _read(run: RunRef, kind: str) -> pa.Table:
    return read_table(run.path(kind))


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
    runs: Sequence[RunRef], kind: str, where: Callable[[pa.Table], pa.Table] | None = None
) -> pa.Table:
    """The per-run table ``kind`` (e.g. ``rq2/table2``) of every run, one under the other,
    each row tagged with its run's keys; ``where`` filters each table."""
    parts = []
    for run in runs:
        table = _read(run, kind)
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
    a single run (one balanced reference for several seeds) takes that run's bootstrap
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


def _bootstrap_columns(run: RunRef, columns: dict[str, str]) -> dict[str, float | None]:
    """``{column}_boot_low/_high`` of a by-seed row from the run's ``bootstrap.parquet``;
    ``columns`` maps the by-seed column to the bootstrap statistic."""
    rows = {r["statistic"]: r for r in _read(run, "bootstrap").to_pylist()}
    out = {}
    for column, statistic in columns.items():
        row = rows.get(statistic, {})
        out[f"{column}_boot_low"] = row.get("ci_low")
        out[f"{column}_boot_high"] = row.get("ci_high")
    return out


# -- the cross-run tables -------------------------------------------------------------------


def _metrics(run: RunRef, remedy: str | None = None) -> dict:
    return read_json(run.path("metrics", remedy))


def _bac(run: RunRef) -> float:
    return float(_metrics(run)["bac"])


def balanced_partner(run: RunRef, runs: Sequence[RunRef]) -> RunRef | None:
    """The balanced run Table 1 compares ``run`` with: same dataset, the same seed when such
    a run exists (else the lowest seed: a study may train one balanced reference for several
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


def table1_by_seed(runs: Sequence[RunRef], all_runs: Sequence[RunRef]) -> pa.Table:
    """RQ1 / Table 1 per imbalanced run: test BAC of the balanced model, of the imbalanced
    model, and of the imbalanced extractor with a classifier re-trained on the pool FE."""
    rows = []
    for run in runs:
        retrained = _read(run, "retrained")
        partner = balanced_partner(run, all_runs)
        row = table1_row(
            None if partner is None else _bac(partner),
            _bac(run),
            float(retrained["bac_retrained"][0].as_py()),
        )
        boot = _bootstrap_columns(
            run,
            {
                "imbalanced": "bac_imbalanced",
                "retrained": "bac_retrained",
                "retrain_gain": "bac_retrained_gain",
            },  # fmt: skip
        )
        if partner is not None:
            boot.update(_bootstrap_columns(partner, {"balanced": "bac"}))
        else:
            boot.update(balanced_boot_low=None, balanced_boot_high=None)
        rows.append(
            dict(
                run.keys(),
                balanced_loss=None if partner is None else partner.loss,
                balanced_seed=None if partner is None else str(partner.seed),
                **{k: v[0] for k, v in row.items() if k != "description"},
                **boot,
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


def _stacked(kind: str, where=None):
    return lambda runs, all_runs: stack(runs, kind, where)


def _stacked_with_bootstrap(kind: str, columns: dict[str, str]):
    """:func:`stack` of a one-row-per-run table, with the runs' bootstrap intervals of
    ``columns`` (by-seed column -> bootstrap statistic) appended."""

    def build(runs, all_runs):
        table = stack(runs, kind)
        rows = [_bootstrap_columns(run, columns) for run in runs]
        for name in rows[0]:
            table = table.append_column(name, pa.array([r[name] for r in rows], pa.float64()))
        return table

    return build


def _dynamics_rows(table: pa.Table) -> pa.Table:
    from fragility.analysis.dynamics import role_rows  # dynamics imports this module

    return role_rows(table)


# How each table of :data:`fragility.catalog.outputs.CROSS_RUN_TABLES` is built from its runs' files
# (the catalog declares which files and how the summary groups).
BUILDERS: dict[str, Callable[[Sequence[RunRef], Sequence[RunRef]], pa.Table]] = {
    "table1": table1_by_seed,
    "table2": _stacked_with_bootstrap(
        "rq2/table2", {"test_acc_majority": "majority_acc", "test_acc_minority": "minority_acc"}
    ),
    "rq3_coverage": _stacked("rq3/group_coverage"),
    "rq3_smallest_k": _stacked("rq3/smallest_k"),
    "table3": _stacked("rq4/table3"),
    "table4": _stacked("rq4/table4"),
    "rq5_weight_sums": _stacked("rq5/weight_sums"),
    "fig9_members_to_cover": _stacked("rq6/members_to_cover", _role_rows),
    "rq6_diversity": _stacked("rq6/diversity"),
    "rq7_generalization": _stacked("rq7/generalization_gap"),
    "training_dynamics": _stacked("rq2/training_dynamics", _dynamics_rows),
}


def cross_run_table(name: str, runs: Sequence[RunRef]) -> tuple[pa.Table, pa.Table]:
    """``(summary over seeds, by seed)`` of cross-run table ``name`` over ``runs``."""
    if name not in CROSS_RUN_TABLES:
        raise FragilityError(
            f"unknown cross-run table {name!r}; choose one of {sorted(CROSS_RUN_TABLES)}"
        )
    from fragility.analysis.paper import with_paper_columns

    spec = CROSS_RUN_TABLES[name]
    selected = [r for r in runs if not (spec.imbalanced_only and r.balanced)]
    by_seed = BUILDERS[name](selected, runs)
    summary = over_seeds(by_seed, (*GROUP_KEYS, *spec.group_by))
    return with_paper_columns(name, summary, {r.loss: r.paper_loss for r in runs}), by_seed


# -- remedies (SPEC §5) -------------------------------------------------------------------------


def _remedy_row(
    run: RunRef, remedy: str, method: str, kind: str, metrics: dict, counts, base_seconds, seconds
) -> dict:
    counts = np.asarray(counts)
    per_class = metrics["per_class_accuracy"]
    majority, minority = majority_minority(counts)
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


PAIRED = ("bac", "macro_f1", "gmean", "minority_acc", "majority_acc")


def _test_predictions(run: RunRef, remedy: str | None, index: np.ndarray) -> np.ndarray:
    """A model's test predictions (the run's, or its remedied model's) in the row order of
    ``index`` (the untreated model's test images): methods are compared on the same images."""
    from fragility.embeddings.extraction import read_embeddings

    path = run.path("test", remedy)
    test = read_embeddings(path)
    where = {int(i): p for i, p in zip(test["index"], test["pred"])}
    if set(where) != {int(i) for i in index}:
        raise FragilityError(f"{path} holds other test images than the untreated model's")
    return np.array([where[int(i)] for i in index], dtype=np.int64)


class _PairedBootstrap:
    """Every method of one treated run on the untreated model's test images, under the same
    bootstrap replicates (the run's seed), so that differences are paired image by image."""

    def __init__(self, run: RunRef, counts, n_boot: int):
        from fragility.analysis.uncertainty import stratified_weights
        from fragility.embeddings.extraction import read_embeddings

        test = read_embeddings(run.path("test"))
        self.index, self.labels = test["index"], test["label"]
        self.roles = majority_minority(np.asarray(counts))
        self.n_classes = len(counts)
        self.weights = stratified_weights(self.labels, n_boot, (run.seed, 0), observed_first=True)
        self.untreated = self.metrics(test["pred"])

    def metrics(self, preds: np.ndarray) -> dict[str, np.ndarray]:
        """Row 0 the estimate, then the replicates, of every metric in :data:`PAIRED`."""
        from fragility.analysis.uncertainty import confusion_metrics, weighted_confusion

        conf = weighted_confusion(self.weights, self.labels, preds, self.n_classes)
        return confusion_metrics(conf, *self.roles)

    def columns(self, run: RunRef, remedy: str | None) -> tuple[dict, np.ndarray]:
        """The ``{metric}_boot_low/_high`` columns of a method and its paired gain replicates."""
        from fragility.analysis.uncertainty import percentile_interval

        values = self.metrics(_test_predictions(run, remedy, self.index))
        values["bac_gain"] = values["bac"] - self.untreated["bac"]
        out = {}
        for name in (*PAIRED, "bac_gain"):
            iv = percentile_interval(values[name][1:], float(values[name][0]), 0, "")
            out[f"{name}_boot_low"], out[f"{name}_boot_high"] = iv.low, iv.high
        return out, values["bac_gain"][1:]


def _methods(run: RunRef, runs: Sequence[RunRef], remedies: dict[str, str], base: dict) -> list:
    """``(model run, remedy or None, name, method, kind, metrics, base seconds, seconds)``
    of the untreated model, each feature-space remedy and each loss-level run that treat
    ``run``."""
    untreated = base["wall_seconds"]
    methods = [(run, None, "none", "none", "untreated", base, 0.0, untreated)]
    for name, method in remedies.items():
        m = _metrics(run, name)
        methods.append((run, name, name, method, "feature-space", m, untreated, m["wall_seconds"]))
    for other in runs:
        same_data = (other.dataset, other.imbalance, other.seed) == (
            run.dataset,
            run.imbalance,
            run.seed,
        )
        if same_data and other.loss != run.loss:
            m = _metrics(other)
            methods.append(
                (other, None, other.loss, "loss", "loss-level", m, 0.0, m["wall_seconds"])
            )
    return methods


def remedies_by_seed(
    runs: Sequence[RunRef], remedies: dict[str, str], n_boot: int = 1000
) -> tuple[pa.Table, list[np.ndarray]]:
    """One row per (treated run, method): the untreated model, each feature-space remedy
    (``remedies``: name -> method; the treated runs are those whose ``RunRef.remedies``
    hold the remedied models' files) and each loss-level run of the same dataset, imbalance
    and seed. ``seconds`` is the method's own wall time (a remedy's fit, a loss-level run's
    training); ``total_seconds`` adds the base model's training for feature-space remedies.
    ``bac_gain`` is the method's BAC minus the untreated model's on the same test images,
    and ``{metric}_boot_low/_high`` the paired bootstrap intervals; the second value
    returned holds each row's bootstrap replicates of ``bac_gain``."""
    rows, gains = [], []
    for run in [r for r in runs if r.remedies]:
        base = _metrics(run)
        counts = base["train_class_counts"]
        paired = _PairedBootstrap(run, counts, n_boot)
        for model, remedy, name, method, kind, m, base_s, seconds in _methods(
            run, runs, remedies, base
        ):
            row = _remedy_row(run, name, method, kind, m, counts, base_s, seconds)
            boot, gain = paired.columns(model, remedy)
            row["bac_gain"] = row["bac"] - base["bac"]
            rows.append({**row, **boot})
            gains.append(gain)
    if not rows:
        raise FragilityError("no remedied runs: configure remedies.methods and runs to treat")
    return pa.Table.from_pylist(rows), gains


REMEDY_KEYS = ("dataset", "imbalance", "base_loss", "remedy", "method", "kind")
GAIN_VERDICTS = {"holds": "better", "fails": "worse", "inconclusive": "no detectable difference"}


def remedies_table(
    runs: Sequence[RunRef], remedies: dict[str, str], n_boot: int = 1000
) -> tuple[pa.Table, pa.Table]:
    """``(summary over seeds, by seed)`` of the remedies comparison. The summary adds
    ``verdict`` (better / worse / no detectable difference than the untreated model, by
    the paired BAC gain's interval: t over seeds from three seeds on, else the bootstrap of
    the seeds' mean paired gain) and ``verdict_interval``."""
    by_seed, gains = remedies_by_seed(runs, remedies, n_boot)
    summary = over_seeds(by_seed, REMEDY_KEYS)
    members: dict[tuple, list[int]] = {}
    for i, row in enumerate(by_seed.select(list(REMEDY_KEYS)).to_pylist()):
        members.setdefault(tuple(row.values()), []).append(i)
    verdicts, kinds = [], []
    gain_column = by_seed["bac_gain"].to_pylist()
    for row in summary.select(list(REMEDY_KEYS)).to_pylist():
        rows = members[tuple(row.values())]
        if row["kind"] == "untreated":
            verdicts.append("reference")
            kinds.append("none: the untreated model itself")
            continue
        interval = combine_seeds(
            [gain_column[i] for i in rows],
            [gains[i] for i in rows],
            "paired bootstrap over test images",
        )
        verdicts.append(GAIN_VERDICTS.get(verdict(interval.low, interval.high), "n/a"))
        kinds.append(interval.kind)
    summary = summary.append_column("verdict", pa.array(verdicts, pa.string()))
    summary = summary.append_column("verdict_interval", pa.array(kinds, pa.string()))
    return summary, by_seed


def provenance_table(runs: Sequence[RunRef]) -> pa.Table:
    """One row per run: what produced it (config hash, code version, device, versions)."""
    rows = []
    for run in runs:
        m = _metrics(run)
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
                cpu_model=env.get("cpu_model"),
                torch_threads=env.get("torch_threads"),
            )
        )
    return pa.Table.from_pylist(rows)
