"""RQ1 — can a re-trained classifier recover balanced performance? (Table 1)

A fresh linear classifier is trained with cross-entropy on fixed feature embeddings (the
balanced ``pool`` FE extracted by the imbalanced model's extractor) and evaluated on the
test FE. Training is minibatch SGD with momentum; initialisation and shuffling draw from a
``torch.Generator`` seeded with ``seed``, so the same inputs and seed give the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fragility.analysis.inputs import ClaimInputs, Measured, point
from fragility.analysis.runs import (
    RunFiles,
    balanced_partner,
    bootstrap_columns,
    read_run_table,
    run_metrics,
)
from fragility.analysis.uncertainty import confusion_metrics, weighted_confusion
from fragility.catalog.outputs import CrossRunTable
from fragility.embeddings.files import head_logits
from fragility.errors import FragilityError
from fragility.metrics import balanced_accuracy


def retrain_classifier(
    fe_pool: np.ndarray, y_pool: np.ndarray, n_classes: int, *, epochs: int = 30, **head
) -> tuple[np.ndarray, np.ndarray]:
    """Train ``logits = fe @ W.T + bias`` on ``fe_pool`` (N, H), ``y_pool`` (N,).

    Returns ``(W (C, H), bias (C,))`` as float32 numpy arrays. The same trainer as the
    remedies' phase 3 (:func:`fragility.training.heads.fit_linear_head`, whose defaults the
    other keywords ``lr``, ``momentum``, ``weight_decay``, ``batch_size``, ``seed``,
    ``device`` keep): init U(-1/sqrt(H), 1/sqrt(H)) like ``nn.Linear``, shuffled minibatches, cosine
    learning-rate decay, here over 30 epochs by default.
    """
    from fragility.training.heads import (
        fit_linear_head,  # here: torch; RQ1's claim and Table 1 do without
    )

    return fit_linear_head(
        fe_pool, y_pool, n_classes, epochs=epochs, sampler="uniform", schedule="cosine", **head
    )


def evaluate_linear(fe: np.ndarray, W: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Predictions (N,) of a plain linear classifier: ``argmax(fe @ W.T + bias)``."""
    return head_logits(fe, W, bias).argmax(axis=1)


def retrained_bac(
    fe_pool: np.ndarray,
    y_pool: np.ndarray,
    fe_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    **kwargs,
) -> float:
    """Test BAC of a classifier re-trained on the pool FE (kwargs go to retrain_classifier)."""
    W, bias = retrain_classifier(fe_pool, y_pool, n_classes, **kwargs)
    return balanced_accuracy(y_test, evaluate_linear(fe_test, W, bias), n_classes)


def table1(
    bac_balanced: float | None,
    bac_imbalanced: float,
    bac_retrained: float,
    description: str = "",
) -> dict[str, list]:
    """One Table 1 row: the three test BACs (as given; ``bac_balanced`` may be None when no
    balanced run exists) and ``retrain_gain = retrained - imbalanced``. Whether the paper's
    ordering imbalanced < retrained < balanced holds is a claim with an interval, decided in
    one place: :func:`bac_order`."""
    bal = float("nan") if bac_balanced is None else float(bac_balanced)
    return {
        "description": [description],
        "balanced": [bal],
        "imbalanced": [float(bac_imbalanced)],
        "retrained": [float(bac_retrained)],
        "retrain_gain": [float(bac_retrained - bac_imbalanced)],
    }


def _bac(weights: np.ndarray, labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """BAC ``(B,)`` under each row of bootstrap multiplicities ``weights (B, N)``."""
    return confusion_metrics(weighted_confusion(weights, labels, preds, n_classes), 0, 0)["bac"]


def bac_order(data: ClaimInputs) -> Measured:
    """Table 1's claim, imbalanced < re-trained < balanced test BAC, as the smaller of its two
    differences, so it is positive exactly when both hold. Both halves or nothing: without a
    balanced model it is not measurable (its first half, re-trained > imbalanced, is still
    reported as ``bac_retrained_gain``). Extra statistics: the three BACs and the gain, Table
    1's intervals."""
    run = data.run
    labels, c = run.test["label"], run.n_classes
    imbalanced = _bac(data.test_w, labels, run.test["pred"], c)
    parts: dict = {"imbalanced": point(imbalanced), "partner": data.balanced_name or "none"}
    if data.retrained_pred is None:
        return Measured(None, parts, {"bac_imbalanced": imbalanced}, "no re-trained classifier")
    retrained = _bac(data.test_w, labels, data.retrained_pred, c)
    parts["retrained"] = point(retrained)
    extra = {
        "bac_imbalanced": imbalanced,
        "bac_retrained": retrained,
        "bac_retrained_gain": retrained - imbalanced,
    }
    if data.balanced_test is None:
        return Measured(None, parts, extra, data.balanced_missing)
    b_labels, b_preds, b_weights = data.balanced_test
    balanced = _bac(b_weights, b_labels, b_preds, c)
    extra["bac_balanced"] = balanced
    parts["balanced"] = point(balanced)
    order = np.minimum(retrained - imbalanced, balanced - retrained)
    return Measured(order, parts, extra)


# -- Table 1 over the study's runs (fragility.catalog.outputs.CROSS_RUN_TABLES["table1"]) ------


def _run_bac(run: RunFiles) -> float:
    return float(run_metrics(run)["bac"])


def table1_by_seed(
    spec: CrossRunTable, runs: Sequence[RunFiles], all_runs: Sequence[RunFiles]
) -> pa.Table:
    """RQ1 / Table 1 per imbalanced run (``runs``): test BAC of the balanced model (its
    balanced partner among ``all_runs``), of the imbalanced model, and of the imbalanced
    extractor with a classifier re-trained on the pool FE. ``spec``: its catalog entry."""
    rows = []
    for run in runs:
        retrained = read_run_table(run, "retrained")
        partner = balanced_partner(run, all_runs)
        row = table1(
            None if partner is None else _run_bac(partner),
            _run_bac(run),
            float(retrained["bac_retrained"][0].as_py()),
        )
        boot = bootstrap_columns(
            run,
            {
                "imbalanced": "bac_imbalanced",
                "retrained": "bac_retrained",
                "retrain_gain": "bac_retrained_gain",
            },  # fmt: skip
        )
        if partner is not None:
            boot.update(bootstrap_columns(partner, {"balanced": "bac"}))
        else:
            boot.update(balanced_boot_low=None, balanced_boot_high=None)
        rows.append(
            dict(
                run.keys(),
                balanced_loss=None if partner is None else partner.loss,
                balanced_seed=None if partner is None else str(partner.seed),
                **{k: v[0] for k, v in row.items() if k != "description"},
                **boot,
            )
        )
    if not rows:
        raise FragilityError("Table 1 needs at least one imbalanced run with its RQ1 re-training")
    table = pa.Table.from_pylist(rows)
    return table.set_column(
        table.schema.get_field_index("balanced"),
        "balanced",
        pc.if_else(pc.is_nan(table["balanced"]), None, table["balanced"]),
    )
