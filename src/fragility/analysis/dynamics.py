"""The lecture's training-progress diagnostic: per epoch and class, training accuracy, test
accuracy and the mean norm of the loss gradient with respect to the FE of the class's
training instances, read from a run's ``history.parquet``.

A network fits the major classes first and under-fits the minor ones; later it must push
the minority's features across the boundary with much larger gradients, and over-fits. The
per-run table :func:`dynamics_table` holds one row per (epoch, class); the cross-run table
the cross-run table ``training_dynamics`` (:func:`dynamics_by_seed`) reduces it to the
majority, the minority and the mean over classes per epoch, averaged over seeds, for every
(dataset, imbalance, loss).

Histories written before the gradient was recorded have no ``fe_grad_norm``: the column is
then null, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from fragility.analysis.runs import RunFiles, stack
from fragility.catalog.outputs import CrossRunTable

MEASURES = ("train_acc", "test_acc", "fe_grad_norm")  # history columns, one list per epoch
ROLES = ("majority", "minority", "mean")


def _per_class(history: pa.Table, column: str, n_classes: int) -> np.ndarray:
    """``(E, C)`` float64 of a list column of the history; NaN where missing."""
    out = np.full((history.num_rows, n_classes), np.nan)
    if column in history.column_names:
        for i, row in enumerate(history.column(column).to_pylist()):
            if row is not None and len(row) == n_classes:
                out[i] = [np.nan if v is None else v for v in row]
    return out


def dynamics_table(
    history: pa.Table | None,
    n_classes: int,
    class_columns: Callable[[np.ndarray], dict[str, pa.Array]],
    kept_epoch: int | None,
) -> pa.Table:
    """Long table ``epoch, class, class_name, role, n_train, train_acc, test_acc,
    fe_grad_norm, kept`` (``E·C`` rows) from a run's history; ``class_columns`` maps class
    indices to the class columns of :mod:`fragility.analysis.tables`. Empty without a
    history; ``fe_grad_norm`` is null in histories from before it was recorded."""
    if history is None or "epoch" not in history.column_names:
        epochs = np.zeros(0, dtype=np.int64)
    else:
        epochs = np.asarray(history.column("epoch").to_pylist(), dtype=np.int64)
    classes = np.tile(np.arange(n_classes), len(epochs))
    cols: dict[str, pa.Array] = {"epoch": pa.array(np.repeat(epochs, n_classes), pa.int64())}
    cols.update(class_columns(classes))
    for measure in MEASURES:
        values = (
            _per_class(history, measure, n_classes).ravel()
            if len(epochs)
            else np.zeros(0, dtype=np.float64)
        )
        cols[measure] = pa.array(values, mask=np.isnan(values), type=pa.float64())
    kept = np.repeat(epochs == kept_epoch, n_classes) if kept_epoch is not None else None
    cols["kept"] = pa.array(
        kept if kept is not None else np.zeros(len(classes), dtype=bool), pa.bool_()
    )
    return pa.table(cols)


def role_rows(table: pa.Table) -> pa.Table:
    """Per epoch: the majority's row, the minority's, and the mean over classes (``mean``)."""
    role = np.array(table.column("role").to_pylist())
    epoch = np.asarray(table.column("epoch").to_pylist(), dtype=np.int64)
    values = {m: np.asarray(table.column(m).to_pylist(), dtype=np.float64) for m in MEASURES}
    out: dict[str, list] = {"epoch": [], "role": [], **{m: [] for m in MEASURES}}
    for e in np.unique(epoch):
        at = epoch == e
        for r in ROLES:
            rows = at if r == "mean" else at & (role == r)
            if not rows.any():
                continue
            out["epoch"].append(int(e))
            out["role"].append(r)
            for m in MEASURES:
                v = values[m][rows]
                out[m].append(float(np.mean(v)) if not np.isnan(v).any() else None)
    kept = table.column("kept").to_pylist()
    kept_epoch = next((int(e) for e, k in zip(epoch, kept) if k), None)
    out["kept"] = [e == kept_epoch for e in out["epoch"]]
    return pa.table(
        {
            "epoch": pa.array(out["epoch"], pa.int64()),
            "role": pa.array(out["role"], pa.string()),
            **{m: pa.array(out[m], pa.float64()) for m in MEASURES},
            "kept": pa.array(out["kept"], pa.bool_()),
        }
    )


def dynamics_by_seed(
    spec: CrossRunTable, runs: Sequence[RunFiles], all_runs: Sequence[RunFiles]
) -> pa.Table:
    """The cross-run table ``training_dynamics`` per run: the :func:`role_rows` of each
    run's per-run table (the one its catalog entry ``spec`` reads)."""
    return stack(runs, spec.reads[0], role_rows)
