"""RQ2 — generalisation per class: train vs test accuracy (Fig 2, Table 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from fragility.analysis.columns import class_columns, float_column, int_column, one_row, roles_row
from fragility.analysis.dynamics import dynamics_table
from fragility.analysis.inputs import ClaimInputs, Measured, RunInputs, majority_minority, point
from fragility.analysis.runs import RunFiles, stack_with_bootstrap
from fragility.analysis.uncertainty import confusion_metrics, weighted_confusion
from fragility.catalog.claims import MIN_MINORITY_GAP, PREMISE_TRAIN_ACC
from fragility.catalog.outputs import CrossRunTable
from fragility.metrics import per_class_accuracy


def per_class_train_test_accuracy(
    train_labels: np.ndarray,
    train_preds: np.ndarray,
    test_labels: np.ndarray,
    test_preds: np.ndarray,
    n_classes: int,
) -> dict[str, list]:
    """Fig 2 table: columns ``class``, ``n_train``, ``n_test``, ``train_acc``, ``test_acc``.

    Accuracies are per-class recalls in [0, 1] (NaN where a class has no instance).
    """
    train_acc = per_class_accuracy(train_labels, train_preds, n_classes)
    test_acc = per_class_accuracy(test_labels, test_preds, n_classes)
    return {
        "class": list(range(n_classes)),
        "n_train": np.bincount(np.asarray(train_labels), minlength=n_classes).tolist(),
        "n_test": np.bincount(np.asarray(test_labels), minlength=n_classes).tolist(),
        "train_acc": [float(a) for a in train_acc],
        "test_acc": [float(a) for a in test_acc],
    }


def table2(
    train_acc: np.ndarray,
    test_acc: np.ndarray,
    n_per_class: np.ndarray,
    description: str = "",
) -> dict[str, list]:
    """Table 2 row: train/test accuracy of the largest and the smallest class.

    ``train_acc``/``test_acc`` (C,) per-class accuracies, ``n_per_class`` (C,) training class
    sizes. Values are returned unchanged (fractions if given fractions).
    """
    train_acc = np.asarray(train_acc, dtype=np.float64)
    test_acc = np.asarray(test_acc, dtype=np.float64)
    majority, minority = majority_minority(n_per_class)
    return {
        "description": [description],
        "majority_class": [majority],
        "minority_class": [minority],
        "train_majority": [float(train_acc[majority])],
        "test_majority": [float(test_acc[majority])],
        "train_minority": [float(train_acc[minority])],
        "test_minority": [float(test_acc[minority])],
    }


def minority_overfits(data: ClaimInputs) -> Measured:
    """Table 2's claim: the minority's train-test gap is above the majority's and at least
    :data:`~fragility.catalog.claims.MIN_MINORITY_GAP` (both conditions, as the smaller of the two
    differences). Train accuracy is the run's own, held fixed; test accuracy is resampled."""
    run = data.run
    maj, mino = run.roles
    c = run.n_classes
    train = confusion_metrics(
        weighted_confusion(np.ones((1, len(run.train["label"]))), run.train["label"],
                           run.train["pred"], c), maj, mino,
    )  # fmt: skip
    test = confusion_metrics(
        weighted_confusion(data.test_w, run.test["label"], run.test["pred"], c), maj, mino
    )
    gap_min = train["minority_acc"][0] - test["minority_acc"]
    gap_maj = train["majority_acc"][0] - test["majority_acc"]
    parts = {
        "train_acc_minority": point(train["minority_acc"]),
        "test_acc_minority": point(test["minority_acc"]),
        "train_acc_majority": point(train["majority_acc"]),
        "test_acc_majority": point(test["majority_acc"]),
    }
    return Measured(np.minimum(gap_min - gap_maj, gap_min - MIN_MINORITY_GAP), parts)


# -- the per-run tables (fragility.catalog.outputs.RUN_TABLES["rq2"]) ----------------------


SUBSETS = ("train", "test", "val")  # history columns {subset}_acc


def _history_matrix(
    history: pa.Table, column: str, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs (E,), acc (E, C))`` for the epochs whose ``column`` is present."""
    epochs = np.asarray(history.column("epoch").to_pylist(), dtype=np.int64)
    rows = history.column(column).to_pylist()
    keep = [i for i, r in enumerate(rows) if r is not None and len(r) == n_classes]
    acc = np.array(
        [[np.nan if v is None else v for v in rows[i]] for i in keep], dtype=np.float64
    ).reshape(len(keep), n_classes)
    return epochs[keep], acc


def accuracy_over_epochs(inputs: RunInputs) -> pa.Table:
    """Long table ``epoch, class, class_name, role, n_train, subset, accuracy, kept``
    (``kept`` marks the epoch of the embedded checkpoint) from the training history; empty
    when there is no history. ``train`` accuracy is the running accuracy of the training
    epoch (augmented images, weights changing), as logged during training."""
    n_classes = inputs.n_classes
    parts: list[tuple[np.ndarray, np.ndarray, str]] = []
    hist = inputs.history
    if hist is not None and "epoch" in hist.column_names:
        for subset in SUBSETS:
            if f"{subset}_acc" in hist.column_names:
                epochs, acc = _history_matrix(hist, f"{subset}_acc", n_classes)
                if len(epochs):
                    parts.append((epochs, acc, subset))
    epoch_col = np.concatenate([np.repeat(e, n_classes) for e, _, _ in parts] or [[]])
    class_col = np.concatenate([np.tile(np.arange(n_classes), len(e)) for e, _, _ in parts] or [[]])
    subset_col = [s for e, _, s in parts for _ in range(len(e) * n_classes)]
    acc_col = np.concatenate([a.ravel() for _, a, _ in parts] or [[]])
    cols = {"epoch": int_column(epoch_col)}
    cols.update(class_columns(inputs, class_col.astype(np.int64)))
    cols["subset"] = pa.array(subset_col, type=pa.string())
    cols["accuracy"] = float_column(acc_col)
    kept = inputs.kept_epoch
    cols["kept"] = pa.array(
        (epoch_col == kept) if kept is not None else np.zeros(len(epoch_col), dtype=bool),
        type=pa.bool_(),
    )
    return pa.table(cols)


def premise(inputs: RunInputs, train_acc: np.ndarray) -> dict:
    """The paper's premise on one run (§5.2: the training data almost perfectly memorised):
    every class's train accuracy at the kept checkpoint >= :data:`PREMISE_TRAIN_ACC`, with the
    class that comes lowest."""
    lowest = int(np.nanargmin(train_acc))
    return {
        "lowest_train_acc": float(train_acc[lowest]),
        "lowest_train_acc_class": lowest,
        "lowest_train_acc_name": inputs.class_names[lowest],
        "premise_threshold": PREMISE_TRAIN_ACC,
        "premise_met": bool(np.nanmin(train_acc) >= PREMISE_TRAIN_ACC),
    }


def run_tables(inputs: RunInputs, **_) -> dict[str, pa.Table]:
    tr, te, n_classes = inputs.train, inputs.test, inputs.n_classes
    acc = per_class_train_test_accuracy(tr["label"], tr["pred"], te["label"], te["pred"], n_classes)
    cols = class_columns(inputs, np.arange(n_classes))
    cols["n_test"] = int_column(acc["n_test"])
    cols["train_acc"] = float_column(acc["train_acc"])
    cols["test_acc"] = float_column(acc["test_acc"])
    cols["generalization_gap"] = float_column(
        np.asarray(acc["train_acc"]) - np.asarray(acc["test_acc"])
    )
    t2 = table2(acc["train_acc"], acc["test_acc"], inputs.counts)
    maj, mino = inputs.majority, inputs.minority
    row = roles_row(inputs)
    row.update(
        n_train_majority=int(inputs.counts[maj]),
        n_train_minority=int(inputs.counts[mino]),
        train_acc_majority=t2["train_majority"][0],
        test_acc_majority=t2["test_majority"][0],
        train_acc_minority=t2["train_minority"][0],
        test_acc_minority=t2["test_minority"][0],
    )
    row.update(premise(inputs, np.asarray(acc["train_acc"], dtype=np.float64)))
    return {
        "per_class_accuracy": pa.table(cols),
        "table2": one_row(row),
        "accuracy_over_epochs": accuracy_over_epochs(inputs),
        # the lecture's training progress: accuracies and FE-gradient norm per epoch
        "training_dynamics": dynamics_table(
            inputs.history, n_classes, lambda c: class_columns(inputs, c), inputs.kept_epoch
        ),
    }


def table2_by_seed(
    spec: CrossRunTable, runs: Sequence[RunFiles], all_runs: Sequence[RunFiles]
) -> pa.Table:
    """Table 2 per run: its ``rq2/table2`` row (the first file its catalog entry ``spec``
    reads), with the run's bootstrap intervals of the majority's and the minority's test
    accuracy."""
    columns = {"test_acc_majority": "majority_acc", "test_acc_minority": "minority_acc"}
    return stack_with_bootstrap(runs, spec.reads[0], columns)
