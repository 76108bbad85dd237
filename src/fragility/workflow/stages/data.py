"""The data stages: a dataset's canonical ``.npz``, and the split of a run (or of a model
trained elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.data import datasets as data
from fragility.data.splits import (
    class_order_metadata,
    external_split,
    ldam_drw_indices,
    make_split,
    read_training_index,
    resolve_class_order,
    subset_indices,
)
from fragility.io import Outputs, the_output, write_parquet


def prepare_data(name: str, settings: dict, outputs: Outputs) -> None:
    """Convert dataset ``name`` (config entry ``settings``) once into the canonical ``.npz``
    (``outputs``: its path)."""
    data.prepare_dataset(
        settings.get("loader") or name,
        the_output(outputs),
        root=settings.get("root"),
        download=settings.get("download", False),
        **settings.get("options", {}),
    )


def split_dataset(
    canonical_path: str | Path,
    outputs: Outputs,
    *,
    imbalance: str,
    seed: int,
    n_max: int,
    n_val: int = 0,
    n_test: int | None = None,
    class_order: str | list[int] | None = None,
) -> pa.Table:
    """Draw one run's split (:func:`fragility.data.splits.make_split`) and write it with its
    settings and the class order it used (``class_order``, the class at each imbalance
    position, and ``class_order_mode``) as key-value metadata, to ``outputs`` (its path)."""
    canonical = data.load_canonical(canonical_path)
    n_classes = int(max(canonical.y_train.max(), canonical.y_test.max())) + 1
    order, mode = resolve_class_order(class_order, n_classes, seed)
    table = make_split(
        canonical.y_train,
        canonical.y_test,
        imbalance,
        n_max,
        seed,
        n_val=n_val,
        n_test=n_test,
        class_order=order,
    )
    meta = {
        "dataset": canonical.name,
        "imbalance": imbalance,
        "seed": seed,
        "n_max": n_max,
        "n_val": n_val,
        "n_test": n_test,
        **class_order_metadata(order, mode),
    }
    write_parquet(table, the_output(outputs), metadata=meta)
    return table


def split_external(
    canonical_path: str | Path,
    outputs: Outputs,
    *,
    settings: dict,
    index_path: str | Path | None = None,
) -> pa.Table:
    """The split of a model trained elsewhere (:func:`fragility.data.splits.external_split`),
    its training subset by ``settings["mode"]``: ``study`` this study's own split
    (:func:`make_split`), ``ldam_drw`` LDAM-DRW's sampling (``imb_type``, ``imb_factor``,
    ``rand_number``), ``index_file`` the rows in ``index_path``, ``none`` unknown (an
    empty ``train``). ``settings`` (:meth:`fragility.workflow.config.Study.external_split_settings`)
    also holds ``seed``, ``n_test``, ``class_order`` (which only ``study``'s subset
    follows) and, for ``study`` and ``none``, ``n_max`` (and ``n_val``). ``outputs``: the
    split's path."""
    canonical = data.load_canonical(canonical_path)
    y_train, y_test, mode = canonical.y_train, canonical.y_test, settings["mode"]
    draw = {k: settings.get(k) for k in ("seed", "n_test")}
    if mode == "study":
        rest = {k: settings[k] for k in ("n_val", "n_test", "class_order")}
        table = make_split(
            y_train, y_test, settings["imbalance"], settings["n_max"], settings["seed"], **rest
        )
    elif mode == "none":
        table = external_split(y_train, y_test, None, n_max=settings["n_max"], **draw)
    else:
        rows = (
            ldam_drw_indices(
                y_train,
                len(canonical.classes),
                settings["imb_type"],
                settings["imb_factor"],
                settings["rand_number"],
            )
            if mode == "ldam_drw"
            else read_training_index(str(index_path), len(y_train))
        )
        table = external_split(y_train, y_test, rows, n_max=len(y_train), **draw)
    metadata = {"dataset": canonical.name, **settings}
    if mode == "study":  # the class order its subset was drawn in, as a run's split records it
        n_classes = int(max(y_train.max(), y_test.max())) + 1
        order = resolve_class_order(settings["class_order"], n_classes, settings["seed"])
        metadata.update(class_order_metadata(*order))
    write_parquet(table, the_output(outputs), metadata=metadata)
    counts = np.bincount(subset_indices(table, "train")[1], minlength=len(canonical.classes))
    print(f"training subset ({mode}): {counts.tolist()} images per class", file=sys.stderr)
    return table
