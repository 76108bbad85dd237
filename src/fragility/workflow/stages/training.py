"""The training stages: one run trained and written, and an old ``model.pt`` converted so
that a safe load reads it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import torch

from fragility.data import datasets as data
from fragility.data.splits import read_split, recorded_class_order, subset_indices
from fragility.errors import FragilityError
from fragility.io import Outputs, atomic_path, outputs_named, write_json, write_parquet
from fragility.training.checkpoints import load_checkpoint, plain
from fragility.training.engine import Subset, channel_stats, load_model, save_model, train
from fragility.training.gpus import device_record
from fragility.training.settings import TrainConfig
from fragility.workflow.provenance import code_version, environment

MODEL_OUTPUTS = ("model.pt", "history.parquet", "metrics.json")  # a training's files


def _load_subsets(canonical: data.Canonical, split: pa.Table) -> dict[str, Subset]:
    """Images and labels of every subset of a split (test rows come from the test array)."""
    out = {}
    for name in ("train", "pool", "val", "test"):
        index, labels = subset_indices(split, name)
        x = canonical.x_test if name == "test" else canonical.x_train
        out[name] = Subset(x[index], labels)
    return out


def train_run(
    canonical_path: str | Path,
    split_path: str | Path,
    outputs: Outputs,
    *,
    settings: dict,
    run_keys: dict,
    device: str = "auto",
    precision: str = "auto",
    resume_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train one run and write ``model.pt``, ``history.parquet`` and ``metrics.json`` (their
    paths in ``outputs``). ``settings``: its :class:`~fragility.training.settings.TrainConfig`
    fields; ``run_keys``: its dataset, imbalance, loss, seed and ``run`` (its folder name),
    recorded in every file; ``precision`` is the training's
    (:mod:`fragility.training.precision`); ``resume_path`` keeps a killed training's state."""
    paths = outputs_named(outputs, MODEL_OUTPUTS)
    cfg = TrainConfig(**settings)
    canonical = data.load_canonical(canonical_path)
    split = read_split(split_path, canonical, canonical_path)
    subsets = _load_subsets(canonical, split)
    result = train(
        cfg,
        subsets["train"],
        subsets["test"],
        subsets["val"],
        n_classes=len(canonical.classes),
        normalization=channel_stats(canonical.x_train),
        device=device,
        precision=precision,
        resume_path=resume_path,
        progress=progress,
        desc=run_keys.get("run", "train"),
    )
    # carried by model.pt, history.parquet and (through the model) every embedding file
    meta = dict(
        run_keys,
        epoch=result.best_epoch,
        arch=cfg.arch,
        config_hash=cfg.hash(),
        code_version=code_version(),
        device=result.metrics.get("device", device),
    )
    save_model(result, cfg, paths["model.pt"], meta)
    write_parquet(pa.Table.from_pylist(result.history), paths["history.parquet"], metadata=meta)
    metrics = dict(
        result.metrics,
        **device_record(result.metrics["device"]),  # which GPU (index, name, slot), if any
        classes=canonical.classes,
        **_class_order_record(split, len(canonical.classes)),
        run=run_keys,
        config_hash=cfg.hash(),
        train_config=settings,
        environment=environment(),
    )
    write_json(metrics, paths["metrics.json"])
    if resume_path:
        Path(resume_path).unlink(missing_ok=True)
    print(
        f"kept epoch {result.best_epoch} ({cfg.select}); test BAC {metrics['bac']:.4f}",
        file=sys.stderr,
    )
    return metrics


def _class_order_record(split: pa.Table, n_classes: int) -> dict:
    """The class order a split was drawn with, for ``metrics.json``: ``class_order`` (the
    class at each imbalance position, position 0 the majority) and ``class_order_mode``."""
    metadata = {k.decode(): v.decode() for k, v in (split.schema.metadata or {}).items()}
    order, mode = recorded_class_order(metadata)
    return {
        "class_order": list(range(n_classes)) if order is None else order,
        "class_order_mode": mode,
    }


def convert_model(model_path: str | Path) -> None:
    """Rewrite a ``model.pt`` written by an older version of fragility so that a safe load
    reads it: numpy scalars become Python numbers, numpy arrays lists, a dataclass or an
    ``argparse.Namespace`` the dict of its fields; any other object stops the conversion.
    The file is read in full, which runs whatever its pickle says: only for a file you made.
    Its weights are written back unchanged, and its time kept."""
    payload = load_checkpoint(model_path, trusted=True)
    try:
        converted = plain(payload, str(model_path), objects=True)
    except TypeError as error:
        raise FragilityError(f"cannot convert {model_path}: {error}") from None
    times = Path(model_path).stat()
    with atomic_path(model_path) as tmp:
        torch.save(converted, tmp)
    # the weights are the same, so what was computed from them stays valid: keep the file's
    # time, which Snakemake compares with its outputs'
    os.utime(model_path, ns=(times.st_atime_ns, times.st_mtime_ns))
    load_model(model_path)  # reads back safely, or says why not
    print(f"converted {model_path}: it now loads without running code", file=sys.stderr)
