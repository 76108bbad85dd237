"""RQ1 — can a re-trained classifier recover balanced performance? (Table 1)

A fresh linear classifier is trained with cross-entropy on fixed feature embeddings (the
balanced ``pool`` FE extracted by the imbalanced model's extractor) and evaluated on the
test FE. Training is minibatch SGD with momentum; initialisation and shuffling draw from a
``torch.Generator`` seeded with ``seed``, so the same inputs and seed give the same weights.
"""

from __future__ import annotations

import numpy as np

from fragility.embeddings import head_logits
from fragility.metrics import balanced_accuracy
from fragility.remedies import fit_linear_head


def retrain_classifier(
    fe_pool: np.ndarray, y_pool: np.ndarray, n_classes: int, *, epochs: int = 30, **head
) -> tuple[np.ndarray, np.ndarray]:
    """Train ``logits = fe @ W.T + bias`` on ``fe_pool`` (N, H), ``y_pool`` (N,).

    Returns ``(W (C, H), bias (C,))`` as float32 numpy arrays. The same trainer as the
    remedies' phase 3 (:func:`fragility.remedies.fit_linear_head`, whose defaults the other
    keywords ``lr``, ``momentum``, ``weight_decay``, ``batch_size``, ``seed``, ``device``
    keep): init U(-1/sqrt(H), 1/sqrt(H)) like ``nn.Linear``, shuffled minibatches, cosine
    learning-rate decay, here over 30 epochs by default.
    """
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
    one place: :mod:`fragility.analysis.claims` (``bac_order``)."""
    bal = float("nan") if bac_balanced is None else float(bac_balanced)
    return {
        "description": [description],
        "balanced": [bal],
        "imbalanced": [float(bac_imbalanced)],
        "retrained": [float(bac_retrained)],
        "retrain_gain": [float(bac_retrained - bac_imbalanced)],
    }
