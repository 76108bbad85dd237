"""The stages that fit a new head on a run's embeddings: RQ1's re-trained classifier, and the
feature-space remedies."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

from fragility.analysis.rq1 import evaluate_linear, retrain_classifier
from fragility.catalog.layout import REMEDY_FILES
from fragility.embeddings.files import (
    classifier_arrays_table,
    embeddings_table,
    read_classifier,
    read_embeddings,
)
from fragility.io import Outputs, outputs_named, read_json, write_json, write_parquet, write_tables
from fragility.metrics import balanced_accuracy
from fragility.remedies.registry import apply_remedy
from fragility.workflow.provenance import code_version, environment

# a remedied model's files: its embeddings and classifier, and its metrics
REMEDY_OUTPUTS = tuple("metrics.json" if k == "metrics" else f"{k}.parquet" for k in REMEDY_FILES)


def retrain_run(files: dict, outputs: Outputs, *, seed: int, epochs: int) -> None:
    """RQ1 for one run: re-train a linear classifier on the pool FE (``files["pool"]``) of
    this run's extractor and evaluate it on the test FE (``test``; ``classifier`` gives the
    class count); writes ``retrained.{csv,parquet}`` and ``retrained_predictions.parquet``
    to ``outputs``."""
    pool, test = read_embeddings(files["pool"]), read_embeddings(files["test"])
    n_classes = read_classifier(files["classifier"])["weight"].shape[0]
    bac_model = balanced_accuracy(test["label"], test["pred"], n_classes)
    W, bias = retrain_classifier(pool["fe"], pool["label"], n_classes, seed=seed, epochs=epochs)
    preds = evaluate_linear(test["fe"], W, bias)
    bac = balanced_accuracy(test["label"], preds, n_classes)
    table = pa.table(
        {
            "bac_model": [float(bac_model)],
            "bac_retrained": [float(bac)],
            "retrain_gain": [float(bac - bac_model)],
            "n_pool": [len(pool["label"])],
            "epochs": [int(epochs)],
        }
    )
    # the re-trained classifier's test predictions: the paired bootstrap of RQ1 needs them
    predictions = pa.table({"index": test["index"], "label": test["label"], "pred": preds})
    write_tables({"retrained": table, "retrained_predictions": predictions}, outputs)
    print(f"test BAC {bac_model:.4f} -> {bac:.4f} with a re-trained classifier", file=sys.stderr)


def remedy_run(
    files: dict,
    name: str,
    method: str,
    params: dict,
    outputs: Outputs,
    *,
    seed: int,
) -> dict:
    """Apply feature-space remedy ``method`` (its entry ``name`` of the config, with
    ``params``) to a trained run's embeddings and write a model folder the RQ analyses can
    read, to ``outputs``: ``metrics.json`` (the run's fields) and ``train``, ``test`` and
    ``classifier.parquet``, the embeddings of the new head. ``files``: the run's ``train``,
    ``val`` (optional), ``test`` and ``classifier`` embeddings and its ``metrics``."""
    paths = outputs_named(outputs, REMEDY_OUTPUTS)

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
            paths[f"{subset}.parquet"],
            meta,
        )
    write_parquet(
        classifier_arrays_table(result.weight, result.bias),
        paths["classifier.parquet"],
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
    write_json(metrics, paths["metrics.json"])
    print(
        f"{name}: test BAC {base.get('bac', float('nan')):.4f} -> {metrics['bac']:.4f} "
        f"({result.seconds:.1f} s)",
        file=sys.stderr,
    )
    return metrics
