"""Applying a feature-space remedy to a trained run, and evaluating it.

Every remedy starts from a trained run (its embeddings and classifier, as
:mod:`fragility.embeddings.files` reads them) and ends with a *linear head* ``(W, bias,
normed)`` such that

    logits = fe' @ W.T + bias,     fe' = fe (normed False) or fe / ||fe|| (normed True),

the same contract as ``classifier.parquet``, so the remedied model goes through the RQ
analyses (CE decomposition ``sum_h CE + bias == logits``) like any other run. The remedies,
their parameters and the function that fits each are declared once, in
:data:`fragility.catalog.remedies.REMEDIES`. The test set is only ever evaluated at the end:
no choice (τ, early stopping, ...) looks at it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fragility.catalog import resolve
from fragility.catalog.remedies import REMEDIES
from fragility.embeddings.files import head_logits
from fragility.errors import ConfigError
from fragility.metrics import summary
from fragility.training.heads import head_device


@dataclass
class RemedyResult:
    """A remedied linear head and its evaluation.

    ``test_logits == fe'_test @ weight.T + bias`` and likewise ``train_logits`` (the original
    training FE, not the synthetic points), with fe' normalised when ``normed``. ``metrics`` is
    :func:`fragility.metrics.summary` on the test set; ``seconds`` the wall time of the remedy
    itself (over-sampling + head fitting, or the post-hoc fit), not of the final evaluation.
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray
    normed: bool
    test_logits: np.ndarray
    test_pred: np.ndarray
    train_logits: np.ndarray
    metrics: dict
    seconds: float
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready: name, metrics, seconds and info."""
        return {
            "remedy": self.name,
            "normed": self.normed,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "info": self.info,
        }


def _resolve_params(name: str, params: dict | None) -> dict:
    if name not in REMEDIES:
        raise ConfigError(f"unknown remedy {name!r}; valid: {', '.join(REMEDIES)}")
    defaults = REMEDIES[name].params
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ConfigError(
            f"remedy {name!r} has no parameter(s) {unknown}; valid: {', '.join(defaults)}"
        )
    return {**defaults, **(params or {})}


def apply_remedy(
    name: str,
    train: dict,
    test: dict,
    classifier: dict,
    *,
    val: dict | None = None,
    seed: int = 0,
    params: dict | None = None,
) -> RemedyResult:
    """Run remedy ``name`` (a key of :data:`REMEDIES`) on a trained run and evaluate it.

    ``train``/``test``/``val`` are :func:`fragility.embeddings.files.read_embeddings`-like dicts
    (``fe``, ``label``); ``classifier`` a :func:`~fragility.embeddings.files.read_classifier` dict.
    The remedy sees only ``train``, ``classifier`` and ``val`` (τ-norm's τ, the over-sampling
    heads' epoch); ``test`` is evaluated once the head is fixed. ``params`` override the
    remedy's defaults (``REMEDIES[name].params``; unknown keys are an error). With ``val`` given, ``info["val_metrics"]`` reports it too.
    """
    params = _resolve_params(name, params)
    n_classes = int(np.asarray(classifier["weight"]).shape[0])
    # one-time costs before the clock, so that no remedy's `seconds` pays for them: importing
    # the remedy's module and the CUDA probe
    fit = resolve(REMEDIES[name].fit)
    head_device("auto")
    start = time.perf_counter()
    W, b, normed, info = fit(train, val, classifier, int(seed), params)
    seconds = time.perf_counter() - start
    W = np.asarray(W, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    test_logits = head_logits(test["fe"], W, b, normed).astype(np.float32)
    train_logits = head_logits(train["fe"], W, b, normed).astype(np.float32)
    test_pred = test_logits.argmax(axis=1)
    if val is not None and len(val["label"]) > 0:
        val_pred = head_logits(val["fe"], W, b, normed).argmax(axis=1)
        info["val_metrics"] = summary(val["label"], val_pred, n_classes)
    if REMEDIES[name].posthoc and train.get("logits") is not None:
        # the classifier file must reproduce the run's own logits (sum_h CE + bias = logits)
        original = head_logits(
            train["fe"], classifier["weight"], classifier["bias"], bool(classifier["normed"])
        )
        info["classifier_max_abs_diff"] = float(np.abs(original - train["logits"]).max(initial=0))
    info["params"] = dict(params)
    return RemedyResult(
        name=name,
        weight=W,
        bias=b,
        normed=bool(normed),
        test_logits=test_logits,
        test_pred=test_pred,
        train_logits=train_logits,
        metrics=summary(test["label"], test_pred, n_classes),
        seconds=float(seconds),
        info=info,
    )
