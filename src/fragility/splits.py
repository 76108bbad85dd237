"""Seeded imbalanced training splits (SPEC §1), stored as Parquet.

A split assigns rows of the canonical train/test arrays to subsets:
``train`` (the imbalanced subset), ``pool`` (in the balanced pool, not in the subset),
``val`` (balanced, outside the pool) and ``test`` (balanced).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .catalog import IMBALANCE
from .errors import ConfigError, FragilityError

_IMBALANCE = re.compile(rf"^(?:{IMBALANCE})$")


@dataclass(frozen=True)
class Imbalance:
    """A parsed imbalance spec: ``kind`` in {balanced, exp, step}, ratio ``R`` (1 if balanced)."""

    kind: str
    ratio: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> Imbalance:
        spec = str(spec)
        if not _IMBALANCE.match(spec):
            raise ConfigError(
                f"malformed imbalance {spec!r}: use 'balanced', 'exp<R>' (e.g. exp100) "
                "or 'step<R>' (e.g. step10), with R >= 1"
            )
        if spec == "balanced":
            return cls("balanced")
        kind = "exp" if spec.startswith("exp") else "step"
        ratio = float(spec[len(kind) :])
        if ratio < 1:
            raise ConfigError(f"malformed imbalance {spec!r}: the ratio R must be >= 1")
        return cls(kind, ratio)


def class_counts(imbalance: str | Imbalance, n_max: int, n_classes: int) -> list[int]:
    """Training images kept per class position (position 0 = majority), as SPEC §1 defines.

    >>> class_counts("exp100", 5000, 10)
    [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    imb = imbalance if isinstance(imbalance, Imbalance) else Imbalance.parse(imbalance)
    if imb.kind == "balanced" or n_classes == 1:
        return [n_max] * n_classes
    if imb.kind == "exp":
        return [int(n_max * imb.ratio ** (-i / (n_classes - 1))) for i in range(n_classes)]
    half = n_classes // 2
    return [n_max] * half + [int(n_max / imb.ratio)] * (n_classes - half)


def make_split(
    y_train: np.ndarray,
    y_test: np.ndarray,
    imbalance: str,
    n_max: int,
    seed: int,
    *,
    n_val: int = 0,
    n_test: int | None = None,
    class_order: list[int] | None = None,
) -> pa.Table:
    """Draw the split for one run.

    ``y_train``/``y_test``: labels of the canonical arrays, ``(N,)`` and ``(M,)``.
    ``class_order[i]`` is the class at imbalance position ``i`` (default ``0..C-1``).
    Returns a table with columns ``index``, ``label``, ``subset``, sorted by subset then index.
    The draw depends only on the labels, the arguments and ``seed``.
    """
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    order = list(range(n_classes)) if class_order is None else [int(c) for c in class_order]
    if sorted(order) != list(range(n_classes)):
        raise ConfigError(
            f"class_order {order} must list every class 0..{n_classes - 1} exactly once"
        )
    counts = class_counts(imbalance, n_max, n_classes)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "pool": [], "val": [], "test": []}

    for position, cls in enumerate(order):
        rows = np.flatnonzero(y_train == cls)
        needed = n_max + n_val
        if len(rows) < needed:
            what = f"n_max={n_max}" + (f" + n_val={n_val}" if n_val else "")
            raise FragilityError(
                f"class {cls} has {len(rows)} training images, fewer than {what} = {needed}; "
                "lower n_max (or n_val)"
            )
        shuffled = rng.permutation(rows)
        pool = shuffled[:n_max]
        parts["train"].append(pool[: counts[position]])
        parts["pool"].append(pool[counts[position] :])
        parts["val"].append(shuffled[n_max:needed])

        test_rows = np.flatnonzero(y_test == cls)
        if n_test is not None:
            if len(test_rows) < n_test:
                raise FragilityError(
                    f"class {cls} has {len(test_rows)} test images, fewer than n_test={n_test}"
                )
            test_rows = rng.permutation(test_rows)[:n_test]
        parts["test"].append(test_rows)

    index, subset = [], []
    for name, chunks in parts.items():
        rows = np.sort(np.concatenate(chunks)) if chunks else np.empty(0, np.int64)
        index.append(rows)
        subset += [name] * len(rows)
    index = np.concatenate(index).astype(np.int64)
    is_test = np.array([s == "test" for s in subset], dtype=bool)
    label = np.where(
        is_test, y_test[np.where(is_test, index, 0)], y_train[np.where(is_test, 0, index)]
    )
    return pa.table(
        {
            "index": pa.array(index, pa.int64()),
            "label": pa.array(label.astype(np.int64), pa.int64()),
            "subset": pa.array(subset, pa.string()),
        }
    )


def subset_indices(split: pa.Table, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """``(index, label)`` arrays of one subset of a split table."""
    mask = np.asarray(split.column("subset").to_pylist()) == subset
    return (
        split.column("index").to_numpy()[mask],
        split.column("label").to_numpy()[mask],
    )
