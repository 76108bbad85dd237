"""The pipeline's stages as file-in, file-out functions (used by the workflow and the CLI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.data import datasets as data
from fragility.data.splits import (
    class_order_metadata,
    make_split,
    read_split,
    recorded_class_order,
    resolve_class_order,
    subset_indices,
)
from fragility.errors import FragilityError
from fragility.io import read_json, write_json, write_parquet
from fragility.training.engine import Subset, channel_stats, save_model, train
from fragility.training.gpus import device_record
from fragility.training.settings import TrainConfig
from fragility.workflow.provenance import code_version, environment


def prepare_data(name: str, settings: dict, out_path: str | Path) -> None:
    """Convert dataset ``name`` (config entry ``settings``) once into the canonical ``.npz``."""
    data.prepare_dataset(
        settings.get("loader") or name,
        out_path,
        root=settings.get("root"),
        download=settings.get("download", False),
        **settings.get("options", {}),
    )


def split_dataset(
    canonical_path: str | Path,
    out_path: str | Path,
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
    position, and ``class_order_mode``) as key-value metadata."""
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
    write_parquet(table, out_path, metadata=meta)
    return table


def load_subsets(canonical: data.Canonical, split: pa.Table) -> dict[str, Subset]:
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
    *,
    model_path: str | Path,
    history_path: str | Path,
    metrics_path: str | Path,
    settings: dict,
    run_info: dict,
    device: str = "auto",
    precision: str = "auto",
    resume_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train one run and write ``model.pt``, ``history.parquet`` and ``metrics.json``;
    ``precision`` is the training's (:mod:`fragility.training.precision`)."""
    cfg = TrainConfig(**settings)
    canonical = data.load_canonical(canonical_path)
    split = read_split(split_path, canonical, canonical_path)
    subsets = load_subsets(canonical, split)
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
        desc=run_info.get("run", "train"),
    )
    # carried by model.pt, history.parquet and (through the model) every embedding file
    meta = dict(
        run_info,
        epoch=result.best_epoch,
        arch=cfg.arch,
        config_hash=cfg.hash(),
        code_version=code_version(),
        device=result.metrics.get("device", device),
    )
    save_model(result, cfg, model_path, meta)
    write_parquet(pa.Table.from_pylist(result.history), history_path, metadata=meta)
    metrics = dict(
        result.metrics,
        **device_record(result.metrics["device"]),  # which GPU (index, name, slot), if any
        classes=canonical.classes,
        **_class_order_record(split, len(canonical.classes)),
        run=run_info,
        config_hash=cfg.hash(),
        train_config=settings,
        environment=environment(),
    )
    write_json(metrics, metrics_path)
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


def extract_run(
    canonical_path: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    outputs: dict,
    *,
    device: str = "auto",
) -> None:
    """Write the ``train``, ``pool`` (the whole balanced pool: the training subset and the
    rest), ``val`` (empty without a validation split) and ``test`` embeddings and the
    ``classifier`` of one kept checkpoint, each to its path in ``outputs``."""
    from fragility.embeddings.extraction import write_embeddings
    from fragility.training.engine import load_model

    canonical = data.load_canonical(canonical_path)
    model, payload = load_model(model_path)
    subsets = _embedding_subsets(canonical, read_split(split_path, canonical, canonical_path))
    write_embeddings(
        model,
        payload["normalization"],
        subsets,
        outputs,
        payload["metadata"],
        device,
        source=str(model_path),
    )


def convert_model(model_path: str | Path) -> None:
    """Rewrite a ``model.pt`` written by an older version of fragility so that a safe load
    reads it: numpy scalars become Python numbers, numpy arrays lists, a dataclass or an
    ``argparse.Namespace`` the dict of its fields; any other object stops the conversion.
    The file is read in full, which runs whatever its pickle says: only for a file you made.
    Its weights are written back unchanged, and its time kept."""
    import torch

    from fragility.io import atomic_path
    from fragility.training.checkpoints import load_checkpoint, plain
    from fragility.training.engine import load_model

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


def remedy_run(
    files: dict,
    name: str,
    method: str,
    params: dict,
    outputs: dict,
    *,
    seed: int,
) -> dict:
    """Apply feature-space remedy ``method`` (SPEC §5) to a trained run's embeddings and
    write a model folder the RQ analyses can read: ``outputs["metrics"]`` (the run's fields)
    and ``outputs["train"/"test"/"classifier"]``, the embeddings of the new head. ``files``:
    the run's ``train``, ``val`` (optional), ``test`` and ``classifier`` embeddings and its
    ``metrics``."""
    from fragility.embeddings.files import (
        classifier_arrays_table,
        embeddings_table,
        read_classifier,
        read_embeddings,
    )
    from fragility.remedies.registry import apply_remedy

    train, test = read_embeddings(files["train"]), read_embeddings(files["test"])
    val = read_embeddings(files["val"]) if "val" in files else None
    if val is not None and len(val["label"]) == 0:
        val = None
    classifier = read_classifier(files["classifier"])
    base = read_json(files["metrics"])
    result = apply_remedy(method, train, test, classifier, val=val, seed=seed, params=dict(params))
    meta = {
        "remedy": name,
        "method": method,
        "base_run": str(Path(files["metrics"]).parent),  # a record, never read back
        "seed": seed,
        "config_hash": base.get("config_hash"),  # of the treated run's training
        "code_version": code_version(),
        "normed": str(bool(result.normed)).lower(),
    }
    for subset, part, logits in (
        ("train", train, result.train_logits),
        ("test", test, result.test_logits),
    ):
        write_parquet(
            embeddings_table(part["index"], part["label"], part["fe"], logits),
            outputs[subset],
            meta,
        )
    write_parquet(
        classifier_arrays_table(result.weight, result.bias),
        outputs["classifier"],
        meta,
    )
    metrics = dict(
        result.metrics,
        remedy=name,
        method=method,
        params=params,
        info=result.info,
        wall_seconds=float(result.seconds),
        base_wall_seconds=base.get("wall_seconds"),
        base_bac=base.get("bac"),
        classes=base.get("classes"),
        train_class_counts=base.get("train_class_counts"),
        kept_epoch=base.get("kept_epoch"),
        run=dict(base.get("run", {}), remedy=name),
        environment=environment(),
    )
    write_json(metrics, outputs["metrics"])
    print(
        f"{name}: test BAC {base.get('bac', float('nan')):.4f} -> {metrics['bac']:.4f} "
        f"({result.seconds:.1f} s)",
        file=sys.stderr,
    )
    return metrics


# -- models trained elsewhere (config ``models``, README "Analyse your own model") ----------


def split_external(
    canonical_path: str | Path,
    out_path: str | Path,
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
    follows) and, for ``study`` and ``none``, ``n_max`` (and ``n_val``)."""
    from fragility.data.splits import external_split, ldam_drw_indices, read_training_index

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
    write_parquet(table, out_path, metadata=metadata)
    counts = np.bincount(subset_indices(table, "train")[1], minlength=len(canonical.classes))
    print(f"training subset ({mode}): {counts.tolist()} images per class", file=sys.stderr)
    return table


def extract_external(
    canonical_path: str | Path,
    split_path: str | Path,
    checkpoint_path: str | Path,
    outputs: dict,
    *,
    model: dict,
    run_info: dict,
    device: str = "auto",
) -> dict:
    """Embeddings (SPEC §3) of a model trained elsewhere, with its ``metrics.json`` (test
    metrics, ``source: external``, the checkpoint's sha256) and an empty
    ``history.parquet`` (no training history comes with a checkpoint), each to its path in
    ``outputs``. ``model``: its resolved config entry (``format``, ``arch``, ``options``,
    ``normalization``, ``input_size``, ``channels``, ``training_subset``, ...); a checkpoint
    that does not load whole, or images of another shape than the model takes, stop here
    before anything is written."""
    import time

    from fragility.embeddings.external import load_external, preprocessing, probe
    from fragility.embeddings.extraction import write_embeddings
    from fragility.embeddings.files import read_embeddings
    from fragility.training.engine import resolve_device
    from fragility.workflow.config import config_hash

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
        run_info,
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
    embedding_files = {k: outputs[k] for k in (*subsets, "classifier")}
    write_embeddings(loaded.model, normalization, subsets, embedding_files, meta, device,
                     source=str(checkpoint_path))  # fmt: skip
    empty = pa.table({"epoch": pa.array([], pa.int64())})
    write_parquet(empty, outputs["history"], metadata=dict(meta, history="none: trained elsewhere"))
    test = read_embeddings(outputs["test"])
    metrics = dict(
        _external_metrics(test, subsets["train"][2], canonical.classes, model, loaded.epoch),
        checkpoint=checkpoint,
        trusted=trusted,  # loaded in full (trust_checkpoint), its pickle run as it says
        normalization=normalization,
        image_shape=list(shape),
        wall_seconds=time.perf_counter() - start,  # this pipeline's time on it: the extraction
        device=resolved,
        **device_record(resolved),
        run=run_info,
        config_hash=meta["config_hash"],
        environment=environment(),
    )
    write_json(metrics, outputs["metrics"])
    print(f"{model['name']}: test BAC {metrics['bac']:.4f} ({checkpoint_path})", file=sys.stderr)
    return metrics


def _checkpoint_record(path: str | Path, format: str, loaded) -> dict:
    """What metrics.json records of a checkpoint from elsewhere: where, which bytes (sha256
    and size), its format, and the architecture and epoch it declared."""
    from fragility.embeddings.external import file_sha256

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
    from fragility.metrics import summary

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
