"""Embeddings of a kept checkpoint as Parquet (SPEC §3): the hand-off to the analyses.

Each subset file has columns ``index``, ``label``, ``pred``, ``fe`` (fixed_size_list<float32>[H])
and ``logits`` (fixed_size_list<float32>[C]); ``classifier.parquet`` has one row per class
with ``class``, ``weight`` (fixed_size_list<float32>[H]) and ``bias``, such that
``(fe' * weight[c]).sum() + bias[c] == logits[:, c]`` with fe' = fe (linear classifier) or
fe / ‖fe‖ (normed classifier, metadata ``normed = true``; ``weight`` then carries the scale).

Extraction runs in float32 on every device (:func:`fragility.training.precision.exact`), whatever
precision the model was trained in, and checks that equation on every row it writes
(:func:`check_decomposition`) before writing: a file that breaks it is never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from fragility.errors import FragilityError
from fragility.io import read_parquet_metadata, read_table, write_parquet

if TYPE_CHECKING:  # torch is imported where a model runs: reading the files must not need it
    import torch

    from fragility.training.models import ResNetCifar


# Clamp of FE (and weight) row norms, as torch.nn.functional.normalize in models.NormedLinear.
NORM_EPS = 1e-12
# How far stored logits may miss fe' @ W.T + bias, relative to the largest |logit| of the
# file: float32 rounding is about 1e-6; a bf16 head or FE misses by 1e-3 to 1e-2.
DECOMPOSITION_TOLERANCE = 1e-4


class DecompositionError(FragilityError):
    """Embeddings whose logits are not ``Σ_h CE + bias`` of their FE and classifier."""


def prepare_fe(fe: np.ndarray, normed: bool = False) -> np.ndarray:
    """``fe'`` (N, H) as float64: ``fe``, or ``fe / ||fe||`` per row for a normed classifier.

    The one definition of fe' that the CE decomposition, RQ1 and the remedies share.
    """
    fe = np.asarray(fe, dtype=np.float64)
    if normed:
        fe = fe / np.maximum(np.linalg.norm(fe, axis=1, keepdims=True), NORM_EPS)
    return fe


def head_logits(
    fe: np.ndarray, W: np.ndarray, bias: np.ndarray, normed: bool = False
) -> np.ndarray:
    """Logits (N, C) of a linear head in float64: ``fe' @ W.T + bias`` (= ``CE.sum(-1) + bias``);
    ``W`` (C, H), ``bias`` (C,)."""
    return prepare_fe(fe, normed) @ np.asarray(W, dtype=np.float64).T + np.asarray(
        bias, dtype=np.float64
    )


def decomposition_error(
    fe: np.ndarray, logits: np.ndarray, W: np.ndarray, bias: np.ndarray, normed: bool = False
) -> float:
    """``max |fe' @ W.T + bias - logits| / max |logits|`` over the rows ``fe (N, H)``,
    ``logits (N, C)`` (0 for no rows); ``W (C, H)``, ``bias (C,)``."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.size == 0:
        return 0.0
    miss = np.abs(head_logits(fe, W, bias, normed) - logits).max()
    return float(miss / max(np.abs(logits).max(), np.finfo(np.float32).tiny))


def check_decomposition(
    fe: np.ndarray,
    logits: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    normed: bool,
    where: str,
) -> float:
    """Raise :class:`DecompositionError` (one line naming ``where`` and the error) when the
    rows break ``Σ_h CE + bias = logits`` by more than :data:`DECOMPOSITION_TOLERANCE`;
    else return the relative error."""
    error = decomposition_error(fe, logits, W, bias, normed)
    if not error <= DECOMPOSITION_TOLERANCE:  # a NaN fails too
        raise DecompositionError(
            f"{where} break sum_h CE + bias = logits: relative error "
            f"{error:.2e} > {DECOMPOSITION_TOLERANCE:g} over {len(logits)} rows (largest "
            f"|logit| {np.abs(logits).max():.3g}); nothing written. The extraction did not "
            f"run in float32 (fragility.training.precision.exact)"
        )
    return error


def _fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


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
    import torch

    from fragility.training import precision
    from fragility.training.engine import (
        Normalizer,
        eval_batch_size,
        predict,
        resolve_device,
        to_device_images,
    )

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


def embeddings_table(index, labels, fe: np.ndarray, logits: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "index": pa.array(np.asarray(index, dtype=np.int64)),
            "label": pa.array(np.asarray(labels, dtype=np.int64)),
            "pred": pa.array(logits.argmax(axis=1).astype(np.int64)),
            "fe": _fixed_list(fe),
            "logits": _fixed_list(logits),
        }
    )


def classifier_arrays_table(weight: np.ndarray, bias: np.ndarray) -> pa.Table:
    """``classifier.parquet`` of a head given as arrays ``weight`` (C, H), ``bias`` (C,)."""
    weight = np.asarray(weight, dtype=np.float32)
    return pa.table(
        {
            "class": pa.array(np.arange(len(weight), dtype=np.int64)),
            "weight": _fixed_list(weight),
            "bias": pa.array(np.asarray(bias, dtype=np.float32)),
        }
    )


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
    W = _matrix(classifier.column("weight"))
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


# -- reading ------------------------------------------------------------------------------------


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    column = column.combine_chunks()
    width = column.type.list_size
    return column.values.to_numpy(zero_copy_only=False).reshape(-1, width)


def _columns(table: pa.Table, path, kinds: dict[str, str]) -> None:
    """Raise one error unless ``table`` has each column of ``kinds`` (name -> ``int``,
    ``float`` or ``matrix``: a fixed-size list of floats)."""
    for name, kind in kinds.items():
        if name not in table.column_names:
            raise FragilityError(f"{path} is not an embeddings file: it has no column {name!r}")
        t = table.schema.field(name).type
        ok = {
            "int": pa.types.is_integer(t),
            "float": pa.types.is_floating(t),
            "matrix": pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type),
        }[kind]
        if not ok:
            raise FragilityError(f"{path}: column {name!r} is {t}, not {kind}")


def _finite(path, **arrays: np.ndarray) -> None:
    for name, values in arrays.items():
        bad = ~np.isfinite(values)
        if bad.any():
            raise FragilityError(
                f"{path}: column {name!r} holds {int(bad.sum())} NaN or infinite values; "
                "delete the file to have it rebuilt"
            )


def read_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """``index``, ``label``, ``pred`` ``(N,)`` and ``fe`` ``(N, H)``, ``logits`` ``(N, C)``;
    a file that is not what :func:`write_embeddings` writes (unreadable, columns missing,
    NaN or infinite values, labels outside ``0..C-1``) is one error naming it."""
    table = read_table(path)
    _columns(table, path, {"index": "int", "label": "int", "pred": "int"})
    _columns(table, path, {"fe": "matrix", "logits": "matrix"})
    out = {k: table.column(k).to_numpy() for k in ("index", "label", "pred")}
    out.update(fe=_matrix(table.column("fe")), logits=_matrix(table.column("logits")))
    _finite(path, fe=out["fe"], logits=out["logits"])
    n_classes = out["logits"].shape[1]
    for name in ("label", "pred"):
        outside = (out[name] < 0) | (out[name] >= n_classes)
        if outside.any():
            raise FragilityError(
                f"{path}: {int(outside.sum())} {name}s lie outside the class range "
                f"0..{n_classes - 1} (e.g. {int(out[name][outside][0])})"
            )
    return out


def read_classifier(path: str | Path) -> dict:
    """``weight`` ``(C, H)``, ``bias`` ``(C,)`` and ``normed`` (bool) of a classifier file;
    one that is unreadable, lacks a column or holds NaN or infinite values is one error
    naming it."""
    table = read_table(path)
    _columns(table, path, {"weight": "matrix", "bias": "float"})
    normed = read_parquet_metadata(path).get("normed") == "true"
    out = {
        "weight": _matrix(table.column("weight")),
        "bias": table.column("bias").to_numpy(),
        "normed": normed,
    }
    _finite(path, weight=out["weight"], bias=out["bias"])
    return out
