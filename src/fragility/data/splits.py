"""Seeded imbalanced training splits (docs/data-and-splits.md), stored as Parquet.

A split assigns rows of the canonical train/test arrays to subsets:
``train`` (the imbalanced subset), ``pool`` (in the balanced pool, not in the subset),
``val`` (balanced, outside the pool) and ``test`` (balanced).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fragility.catalog.layout import IMBALANCE
from fragility.errors import ConfigError, FragilityError
from fragility.io import read_parquet_metadata, read_table

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
    """Training images kept per class position (position 0 = majority).

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


# How a split orders the classes by size: ``label`` keeps the labels' order (class 0 the
# majority, the paper's), ``seeded`` draws a permutation from the run's seed; a config may also
# give the order itself (a list, recorded as ``explicit``).
CLASS_ORDER_MODES = ("label", "seeded")
# The seeded order's own stream: a child of the seed's SeedSequence, so drawing the order
# takes nothing from the stream that draws the images (``numpy.random.default_rng(seed)``).
_ORDER_STREAM = 1


def seeded_class_order(n_classes: int, seed: int) -> list[int]:
    """The class at each imbalance position (position 0 = majority) that ``class_order:
    seeded`` gives ``seed``: a permutation of ``0..n_classes-1`` from a generator of its own."""
    sequence = np.random.SeedSequence(int(seed), spawn_key=(_ORDER_STREAM,))
    return [int(c) for c in np.random.default_rng(sequence).permutation(n_classes)]


def resolve_class_order(
    class_order: str | list[int] | None, n_classes: int, seed: int
) -> tuple[list[int], str]:
    """``(order, mode)``: the class at each imbalance position and how it was chosen
    (``label``, ``seeded`` or ``explicit``). ``class_order``: ``None`` or ``"label"``
    (``0..C-1``), ``"seeded"`` (:func:`seeded_class_order`) or a list naming every class once."""
    if class_order is None or class_order == "label":
        return list(range(n_classes)), "label"
    if class_order == "seeded":
        return seeded_class_order(n_classes, seed), "seeded"
    if isinstance(class_order, str):
        raise ConfigError(
            f"class_order {class_order!r}: use {' or '.join(CLASS_ORDER_MODES)} or a list of "
            "the class indices"
        )
    order = [int(c) for c in class_order]
    if sorted(order) != list(range(n_classes)):
        raise ConfigError(
            f"class_order {order} must list every class 0..{n_classes - 1} exactly once"
        )
    return order, "explicit"


def make_split(
    y_train: np.ndarray,
    y_test: np.ndarray,
    imbalance: str,
    n_max: int,
    seed: int,
    *,
    n_val: int = 0,
    n_test: int | None = None,
    class_order: str | list[int] | None = None,
) -> pa.Table:
    """Draw the split for one run.

    ``y_train``/``y_test``: labels of the canonical arrays, ``(N,)`` and ``(M,)``.
    ``class_order`` (:func:`resolve_class_order`) puts a class at each imbalance position
    (default: class ``i`` at position ``i``). It decides only how many of a class's pool
    images are kept for training: which images form the pool, the validation and the test
    set is drawn per class in label order, so that two orders of one seed keep the same
    images and differ only in how many of them each class trains on.
    Returns a table with columns ``index``, ``label``, ``subset``, sorted by subset then index.
    The draw depends only on the labels, the arguments and ``seed``.
    """
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    order, _ = resolve_class_order(class_order, n_classes, seed)
    by_position = class_counts(imbalance, n_max, n_classes)
    kept = {cls: by_position[position] for position, cls in enumerate(order)}
    parts: dict[str, list[np.ndarray]] = {"train": [], "pool": [], "val": [], "test": []}

    for cls, shuffled, test_rows in _class_draws(y_train, y_test, n_classes, seed, n_test):
        needed = n_max + n_val
        if len(shuffled) < needed:
            what = f"n_max={n_max}" + (f" + n_val={n_val}" if n_val else "")
            raise FragilityError(
                f"class {cls} has {len(shuffled)} training images, fewer than {what} = "
                f"{needed}; lower n_max (or n_val)"
            )
        pool = shuffled[:n_max]
        parts["train"].append(pool[: kept[cls]])
        parts["pool"].append(pool[kept[cls] :])
        parts["val"].append(shuffled[n_max:needed])
        parts["test"].append(test_rows)
    return _split_table(parts, y_train, y_test)


def _class_draws(y_train, y_test, n_classes: int, seed: int, n_test: int | None):
    """Per class in label order: ``(class, its training rows shuffled, its test rows)``, the
    test rows all of them or ``n_test`` drawn. One generator seeded by ``seed`` makes every
    draw, in this order; the test draw depends on the class sizes only, not on the
    imbalance or the class order, so every split of one seed has the same test images."""
    rng = np.random.default_rng(seed)
    for cls in range(n_classes):
        shuffled = rng.permutation(np.flatnonzero(y_train == cls))
        test_rows = np.flatnonzero(y_test == cls)
        if n_test is not None:
            if len(test_rows) < n_test:
                raise FragilityError(
                    f"class {cls} has {len(test_rows)} test images, fewer than n_test={n_test}"
                )
            test_rows = rng.permutation(test_rows)[:n_test]
        yield cls, shuffled, test_rows


def class_order_metadata(order: list[int], mode: str) -> dict[str, str]:
    """The split file's key-value record of its class order: ``class_order`` (a JSON list,
    the class at each imbalance position) and ``class_order_mode``."""
    return {"class_order": json.dumps(order), "class_order_mode": mode}


def recorded_class_order(metadata: dict[str, str]) -> tuple[list[int] | None, str]:
    """``(order, mode)`` recorded in a split file's key-value ``metadata``. A split written
    before the mode was recorded holds ``class_order`` ``None`` (label order: ``(None,
    "label")``, its length unknown) or its list (``explicit``)."""
    text = metadata.get("class_order", "None")
    order = None if text == "None" else [int(c) for c in json.loads(text)]
    return order, metadata.get("class_order_mode", "label" if order is None else "explicit")


def check_recorded_class_orders(results: str | Path, dataset: str, class_order, key: str) -> None:
    """Refuse a class order other than the one the splits already under ``results`` were
    drawn with (``{results}/{dataset}/*/split_seed*.parquet``): redrawing them would replace
    the models, embeddings and tables of the other order, and keeping them would mix two
    orders in one study. ``class_order`` is the config's setting (None = label order), ``key``
    its name in the config, for the one-line message."""
    setting = "label" if class_order is None else class_order
    for path in sorted(Path(results).glob(f"{dataset}/*/split_seed*.parquet")):
        try:
            metadata = read_parquet_metadata(path)
            found, mode = recorded_class_order(metadata)
            seed = int(metadata["seed"])
        except (OSError, KeyError, ValueError, pa.ArrowException, FragilityError):
            continue  # not a split file this workflow wrote: its rule redraws or reports it
        written_before_modes = "class_order_mode" not in metadata
        if written_before_modes and found is not None and found != sorted(found):
            raise ConfigError(  # that version drew the classes' images in the order's sequence
                f"{path} was drawn in class order {found} by an earlier version, which chose "
                "other images for it than this one; delete "
                f"{Path(results) / dataset} to redraw every run of it"
            )
        if found is None:  # written before the order was recorded: label order
            same = setting == "label" or (isinstance(setting, list) and setting == sorted(setting))
        elif isinstance(setting, list):
            same = found == setting
        else:
            same = found == resolve_class_order(setting, len(found), seed)[0]
        if not same:
            shown = "label order" if found is None else f"{mode} class order {found}"
            raise ConfigError(
                f"{key} is {setting}, but {path} was drawn in {shown}; give this study a "
                f"results root of its own, or delete {Path(results) / dataset} to redraw "
                "every run of it"
            )


def _split_table(parts: dict[str, list[np.ndarray]], y_train, y_test) -> pa.Table:
    """The split table of row chunks per subset (``train``, ``pool``, ``val``, ``test``):
    rows sorted within each subset, labels looked up in the canonical arrays."""
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


SUBSETS = ("train", "pool", "val", "test")


def read_split(path, canonical, canonical_path=None) -> pa.Table:
    """The split table in ``path``, checked against the dataset it indexes (``canonical``: a
    :class:`fragility.data.datasets.Canonical`, read from ``canonical_path``): the columns ``index``,
    ``label`` (integers) and ``subset`` (one of :data:`SUBSETS`), rows inside the training or
    test array, labels inside the class range and equal to the dataset's own. Anything else is
    one :class:`FragilityError` naming the file."""
    table = read_table(path)
    kinds = {"index": pa.types.is_integer, "label": pa.types.is_integer}
    kinds["subset"] = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    for name, ok in kinds.items():
        if name not in table.column_names:
            raise FragilityError(f"{path} is not a split file: it has no column {name!r}")
        if not ok(table.schema.field(name).type):
            raise FragilityError(
                f"{path}: column {name!r} is {table.schema.field(name).type}, not a "
                + ("string" if name == "subset" else "integer")
            )
    subset = np.asarray(table.column("subset").to_pylist(), dtype=object)
    unknown = sorted(set(subset) - set(SUBSETS), key=str)
    if unknown:
        raise FragilityError(f"{path}: unknown subsets {unknown}; a split has {list(SUBSETS)}")
    index = table.column("index").to_numpy()
    label = table.column("label").to_numpy()
    n_classes = len(canonical.classes)
    outside = (label < 0) | (label >= n_classes)
    if outside.any():
        raise FragilityError(
            f"{path}: {int(outside.sum())} labels lie outside the class range 0..{n_classes - 1} "
            f"of {canonical.name} (e.g. {int(label[outside][0])})"
        )
    source = canonical_path or canonical.name
    is_test = subset == "test"
    for rows, y, where in (
        (is_test, canonical.y_test, "test"),
        (~is_test, canonical.y_train, "training"),
    ):
        beyond = (index[rows] < 0) | (index[rows] >= len(y))
        if beyond.any():
            raise FragilityError(
                f"{path}: row {int(index[rows][beyond][0])} lies outside the {where} array of "
                f"{source} (0..{len(y) - 1}); the split belongs to another dataset: delete it "
                "to have it drawn again"
            )
        differ = label[rows] != y[index[rows]]
        if differ.any():
            raise FragilityError(
                f"{path}: {int(differ.sum())} labels differ from those of {source}; the split "
                "belongs to another version of the dataset: delete it to have it drawn again"
            )
    return table


# -- the training subset of a model trained elsewhere (config ``models``) ------------------


def ldam_drw_counts(n_train: int, n_classes: int, imb_type: str, imb_factor: float) -> list[int]:
    """Training images per class of LDAM-DRW's ``IMBALANCECIFAR10/100``
    (``get_img_num_per_cls``): ``img_max = n_train / n_classes`` and, for ``exp``,
    ``int(img_max * imb_factor ** (i / (C - 1)))``; ``step`` keeps ``int(img_max)`` for the
    first half and ``int(img_max * imb_factor)`` for the second; anything else is balanced.

    >>> ldam_drw_counts(50000, 10, "exp", 0.01)
    [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    img_max = n_train / n_classes
    if imb_type == "exp":
        return [int(img_max * imb_factor ** (i / (n_classes - 1.0))) for i in range(n_classes)]
    if imb_type == "step":
        half = n_classes // 2
        return [int(img_max)] * half + [int(img_max * imb_factor)] * half
    return [int(img_max)] * n_classes


def ldam_drw_parameters(imbalance: str, imb_factor: float | None = None) -> tuple[str, float]:
    """LDAM-DRW's ``(imb_type, imb_factor)`` for an imbalance spec: ``exp100`` -> ``("exp",
    0.01)``; ``imb_factor`` given (its ``--imb_factor``) must agree with R to 1 %."""
    imb = Imbalance.parse(imbalance)
    if imb.kind == "balanced":
        return "none", 1.0
    factor = 1.0 / imb.ratio if imb_factor is None else float(imb_factor)
    if not 0 < factor <= 1 or abs(1.0 / factor - imb.ratio) > 0.01 * imb.ratio:
        raise ConfigError(
            f"imb_factor {imb_factor} does not match imbalance {imbalance!r} (R = "
            f"{imb.ratio:g}, so imb_factor = 1/R = {1.0 / imb.ratio:.6g})"
        )
    return imb.kind, factor


def ldam_drw_indices(
    y_train: np.ndarray, n_classes: int, imb_type: str, imb_factor: float, rand_number: int
) -> np.ndarray:
    """Rows of the training array that LDAM-DRW's ``IMBALANCECIFAR10/100`` keeps, in its
    order: ``np.random.seed(rand_number)``, then per class in label order a
    ``np.random.shuffle`` of the class's rows and the first ``n_i`` of them
    (:func:`ldam_drw_counts`). The same stream from an explicit ``RandomState``.
    ``y_train (N,)``: the labels in the order of CIFAR's ``data_batch_1..5`` (the canonical
    array's)."""
    y = np.asarray(y_train, dtype=np.int64)
    counts = ldam_drw_counts(len(y), n_classes, imb_type, imb_factor)
    rng = np.random.RandomState(rand_number)  # what np.random.seed seeds
    kept = []
    for cls, n in zip(np.unique(y), counts):
        rows = np.where(y == cls)[0]
        rng.shuffle(rows)
        kept.append(rows[:n])
    return np.concatenate(kept).astype(np.int64)


def read_training_index(path: str, n_train: int) -> np.ndarray:
    """Training-array rows from an index file: ``.npy`` (1-D integers) or Parquet (column
    ``index``; a split file's ``train`` rows when it has a ``subset`` column)."""
    try:
        if str(path).endswith(".npy"):
            rows = np.load(path, allow_pickle=False)
        else:
            table = pq.read_table(path)
            if "subset" in table.column_names:
                rows = subset_indices(table, "train")[0]
            else:
                rows = table.column("index").to_numpy()
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise FragilityError(
            f"cannot read training indices from {path} ({type(exc).__name__}: {exc}); give a "
            ".npy of integers or a Parquet file with an 'index' column"
        ) from exc
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise FragilityError(f"{path}: expected 1-D integer rows, got {rows.dtype} {rows.shape}")
    bad = rows[(rows < 0) | (rows >= n_train)]
    if len(bad):
        raise FragilityError(
            f"{path}: row {int(bad[0])} lies outside the training array (0..{n_train - 1})"
        )
    if len(np.unique(rows)) != len(rows):
        raise FragilityError(f"{path} lists some training rows twice")
    return rows.astype(np.int64)


def external_split(
    y_train: np.ndarray,
    y_test: np.ndarray,
    train_rows: np.ndarray | None,
    *,
    seed: int,
    n_max: int,
    n_test: int | None = None,
) -> pa.Table:
    """The split of a model trained elsewhere on the images of ``train_rows`` (None:
    unknown). ``train`` is that subset and ``pool`` every other training image, so that
    train and pool together are the whole training array, LDAM-DRW's pool. With the subset
    unknown, ``train`` is empty and ``pool`` the study's balanced pool of ``seed`` (``n_max``
    per class). ``val`` is empty (the model may have seen any training image); ``test`` is
    the study's test subset of ``seed``, the test images of the study's own runs."""
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    draws = list(_class_draws(y_train, y_test, n_classes, seed, n_test))
    parts = {"train": [], "pool": [], "val": [], "test": [rows for _, _, rows in draws]}
    if train_rows is None:
        parts["pool"] = [shuffled[:n_max] for _, shuffled, _ in draws]
    else:
        train_rows = np.asarray(train_rows, dtype=np.int64)
        in_train = np.zeros(len(y_train), dtype=bool)
        in_train[train_rows] = True
        parts["train"] = [train_rows]
        parts["pool"] = [np.flatnonzero(~in_train)]
    return _split_table(parts, y_train, y_test)
