"""The embeddings' file format: the Parquet hand-off from a trained model to the analyses
and the remedies, and the identity every file keeps.

Each subset file has columns ``index``, ``label``, ``pred``, ``fe`` (fixed_size_list<float32>[H])
and ``logits`` (fixed_size_list<float32>[C]); ``classifier.parquet`` has one row per class
with ``class``, ``weight`` (fixed_size_list<float32>[H]) and ``bias``, such that
``(fe' * weight[c]).sum() + bias[c] == logits[:, c]`` with fe' = fe (linear classifier) or
fe / ‖fe‖ (normed classifier, metadata ``normed = true``; ``weight`` then carries the scale).
Reading and writing them needs numpy and pyarrow only: the analyses never import torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.errors import FragilityError
from fragility.io import read_parquet_metadata, read_table

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


# -- reading ------------------------------------------------------------------------------------


def matrix_of(column: pa.ChunkedArray) -> np.ndarray:
    """``(N, width)`` numpy of a fixed-size-list column."""
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
    out.update(fe=matrix_of(table.column("fe")), logits=matrix_of(table.column("logits")))
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
        "weight": matrix_of(table.column("weight")),
        "bias": table.column("bias").to_numpy(),
        "normed": normed,
    }
    _finite(path, weight=out["weight"], bias=out["bias"])
    return out
