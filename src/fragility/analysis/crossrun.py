"""The tables over a study's runs: each cross-run table by the function its catalog entry
names, the remedies against the untreated model, and the provenance of every run.

The summary over seeds and its intervals are :mod:`fragility.analysis.runs`'s; the paper's
numbers go beside ours (:mod:`fragility.analysis.paper`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from fragility.analysis.inputs import majority_minority
from fragility.analysis.paper import with_paper_columns
from fragility.analysis.runs import GROUP_KEYS, RunFiles, over_seeds, run_metrics
from fragility.analysis.uncertainty import (
    combine_seeds,
    confusion_metrics,
    percentile_interval,
    stratified_weights,
    verdict,
    weighted_confusion,
)
from fragility.catalog import resolve
from fragility.catalog.outputs import CROSS_RUN_TABLES
from fragility.embeddings.files import read_embeddings
from fragility.errors import FragilityError


def cross_run_table(name: str, runs: Sequence[RunFiles]) -> tuple[pa.Table, pa.Table]:
    """``(summary over seeds, by seed)`` of cross-run table ``name`` over ``runs``."""
    if name not in CROSS_RUN_TABLES:
        raise FragilityError(
            f"unknown cross-run table {name!r}; choose one of {sorted(CROSS_RUN_TABLES)}"
        )
    spec = CROSS_RUN_TABLES[name]
    selected = [r for r in runs if not (spec.imbalanced_only and r.balanced)]
    by_seed = resolve(spec.build)(spec, selected, runs)
    summary = over_seeds(by_seed, (*GROUP_KEYS, *spec.group_by))
    return with_paper_columns(name, summary, {r.loss: r.paper_loss for r in runs}), by_seed


def _remedy_row(
    run: RunFiles, remedy: str, method: str, kind: str, metrics: dict, counts, base_seconds, seconds
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


def _test_predictions(run: RunFiles, remedy: str | None, index: np.ndarray) -> np.ndarray:
    """A model's test predictions (the run's, or its remedied model's) in the row order of
    ``index`` (the untreated model's test images): methods are compared on the same images."""
    path = run.path("test", remedy)
    test = read_embeddings(path)
    where = {int(i): p for i, p in zip(test["index"], test["pred"])}
    if set(where) != {int(i) for i in index}:
        raise FragilityError(f"{path} holds other test images than the untreated model's")
    return np.array([where[int(i)] for i in index], dtype=np.int64)


class _PairedBootstrap:
    """Every method of one treated run on the untreated model's test images, under the same
    bootstrap replicates (the run's seed), so that differences are paired image by image."""

    def __init__(self, run: RunFiles, counts, n_boot: int):
        test = read_embeddings(run.path("test"))
        self.index, self.labels = test["index"], test["label"]
        self.roles = majority_minority(np.asarray(counts))
        self.n_classes = len(counts)
        self.weights = stratified_weights(self.labels, n_boot, (run.seed, 0), observed_first=True)
        self.untreated = self.metrics(test["pred"])

    def metrics(self, preds: np.ndarray) -> dict[str, np.ndarray]:
        """Row 0 the estimate, then the replicates, of every metric in :data:`PAIRED`."""
        conf = weighted_confusion(self.weights, self.labels, preds, self.n_classes)
        return confusion_metrics(conf, *self.roles)

    def columns(self, run: RunFiles, remedy: str | None) -> tuple[dict, np.ndarray]:
        """The ``{metric}_boot_low/_high`` columns of a method and its paired gain replicates."""
        values = self.metrics(_test_predictions(run, remedy, self.index))
        values["bac_gain"] = values["bac"] - self.untreated["bac"]
        out = {}
        for name in (*PAIRED, "bac_gain"):
            iv = percentile_interval(values[name][1:], float(values[name][0]), 0, "")
            out[f"{name}_boot_low"], out[f"{name}_boot_high"] = iv.low, iv.high
        return out, values["bac_gain"][1:]


def _methods(run: RunFiles, runs: Sequence[RunFiles], remedies: dict[str, str], base: dict) -> list:
    """``(model run, remedy or None, name, method, kind, metrics, base seconds, seconds)``
    of the untreated model, each feature-space remedy and each loss-level run that treat
    ``run``."""
    untreated = base["wall_seconds"]
    methods = [(run, None, "none", "none", "untreated", base, 0.0, untreated)]
    for name, method in remedies.items():
        m = run_metrics(run, name)
        methods.append((run, name, name, method, "feature-space", m, untreated, m["wall_seconds"]))
    for other in runs:
        same_data = (other.dataset, other.imbalance, other.seed) == (
            run.dataset,
            run.imbalance,
            run.seed,
        )
        if same_data and other.loss != run.loss:
            m = run_metrics(other)
            methods.append(
                (other, None, other.loss, "loss", "loss-level", m, 0.0, m["wall_seconds"])
            )
    return methods


def remedies_by_seed(
    runs: Sequence[RunFiles], remedies: dict[str, str], n_boot: int = 1000
) -> tuple[pa.Table, list[np.ndarray]]:
    """One row per (treated run, method): the untreated model, each feature-space remedy
    (``remedies``: name -> method; the treated runs are those whose ``RunFiles.remedies``
    hold the remedied models' files) and each loss-level run of the same dataset, imbalance
    and seed. ``seconds`` is the method's own wall time (a remedy's fit, a loss-level run's
    training); ``total_seconds`` adds the base model's training for feature-space remedies.
    ``bac_gain`` is the method's BAC minus the untreated model's on the same test images,
    and ``{metric}_boot_low/_high`` the paired bootstrap intervals; the second value
    returned holds each row's bootstrap replicates of ``bac_gain``."""
    rows, gains = [], []
    for run in [r for r in runs if r.remedies]:
        base = run_metrics(run)
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
    runs: Sequence[RunFiles], remedies: dict[str, str], n_boot: int = 1000
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
            verdicts.append("untreated")  # the model the others are measured against
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


def provenance_table(runs: Sequence[RunFiles]) -> pa.Table:
    """One row per run: what produced it (config hash, code version, device, versions)."""
    rows = []
    for run in runs:
        m = run_metrics(run)
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
