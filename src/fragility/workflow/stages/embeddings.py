"""The embedding stages: the embeddings of a run's kept checkpoint, and those of a model
trained elsewhere with its test metrics."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.catalog.layout import EMBEDDINGS
from fragility.data import datasets as data
from fragility.data.splits import read_split, subset_indices
from fragility.embeddings.external import file_sha256, load_external, preprocessing, probe
from fragility.embeddings.extraction import write_embeddings
from fragility.embeddings.files import read_embeddings
from fragility.io import Outputs, outputs_named, write_json, write_parquet
from fragility.metrics import summary
from fragility.training.engine import load_model, resolve_device
from fragility.training.gpus import device_record
from fragility.workflow.config import config_hash
from fragility.workflow.provenance import code_version, environment

EMBEDDING_OUTPUTS = tuple(f"{name}.parquet" for name in EMBEDDINGS)  # the files of a model


def extract_run(
    canonical_path: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    outputs: Outputs,
    *,
    device: str = "auto",
) -> None:
    """Write the ``train``, ``pool`` (the whole balanced pool: the training subset and the
    rest), ``val`` (empty without a validation split) and ``test`` embeddings and the
    ``classifier`` of one kept checkpoint, each to its path in ``outputs``
    (``{subset}.parquet``, ``classifier.parquet``)."""
    files = _embedding_files(outputs_named(outputs, EMBEDDING_OUTPUTS))
    canonical = data.load_canonical(canonical_path)
    model, payload = load_model(model_path)
    subsets = _embedding_subsets(canonical, read_split(split_path, canonical, canonical_path))
    write_embeddings(
        model,
        payload["normalization"],
        subsets,
        files,
        payload["metadata"],
        device,
        source=str(model_path),
    )


def _embedding_subsets(canonical: data.Canonical, split: pa.Table) -> dict[str, tuple]:
    """``name -> (index, images, labels)`` of the subsets a model's embeddings cover:
    ``train``, ``pool`` (the split's train and pool rows together), ``val`` and ``test``."""
    parts = {name: subset_indices(split, name) for name in ("train", "pool", "val", "test")}
    pool_index = np.concatenate([parts["train"][0], parts["pool"][0]])
    pool_labels = np.concatenate([parts["train"][1], parts["pool"][1]])
    order = np.argsort(pool_index, kind="stable")
    return {
        "train": (parts["train"][0], canonical.x_train[parts["train"][0]], parts["train"][1]),
        "pool": (pool_index[order], canonical.x_train[pool_index[order]], pool_labels[order]),
        "val": (parts["val"][0], canonical.x_train[parts["val"][0]], parts["val"][1]),
        "test": (parts["test"][0], canonical.x_test[parts["test"][0]], parts["test"][1]),
    }


def _embedding_files(paths: dict[str, Path]) -> dict[str, Path]:
    """``{subset: path}`` of the embedding files among a stage's named outputs."""
    return {name.removesuffix(".parquet"): paths[name] for name in EMBEDDING_OUTPUTS}


def extract_external(
    canonical_path: str | Path,
    split_path: str | Path,
    checkpoint_path: str | Path,
    outputs: Outputs,
    *,
    model: dict,
    run_keys: dict,
    device: str = "auto",
) -> dict:
    """Embeddings of a model trained elsewhere, with its ``metrics.json`` (test metrics,
    ``source: external``, the checkpoint's sha256) and an empty ``history.parquet`` (no
    training history comes with a checkpoint), each to its path in ``outputs``. ``run_keys``:
    as for :func:`fragility.workflow.stages.training.train_run`. ``model``: its resolved config entry (``format``, ``arch``, ``options``,
    ``normalization``, ``input_size``, ``channels``, ``training_subset``, ...); a checkpoint
    that does not load whole, or images of another shape than the model takes, stop here
    before anything is written."""
    paths = outputs_named(outputs, (*EMBEDDING_OUTPUTS, "metrics.json", "history.parquet"))
    start = time.perf_counter()
    canonical = data.load_canonical(canonical_path)
    shape = canonical.x_train.shape[1:]
    trusted = bool(model.get("trust_checkpoint", False))
    loaded = load_external(
        checkpoint_path,
        model["format"],
        model["arch"],
        model["options"],
        trusted=trusted,
        name=model["name"],
    )
    normalization = preprocessing(loaded, model, shape)
    probe(loaded.model, shape, model["name"])
    checkpoint = _checkpoint_record(checkpoint_path, model["format"], loaded)
    resolved = str(resolve_device(device))
    meta = dict(
        run_keys,
        source="external",
        epoch=loaded.epoch,
        arch=loaded.arch,
        format=model["format"],
        checkpoint_sha256=checkpoint["sha256"],
        config_hash=config_hash(model),
        code_version=code_version(),
        device=resolved,
    )
    subsets = _embedding_subsets(canonical, read_split(split_path, canonical, canonical_path))
    embedding_files = _embedding_files(paths)
    write_embeddings(loaded.model, normalization, subsets, embedding_files, meta, device,
                     source=str(checkpoint_path))  # fmt: skip
    empty = pa.table({"epoch": pa.array([], pa.int64())})
    history = dict(meta, history="none: trained elsewhere")
    write_parquet(empty, paths["history.parquet"], metadata=history)
    test = read_embeddings(embedding_files["test"])
    metrics = dict(
        _external_metrics(test, subsets["train"][2], canonical.classes, model, loaded.epoch),
        checkpoint=checkpoint,
        trusted=trusted,  # loaded in full (trust_checkpoint), its pickle run as it says
        normalization=normalization,
        image_shape=list(shape),
        wall_seconds=time.perf_counter() - start,  # this pipeline's time on it: the extraction
        device=resolved,
        **device_record(resolved),
        run=run_keys,
        config_hash=meta["config_hash"],
        environment=environment(),
    )
    write_json(metrics, paths["metrics.json"])
    print(f"{model['name']}: test BAC {metrics['bac']:.4f} ({checkpoint_path})", file=sys.stderr)
    return metrics


def _checkpoint_record(path: str | Path, format: str, loaded) -> dict:
    """What metrics.json records of a checkpoint from elsewhere: where, which bytes (sha256
    and size), its format, and the architecture and epoch it declared."""
    return {"path": str(path), "sha256": file_sha256(path), "bytes": Path(path).stat().st_size,
            "format": format, "arch": loaded.arch, "epoch": loaded.epoch}  # fmt: skip


# what a model trained elsewhere cannot have without the images it was trained on
TRAIN_SET_ANALYSES = ("rq2", "rq3", "rq4", "rq5", "rq6", "rq7", "bootstrap", "claims", "remedies")


def _external_metrics(
    test: dict, train_labels: np.ndarray, classes: list[str], model: dict, epoch: int | None
) -> dict:
    """The fields of a model trained elsewhere's ``metrics.json`` that come from its test
    embeddings (``test``: :func:`fragility.embeddings.files.read_embeddings`), its training
    subset's labels, its config entry and its checkpoint's epoch (None: not recorded)."""
    known = model["training_subset"]["mode"] != "none"
    counts = np.bincount(train_labels, minlength=len(classes)).tolist() if known else None
    return dict(
        summary(test["label"], test["pred"], len(classes)),
        source="external",
        kept_epoch=epoch,
        select="external",
        epochs=model["trained_with"].get("epochs"),
        classes=classes,
        train_class_counts=counts,
        training_subset=model["training_subset"],
        analyses_not_run=[] if known else list(TRAIN_SET_ANALYSES),
        model=model,
    )
