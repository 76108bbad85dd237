"""The columns every per-run table shares, built from a run's :class:`RunInputs`.

- ``class`` (int) and ``class_name``; ``role`` = ``"majority"`` (largest training class,
  first on ties), ``"minority"`` (smallest, last on ties) or ``"other"``; ``class_group`` =
  ``"majority"`` / ``"minority"`` for the largest / smallest 40 % of the classes (the paper's
  classes 0-3 and 6-9 of ten; :func:`fragility.analysis.inputs.class_groups`), else
  ``"middle"``; ``n_train`` = the run's training images of that class (``metrics.json``
  ``train_class_counts``).
- A value that does not exist (a class with no instance, a class nothing is predicted as) is
  null, never NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from fragility.analysis.inputs import RunInputs


def float_column(values) -> pa.Array:
    """float64 column; NaN becomes null (a value that does not exist)."""
    arr = np.asarray(values, dtype=np.float64)
    return pa.array(arr, mask=np.isnan(arr), type=pa.float64())


def int_column(values, missing: Callable[[np.ndarray], np.ndarray] | None = None) -> pa.Array:
    arr = np.asarray(values, dtype=np.int64)
    mask = missing(arr) if missing is not None else None
    return pa.array(arr, mask=mask, type=pa.int64())


def class_columns(inputs: RunInputs, classes: np.ndarray) -> dict[str, pa.Array]:
    """``class``, ``class_name``, ``role``, ``class_group``, ``n_train`` for a column of
    class indices."""
    classes = np.asarray(classes, dtype=np.int64)
    roles = inputs.role_names()
    groups = inputs.group_names()
    return {
        "class": int_column(classes),
        "class_name": pa.array([inputs.class_names[c] for c in classes], type=pa.string()),
        "role": pa.array([roles[c] for c in classes], type=pa.string()),
        "class_group": pa.array([groups[c] for c in classes], type=pa.string()),
        "n_train": int_column(inputs.counts[classes]),
    }


def ranked_table(
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
    cols = class_columns(inputs, classes)
    for name, vals in (per_class or {}).items():
        cols[name] = int_column(np.asarray(vals)[classes])
    cols["rank"] = int_column(np.tile(np.arange(1, n + 1), n_classes))
    if idx is not None:
        cols["feature"] = int_column(idx.ravel(), missing=lambda a: a < 0)
    cols[value_name] = float_column(values.ravel())
    for name, vals in (extra or {}).items():
        cols[name] = float_column(np.asarray(vals).ravel())
    return pa.table(cols)


def one_row(values: dict, int_keys: tuple[str, ...] = ()) -> pa.Table:
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
            cols[key] = float_column([np.nan if val is None else val])
    return pa.table(cols)


def row_max(x: np.ndarray) -> np.ndarray:
    """Largest entry per row (NaN for an all-NaN row), as Tables 3-4 take it."""
    return np.array([np.nan if np.all(np.isnan(r)) else np.nanmax(r) for r in x])


def roles_row(inputs: RunInputs) -> dict:
    maj, mino = inputs.majority, inputs.minority
    return {
        "majority_class": maj,
        "majority_name": inputs.class_names[maj],
        "minority_class": mino,
        "minority_name": inputs.class_names[mino],
    }


def class_list(classes) -> str:
    """``0,1,2,3``: a group's classes as a by-seed table can keep them (text)."""
    return ",".join(str(int(c)) for c in classes)


def groups_row(inputs: RunInputs) -> dict:
    majority, minority = inputs.groups
    return {"majority_group": class_list(majority), "minority_group": class_list(minority)}
