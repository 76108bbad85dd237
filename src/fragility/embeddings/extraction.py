"""Embeddings of a kept checkpoint (the file format: :mod:`fragility.embeddings.files`).

Extraction runs in float32 on every device (:func:`fragility.training.precision.exact`),
whatever precision the model was trained in, and checks ``Σ_h CE + bias = logits`` on every
row it writes (:func:`fragility.embeddings.files.check_decomposition`) before writing: a file
that breaks it is never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fragility.embeddings.files import (
    check_decomposition,
    classifier_arrays_table,
    embeddings_table,
    matrix_of,
)
from fragility.errors import FragilityError
from fragility.io import write_parquet
from fragility.training import precision
from fragility.training.engine import (
    Normalizer,
    eval_batch_size,
    predict,
    resolve_device,
    to_device_images,
)
from fragility.training.models import ResNetCifar


def embed(
    model: ResNetCifar,
    images: np.ndarray,
    normalization: dict,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """FE ``(N, H)`` and logits ``(N, C)`` of uint8 images ``(N, H, W, C)``, eval mode, no
    augmentation, computed in float32 on every device (:func:`fragility.training.precision.exact`)
    in batches of ``batch_size`` (default: :func:`fragility.training.engine.eval_batch_size`)."""
    if len(images) == 0:  # e.g. a split without a validation set: an empty, well-typed file
        weight, _ = model.classifier_weights()
        n_classes, width = weight.shape
        return np.zeros((0, width), np.float32), np.zeros((0, n_classes), np.float32)
    device = resolve_device(device)
    model = model.to(device).to(memory_format=torch.channels_last)
    normalize = Normalizer(normalization["mean"], normalization["std"], device)
    batch = batch_size or eval_batch_size(device, images.shape[1:3])
    logits, fe = predict(
        model, to_device_images(images, device), normalize, batch, True, precision.exact(device)
    )
    return fe.cpu().numpy(), logits.cpu().numpy()


def classifier_table(model: ResNetCifar) -> pa.Table:
    w, b = model.classifier_weights()
    return classifier_arrays_table(
        w.detach().float().cpu().numpy(), b.detach().float().cpu().numpy()
    )


def write_embeddings(
    model: ResNetCifar,
    normalization: dict,
    subsets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    outputs: Mapping[str, str | Path],
    metadata: dict,
    device: str | torch.device = "auto",
    source: str = "the model",
) -> None:
    """Write the embeddings of each ``name -> (index, images, labels)`` to ``outputs[name]``
    and the classifier to ``outputs["classifier"]``. Nothing is written unless every subset's
    FE and logits are finite (else one error naming ``source``, the checkpoint) and satisfy the
    decomposition against the classifier as written (:func:`check_decomposition`)."""
    expected = {*subsets, "classifier"}
    if set(outputs) != expected:
        raise FragilityError(f"embedding outputs {sorted(outputs)} != {sorted(expected)}")
    meta = dict(metadata, normed=str(model.normed).lower())
    # float32 W and bias exactly as stored (on the CPU, where the file was always made)
    classifier = classifier_table(model.cpu())
    W = matrix_of(classifier.column("weight"))
    bias = classifier.column("bias").to_numpy()
    run = _run_name(metadata)
    tables = {}
    for name, (index, images, labels) in subsets.items():
        fe, logits = embed(model, images, normalization, device)
        bad = ~(np.isfinite(fe).all(axis=1) & np.isfinite(logits).all(axis=1))
        if bad.any():
            raise FragilityError(
                f"{source} gives NaN or infinite FE or logits for {int(bad.sum())} of "
                f"{len(bad)} {name} images (the first: row {int(np.asarray(index)[bad][0])}); "
                "its weights are damaged or overflow on these images"
            )
        check_decomposition(fe, logits, W, bias, model.normed, f"{run}: {name} embeddings")
        tables[name] = embeddings_table(index, labels, fe, logits)
    model.cpu()
    for name, table in tables.items():
        write_parquet(table, outputs[name], meta)
    write_parquet(classifier, outputs["classifier"], meta)


def _run_name(metadata: dict) -> str:
    """The run a model's metadata names (``dataset/imbalance/loss/seed``), or "model"."""
    if metadata.get("run"):
        return str(metadata["run"])
    keys = [metadata.get(k) for k in ("dataset", "imbalance", "loss")]
    if all(keys) and metadata.get("seed") is not None:
        return "/".join(map(str, keys)) + f"/seed{metadata['seed']}"
    return "model"
