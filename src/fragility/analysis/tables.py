"""Per-run tables for RQ2-RQ7 (SPEC §4), built from one run's files by the RQ functions.

:class:`RunInputs` loads what one run's analyses read (``embeddings/{train,test,pool}.parquet``,
``embeddings/classifier.parquet``, ``history.parquet``, ``metrics.json``) once;
:func:`rq_tables` returns the tables of one research question as small pyarrow Tables, named
as in :data:`TABLES`. The metrics themselves live in ``fragility.analysis.rq*``; this module
only arranges their output.

Conventions shared by every table:

- ``class`` (int) and ``class_name``; ``role`` = ``"majority"`` (largest training class,
  first on ties), ``"minority"`` (smallest, last on ties) or ``"other"``; ``class_group`` =
  ``"majority"`` / ``"minority"`` for the largest / smallest 40 % of the classes (the paper's
  classes 0-3 and 6-9 of ten; :func:`fragility.analysis.inputs.class_groups`), else
  ``"middle"``; ``n_train`` = the run's training images of that class (``metrics.json``
  ``train_class_counts``).
- Accuracies, coverage ratios and shares are fractions in [0, 1], not percentages.
- Everything is measured on the ``train`` embeddings, except RQ2's test accuracy and RQ7's
  test groups. Instance measures group by *predicted* class (RQ3 coverage, RQ6 members),
  class means by *true* class (RQ4 ce, RQ6 fe means, RQ7 train means), as in the paper.
- "Top 10" tables hold ``min(10, H)`` ranks; a value that does not exist (a class with no
  instance, a class nothing is predicted as) is null, never NaN.
- ``ks`` are RQ3's K values; ``k_fe`` is the paper's K = 7 used by the instance top-K sets
  of RQ4 (Fig 6 / Table 4), RQ6 and RQ7's frequency-based feature identities.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.analysis import rq4, rq6, rq7
from fragility.analysis.dynamics import dynamics_table
from fragility.analysis.inputs import (
    N_MATCHED_DRAWS,
    N_TOP,
    ClaimInputs,
    ModelView,
    class_groups,
    group_mean,
    majority_minority,
)
from fragility.analysis.rq2 import per_class_train_test_accuracy, table2
from fragility.analysis.rq3 import THRESHOLDS, reference_classes, rq3_coverage
from fragility.analysis.rq4 import (
    class_mean_own_ce,
    table3,
    table4,
    top_class_mean_ce,
    topk_logit_share,
)
from fragility.analysis.rq5 import largest_weight_vs_ce, top_abs_weights, weight_sums
from fragility.analysis.rq6 import class_topk_members, members_to_cover, top_class_mean_fe
from fragility.analysis.rq7 import rq7_generalization
from fragility.catalog.claims import FEW_FEATURES_SHARE, PREMISE_TRAIN_ACC
from fragility.catalog.layout import model_file
from fragility.catalog.outputs import RUN_TABLES
from fragility.embeddings.extraction import read_classifier, read_embeddings
from fragility.errors import ConfigError, FragilityError
from fragility.io import read_json, read_table

TABLES: dict[str, tuple[str, ...]] = {rq: spec.tables for rq, spec in RUN_TABLES.items()}

SUBSETS = ("train", "test", "val")  # history columns {subset}_acc


@dataclass
class RunInputs:
    """Everything one run's RQ2-RQ7 analyses need, loaded once.

    ``train``/``test``/``pool`` are :func:`fragility.embeddings.extraction.read_embeddings` dicts
    (``pool`` is None when the file is absent or not asked for: RQ2-RQ7 do not use it),
    ``classifier`` a :func:`read_classifier` dict, ``history`` the per-epoch table (None
    when absent), ``class_counts`` (C,) the training images per class, ``kept_epoch`` the
    epoch whose checkpoint was embedded (None when unknown).
    """

    train: dict
    test: dict
    pool: dict | None
    classifier: dict
    history: pa.Table | None
    class_names: list[str]
    class_counts: np.ndarray
    kept_epoch: int | None = None

    @classmethod
    def from_files(cls, files: Mapping[str, str | Path]) -> RunInputs:
        """Read the files one analysis was handed: ``files`` maps kinds of
        :data:`fragility.catalog.layout.MODEL_FILES` to paths. ``train`` and ``classifier`` are
        required; ``test``, ``pool``, ``history`` and ``metrics`` are read when given.
        ``metrics`` (metrics.json) supplies ``classes`` and ``train_class_counts``; without
        it names default to the class index and counts to the labels of the train
        embeddings."""
        files = {kind: Path(path) for kind, path in files.items()}
        required = [kind for kind in ("train", "classifier") if kind not in files]
        if required:
            raise FragilityError(
                f"the per-run analyses need the {' and '.join(required)} embeddings; "
                f"got only {sorted(files)}"
            )
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise FragilityError(
                f"{', '.join(missing)} missing; produce the embeddings of this run first "
                "(the workflow's embeddings step)"
            )

        def embeddings(kind: str) -> dict | None:
            return read_embeddings(files[kind]) if kind in files else None

        classifier = read_classifier(files["classifier"])
        n_classes = classifier["weight"].shape[0]
        train = embeddings("train")
        metrics = read_json(files["metrics"]) if "metrics" in files else {}
        names = [str(n) for n in metrics.get("classes") or range(n_classes)]
        counts = metrics.get("train_class_counts")
        if counts is None:
            counts = np.bincount(train["label"], minlength=n_classes)
        counts = np.asarray(counts, dtype=np.int64)
        if len(names) != n_classes or len(counts) != n_classes:
            raise FragilityError(
                f"{files.get('metrics')} lists {len(names)} class names and {len(counts)} class "
                f"counts, but the classifier in {files['classifier']} has {n_classes} classes"
            )
        kept = metrics.get("kept_epoch")
        return cls(
            train=train,
            test=embeddings("test"),
            pool=embeddings("pool"),
            classifier=classifier,
            history=read_table(files["history"]) if "history" in files else None,
            class_names=names,
            class_counts=counts,
            kept_epoch=None if kept is None else int(kept),
        )

    @classmethod
    def load(cls, run_dir: str | Path, *, pool: bool | None = None) -> RunInputs:
        """Read a run folder (``results/{dataset}/{imbalance}/{loss}/seed{seed}``) laid out
        as :mod:`fragility.catalog` says: a convenience for the Python API (the workflow's
        stages are handed their files, see :meth:`from_files`).

        ``pool``: True requires ``embeddings/pool.parquet``, False skips it, None (default)
        reads it when present; ``history.parquet`` and ``metrics.json`` are read when present.
        """
        run_dir = Path(run_dir)
        required = ["train", "test", "classifier", *(["pool"] if pool else [])]
        optional = [*([] if pool is not None else ["pool"]), "history", "metrics"]
        files = {kind: run_dir / model_file(kind) for kind in required}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise FragilityError(
                f"run {run_dir} lacks {', '.join(missing)}; produce the embeddings of this run "
                "first (the workflow's embeddings step)"
            )
        for kind in optional:
            if (run_dir / model_file(kind)).is_file():
                files[kind] = run_dir / model_file(kind)
        return cls.from_files(files)

    @property
    def n_classes(self) -> int:
        return int(self.classifier["weight"].shape[0])

    @property
    def n_features(self) -> int:
        return int(self.classifier["weight"].shape[1])

    @property
    def majority(self) -> int:
        return majority_minority(self.class_counts)[0]

    @property
    def minority(self) -> int:
        return majority_minority(self.class_counts)[1]

    def roles(self) -> list[str]:
        out = ["other"] * self.n_classes
        out[self.minority] = "minority"
        out[self.majority] = "majority"
        return out

    @property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """``(majority group, minority group)``: the largest and the smallest 40 % of the
        classes (:func:`fragility.analysis.inputs.class_groups`)."""
        return class_groups(self.class_counts)

    def view(self) -> ModelView:
        """This model as the claims read it."""
        W, bias, normed = _classifier(self)
        return ModelView(self.train, self.test or {}, W, bias, normed, self.class_counts)

    def observed(self, k_fe: int = 7, ks: Sequence[int] = (2, 3, 5, 7)) -> ClaimInputs:
        """The claims' inputs with the data as observed (no bootstrap replicate): a per-run
        table quotes the same numbers as the claim it shows."""
        view = self.view()
        n_test = len(view.test["label"]) if view.test else 0
        return ClaimInputs(view, np.ones((1, len(view.train["label"]))), np.ones((1, n_test)),
                           ks=tuple(ks), k_fe=k_fe)  # fmt: skip

    def group_names(self) -> list[str]:
        majority, minority = self.groups
        out = ["middle"] * self.n_classes
        for c in minority:
            out[c] = "minority"
        for c in majority:
            out[c] = "majority"
        return out


# -- table helpers --------------------------------------------------------------------------


def _float_array(values) -> pa.Array:
    """float64 column; NaN becomes null (a value that does not exist)."""
    arr = np.asarray(values, dtype=np.float64)
    return pa.array(arr, mask=np.isnan(arr), type=pa.float64())


def _int_array(values, missing: Callable[[np.ndarray], np.ndarray] | None = None) -> pa.Array:
    arr = np.asarray(values, dtype=np.int64)
    mask = missing(arr) if missing is not None else None
    return pa.array(arr, mask=mask, type=pa.int64())


def _class_columns(inputs: RunInputs, classes: np.ndarray) -> dict[str, pa.Array]:
    """``class``, ``class_name``, ``role``, ``class_group``, ``n_train`` for a column of
    class indices."""
    classes = np.asarray(classes, dtype=np.int64)
    roles = inputs.roles()
    groups = inputs.group_names()
    return {
        "class": _int_array(classes),
        "class_name": pa.array([inputs.class_names[c] for c in classes], type=pa.string()),
        "role": pa.array([roles[c] for c in classes], type=pa.string()),
        "class_group": pa.array([groups[c] for c in classes], type=pa.string()),
        "n_train": _int_array(inputs.class_counts[classes]),
    }


def _ranked_table(
    inputs: RunInputs,
    values: np.ndarray,
    value_name: str,
    idx: np.ndarray | None = None,
    per_class: dict[str, np.ndarray] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> pa.Table:
    """Long table, one row per (class, rank): class columns, ``per_class`` columns (C,),
    ``rank`` (1 = largest), ``feature`` (fe index, when ``idx`` is given; null for -1) and
    ``value_name``; ``extra`` adds further (C, n) columns."""
    n_classes, n = values.shape
    classes = np.repeat(np.arange(n_classes), n)
    cols = _class_columns(inputs, classes)
    for name, vals in (per_class or {}).items():
        cols[name] = _int_array(np.asarray(vals)[classes])
    cols["rank"] = _int_array(np.tile(np.arange(1, n + 1), n_classes))
    if idx is not None:
        cols["feature"] = _int_array(idx.ravel(), missing=lambda a: a < 0)
    cols[value_name] = _float_array(values.ravel())
    for name, vals in (extra or {}).items():
        cols[name] = _float_array(np.asarray(vals).ravel())
    return pa.table(cols)


def _one_row(values: dict, int_keys: tuple[str, ...] = ()) -> pa.Table:
    """One-row table; NaN and None become null. ``int_keys`` are int64 even when None."""
    cols = {}
    for key, val in values.items():
        if isinstance(val, str):
            cols[key] = pa.array([val], type=pa.string())
        elif isinstance(val, bool | np.bool_):
            cols[key] = pa.array([bool(val)], type=pa.bool_())
        elif isinstance(val, int | np.integer) or key in int_keys:
            cols[key] = pa.array([None if val is None else int(val)], type=pa.int64())
        else:
            cols[key] = _float_array([np.nan if val is None else val])
    return pa.table(cols)


def _row_max(x: np.ndarray) -> np.ndarray:
    """Largest entry per row (NaN for an all-NaN row), as Tables 3-4 take it."""
    return np.array([np.nan if np.all(np.isnan(r)) else np.nanmax(r) for r in x])


def _roles_row(inputs: RunInputs) -> dict:
    maj, mino = inputs.majority, inputs.minority
    return {
        "majority_class": maj,
        "majority_name": inputs.class_names[maj],
        "minority_class": mino,
        "minority_name": inputs.class_names[mino],
    }


def _class_list(classes) -> str:
    """``0,1,2,3``: a group's classes as a by-seed table can keep them (text)."""
    return ",".join(str(int(c)) for c in classes)


def _groups_row(inputs: RunInputs) -> dict:
    majority, minority = inputs.groups
    return {"majority_group": _class_list(majority), "minority_group": _class_list(minority)}


def _classifier(inputs: RunInputs) -> tuple[np.ndarray, np.ndarray, bool]:
    c = inputs.classifier
    return (
        np.asarray(c["weight"], dtype=np.float64),
        np.asarray(c["bias"], dtype=np.float64),
        bool(c["normed"]),
    )


# -- RQ2 --------------------------------------------------------------------------------------


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
    cols = {"epoch": _int_array(epoch_col)}
    cols.update(_class_columns(inputs, class_col.astype(np.int64)))
    cols["subset"] = pa.array(subset_col, type=pa.string())
    cols["accuracy"] = _float_array(acc_col)
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


def _rq2(inputs: RunInputs, **_) -> dict[str, pa.Table]:
    tr, te, n_classes = inputs.train, inputs.test, inputs.n_classes
    acc = per_class_train_test_accuracy(tr["label"], tr["pred"], te["label"], te["pred"], n_classes)
    cols = _class_columns(inputs, np.arange(n_classes))
    cols["n_test"] = _int_array(acc["n_test"])
    cols["train_acc"] = _float_array(acc["train_acc"])
    cols["test_acc"] = _float_array(acc["test_acc"])
    cols["generalization_gap"] = _float_array(
        np.asarray(acc["train_acc"]) - np.asarray(acc["test_acc"])
    )
    t2 = table2(acc["train_acc"], acc["test_acc"], inputs.class_counts)
    maj, mino = inputs.majority, inputs.minority
    row = _roles_row(inputs)
    row.update(
        n_train_majority=int(inputs.class_counts[maj]),
        n_train_minority=int(inputs.class_counts[mino]),
        train_acc_majority=t2["train_majority"][0],
        test_acc_majority=t2["test_majority"][0],
        train_acc_minority=t2["train_minority"][0],
        test_acc_minority=t2["test_minority"][0],
    )
    row.update(premise(inputs, np.asarray(acc["train_acc"], dtype=np.float64)))
    return {
        "per_class_accuracy": pa.table(cols),
        "table2": _one_row(row),
        "accuracy_over_epochs": accuracy_over_epochs(inputs),
        # the lecture's training progress: accuracies and FE-gradient norm per epoch
        "training_dynamics": dynamics_table(
            inputs.history, n_classes, lambda c: _class_columns(inputs, c), inputs.kept_epoch
        ),
    }


# -- RQ3 --------------------------------------------------------------------------------------


def _smallest_k_row(inputs: RunInputs, res) -> dict:
    """The smallest K covering each threshold of all training instances, bias-free (the
    claims' reading) and with the bias; ``few_features_bound`` = H/5, the claim's K << H."""
    row: dict = {
        "n_features": inputs.n_features,
        "n_instances": len(inputs.train["label"]),
        "few_features_bound": FEW_FEATURES_SHARE * inputs.n_features,
    }
    for suffix, with_bias in (("", False), ("_with_bias", True)):
        for threshold in THRESHOLDS:
            k = res.smallest_k(threshold, with_bias)
            pct = round(100 * threshold)
            row[f"smallest_k_{pct}{suffix}"] = k
            row[f"coverage_k_{pct}{suffix}"] = res.coverage_at(k, with_bias)
    return row


def _rq3(inputs: RunInputs, *, ks: Sequence[int], **_) -> dict[str, pa.Table]:
    W, bias, normed = _classifier(inputs)
    tr = inputs.train
    res = rq3_coverage(tr["fe"], W, bias, tr["logits"], normed, tuple(ks))
    n_classes, n_k = res.class_ratio.shape
    classes = np.repeat(np.arange(n_classes), n_k)
    cols = _class_columns(inputs, classes)
    cols["n_pred"] = _int_array(res.n_per_class[classes])
    cols["n_pred_with_bias"] = _int_array(res.n_per_class_with_bias[classes])
    cols["k"] = _int_array(np.tile(np.asarray(res.ks), n_classes))
    cols["coverage_ratio"] = _float_array(res.class_ratio.ravel())
    cols["coverage_ratio_with_bias"] = _float_array(res.class_ratio_with_bias.ravel())
    row = _smallest_k_row(inputs, res)
    # the paper's prediction ignores the bias: how many instances it moves to another class
    row["n_changed_by_bias"] = res.n_changed
    smallest = _one_row(row, int_keys=tuple(k for k in row if k.startswith("smallest_k")))
    majority, minority = inputs.groups
    group_cols: dict[str, pa.Array] = {"k": _int_array(np.asarray(res.ks))}
    for name, value in _groups_row(inputs).items():
        group_cols[name] = pa.array([value] * n_k, type=pa.string())
    for suffix, ratio in (("", res.class_ratio), ("_with_bias", res.class_ratio_with_bias)):
        for name, group in (("majority", majority), ("minority", minority)):
            group_cols[f"coverage_{name}_group{suffix}"] = _float_array(group_mean(ratio.T, group))
    return {
        "topk_coverage": pa.table(cols),
        "smallest_k": smallest,
        "group_coverage": pa.table(group_cols),
    }


# -- RQ4 --------------------------------------------------------------------------------------


def _rq4(inputs: RunInputs, *, k_fe: int, **_) -> dict[str, pa.Table]:
    W, bias, normed = _classifier(inputs)
    tr, n_classes = inputs.train, inputs.n_classes
    maj, mino = inputs.majority, inputs.minority
    mean_ce = class_mean_own_ce(tr["fe"], W, tr["label"], n_classes, normed)
    vals, idx = top_class_mean_ce(mean_ce, N_TOP)
    t3 = table3(mean_ce, maj)
    largest_ce = _row_max(mean_ce)
    observed = inputs.observed(k_fe)
    matched = rq4.majority_ce_smaller(observed).parts
    groups = rq4.minority_ce_larger(observed).parts
    row3 = _roles_row(inputs)
    row3.update(
        majority_largest_mean_ce=t3["majority"],
        minority_largest_mean_ce=float(largest_ce[mino]),
        others_mean_largest_mean_ce=t3["others_mean"],
        ratio_others_to_majority=t3["ratio"],
        # every class drawn down to the smallest one's size (the claim's reading)
        matched_size=matched["size"],
        majority_largest_mean_ce_matched=matched["majority"],
        others_mean_largest_mean_ce_matched=matched["others"],
        ratio_others_to_majority_matched=matched["ratio"],
        minority_group=groups["minority_group"],
        minority_group_largest_mean_ce=groups["minority_all"],
        other_classes_largest_mean_ce=groups["others_all"],
        minority_group_largest_mean_ce_matched=groups["minority"],
        other_classes_largest_mean_ce_matched=groups["others"],
    )
    # Fig 6 / Table 4 on the paper's bias-free logit, the head's own logit beside it
    free = np.zeros(n_classes)
    shares, n_used = topk_logit_share(tr["fe"], W, free, tr["label"], n_classes, normed, k=k_fe)
    biased, n_biased = topk_logit_share(tr["fe"], W, bias, tr["label"], n_classes, normed, k=k_fe)
    t4, t4_bias = table4(shares, maj), table4(biased, maj)
    row4 = _roles_row(inputs)
    row4.update(
        k=k_fe,
        majority_largest_share=t4["majority"],
        minority_largest_share=float(_row_max(shares)[mino]),
        others_mean_largest_share=t4["others_mean"],
        ratio_others_to_majority=t4["ratio"],
        majority_largest_share_with_bias=t4_bias["majority"],
        minority_largest_share_with_bias=float(_row_max(biased)[mino]),
        others_mean_largest_share_with_bias=t4_bias["others_mean"],
        ratio_others_to_majority_with_bias=t4_bias["ratio"],
    )
    share_table = _ranked_table(
        inputs, shares, "share", per_class={"n_used": n_used, "n_used_with_bias": n_biased},
        extra={"share_with_bias": biased},
    )  # fmt: skip
    return {
        "class_mean_ce_top10": _ranked_table(inputs, vals, "mean_ce", idx),
        "table3": _one_row(row3),
        "topk_logit_share": share_table,
        "table4": _one_row(row4),
    }


# -- RQ5 --------------------------------------------------------------------------------------


def _rq5(inputs: RunInputs, **_) -> dict[str, pa.Table]:
    W, _, normed = _classifier(inputs)
    tr, n_classes = inputs.train, inputs.n_classes
    maj, mino = inputs.majority, inputs.minority
    vals, idx = top_abs_weights(W, N_TOP)
    signed = np.take_along_axis(W, np.maximum(idx, 0), axis=1)
    sums = weight_sums(W, maj, mino, N_TOP)
    mean_ce = class_mean_own_ce(tr["fe"], W, tr["label"], n_classes, normed)
    vs = largest_weight_vs_ce(W, mean_ce)
    row = _roles_row(inputs)
    row.update(
        n_top=int(vals.shape[1]),
        majority_top_abs_w_sum=sums["majority_sum"],
        minority_top_abs_w_sum=sums["minority_sum"],
        largest_abs_w=vs["largest_abs_w"],
        largest_mean_ce=vs["largest_mean_ce"],
        ratio_ce_to_w=vs["ratio"],
    )
    return {
        "top_weights": _ranked_table(inputs, vals, "abs_weight", idx, extra={"weight": signed}),
        "weight_sums": _one_row(row),
    }


# -- RQ6 --------------------------------------------------------------------------------------


def _rq6(inputs: RunInputs, *, k_fe: int, **_) -> dict[str, pa.Table]:
    W, _, normed = _classifier(inputs)
    tr, n_classes = inputs.train, inputs.n_classes
    # instance measures group by the paper's prediction (bias-free); the head's own beside it
    preds = reference_classes(tr["fe"], W, tr["logits"], normed)
    biased = reference_classes(tr["fe"], W, tr["logits"], normed, with_bias=True)
    members, shares, n_class = class_topk_members(tr["fe"], preds, n_classes, k_fe, N_TOP)
    members = np.where(np.isnan(shares), -1, members)
    members_b, shares_b, n_class_b = class_topk_members(tr["fe"], biased, n_classes, k_fe, N_TOP)
    members_b = np.where(np.isnan(shares_b), -1, members_b)
    needed = members_to_cover(tr["fe"], preds, n_classes, k_fe)
    needed_b = members_to_cover(tr["fe"], biased, n_classes, k_fe)
    cols = _class_columns(inputs, np.arange(n_classes))
    cols["n_pred"] = _int_array(n_class)
    cols["n_pred_with_bias"] = _int_array(n_class_b)
    cols["k"] = _int_array(np.full(n_classes, k_fe))
    cols["members_needed"] = _int_array(needed, missing=lambda a: a < 0)
    cols["members_needed_with_bias"] = _int_array(needed_b, missing=lambda a: a < 0)
    fe_vals, fe_idx = top_class_mean_fe(tr["fe"], tr["label"], n_classes, N_TOP)
    topk = _ranked_table(inputs, shares, "share", members, per_class={"n_pred": n_class},
                         extra={"share_with_bias": shares_b})  # fmt: skip
    topk = topk.add_column(
        topk.schema.get_field_index("rank"), "k", _int_array(np.full(topk.num_rows, k_fe))
    )
    topk = topk.append_column(
        "feature_with_bias", _int_array(members_b.ravel(), missing=lambda a: a < 0)
    )
    observed = inputs.observed(k_fe)
    frequent = rq6.minority_features_frequent(observed).parts
    more = rq6.majority_needs_more_members(observed).parts
    row = _roles_row(inputs)
    row.update(_groups_row(inputs))
    row.update(
        k=k_fe,
        top_member_share_majority_group=frequent.get("majority_all"),
        top_member_share_minority_group=frequent.get("minority_all"),
        # every class of the two groups drawn down to the smallest one's predicted count
        matched_size=frequent.get("size"),
        top_member_share_majority_group_matched=frequent.get("majority"),
        top_member_share_minority_group_matched=frequent.get("minority"),
        members_needed_majority=int(needed[inputs.majority]),
        members_needed_minority=int(needed[inputs.minority]),
        # the majority drawn down to the minority's predicted count
        members_needed_majority_matched=more.get("majority"),
    )
    for key in ("members_needed_majority", "members_needed_minority"):
        row[key] = None if row[key] < 0 else row[key]
    int_keys = ("members_needed_majority", "members_needed_minority", "matched_size")
    return {
        "class_topk_members": topk,
        "members_to_cover": pa.table(cols),
        "class_mean_fe_top10": _ranked_table(inputs, fe_vals, "mean_fe", fe_idx),
        "diversity": _one_row(row, int_keys=int_keys),
    }


# -- RQ7 --------------------------------------------------------------------------------------


def _rq7(inputs: RunInputs, *, k_fe: int, **_) -> dict[str, pa.Table]:
    W, _, normed = _classifier(inputs)
    tr, te, n_classes = inputs.train, inputs.test, inputs.n_classes
    res = rq7_generalization(
        tr["fe"],
        tr["label"],
        te["fe"],
        te["label"],
        te["pred"],
        W,
        n_classes,
        normed,
        n_top=N_TOP,
        identity="frequency",
        k=k_fe,
        draws=N_MATCHED_DRAWS,
    )
    groups = (
        ("train", res.mu_train, res.n_train),
        ("test_tp", res.mu_tp, res.n_tp),
        ("test_fp", res.mu_fp, res.n_fp),
    )
    parts = []
    for group, mu, n_group in groups:
        vals = np.where(res.top_idx >= 0, res.at_top(mu), np.nan)
        t = _ranked_table(inputs, vals, "mean_fe", res.top_idx)
        n_top = res.top_idx.shape[1]
        t = t.add_column(4, "group", pa.array([group] * t.num_rows, type=pa.string()))
        t = t.add_column(5, "n_group", _int_array(np.repeat(n_group, n_top)))
        parts.append(t)
    n_top = int(res.top_idx.shape[1])
    summary = res.summary()
    observed = inputs.observed(k_fe)
    overlaps = {kind: rq7.identity_overlaps(observed, kind) for kind in ("fe", "ce")}
    direction = rq7.fig10_direction(observed).parts
    gap = _one_row(
        {
            "n_top": n_top,
            "k": k_fe,
            "frobenius_train_vs_tp": summary["fb_tp"],
            "frobenius_train_vs_fp": summary["fb_fp"],
            "n_classes_tp": summary["rows_tp"],
            "n_classes_fp": summary["rows_fp"],
            "frobenius_train_vs_tp_matched": summary["fb_tp_matched"],
            "frobenius_train_vs_fp_matched": summary["fb_fp_matched"],
            "n_classes_matched": summary["rows_matched"],
            "n_draws": summary["draws"],
            # top-10 identity overlaps over the classes with TP and FP, each divided by the
            # smaller set; TP all, and drawn per class down to the FP count
            **{
                f"overlap_{kind}_{group}": float(values[0])
                for kind, groups in overlaps.items()
                for group, values in (
                    ("tp", groups["tp_all"]),
                    ("tp_matched", groups["tp"]),
                    ("fp", groups["fp"]),
                )
            },  # fmt: skip
            # Fig 10 as a direction: the minority group's top-10 fe means
            "fe_top_mean_train_minority_group": direction.get("train"),
            "fe_top_mean_tp_minority_group": direction.get("tp"),
            "fe_top_mean_fp_minority_group": direction.get("fp"),
            "n_classes_direction": direction.get("classes", 0),
        }
    )
    cols = _class_columns(inputs, np.arange(n_classes))
    cols["n_tp"] = _int_array(res.n_tp)
    cols["n_fp"] = _int_array(res.n_fp)
    cols["n_top"] = _int_array(np.full(n_classes, n_top))
    for key in ("fe_tp", "fe_fp", "ce_tp", "ce_fp"):
        cols[f"overlap_{key}"] = _int_array(
            np.nan_to_num(res.overlap[key], nan=-1), missing=lambda a: a < 0
        )
    return {
        "fe_means_top10": pa.concat_tables(parts),
        "generalization_gap": gap,
        "top_feature_overlap": pa.table(cols),
    }


_BUILDERS = {"rq2": _rq2, "rq3": _rq3, "rq4": _rq4, "rq5": _rq5, "rq6": _rq6, "rq7": _rq7}


def rq_tables(
    rq: str, inputs: RunInputs, *, ks: Sequence[int] = (2, 3, 5, 7), k_fe: int = 7
) -> dict[str, pa.Table]:
    """The tables of research question ``rq`` (``"rq2"`` ... ``"rq7"``), keyed as in
    :data:`TABLES`. ``ks``: RQ3's K values; ``k_fe``: the instance top-K of RQ4's logit
    shares, RQ6 and RQ7 (the paper's K = 7)."""
    if rq not in _BUILDERS:
        raise ConfigError(
            f"unknown research question {rq!r}; per-run tables exist for {sorted(TABLES)}"
        )
    width = inputs.n_features
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 or k > width for k in ks):
        raise ConfigError(f"every K in ks must lie in 1..{width} (the FE width), got {list(ks)}")
    if not 1 <= int(k_fe) <= width:
        raise ConfigError(f"k_fe must lie in 1..{width} (the FE width), got {k_fe}")
    if "test" in RUN_TABLES[rq].reads and inputs.test is None:
        raise FragilityError(f"the {rq} tables need the test embeddings; none were given")
    tables = _BUILDERS[rq](inputs, ks=ks, k_fe=int(k_fe))
    assert tuple(tables) == TABLES[rq], (rq, tuple(tables))
    return tables
