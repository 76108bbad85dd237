"""Fresh linear heads on a run's training FE: classifier re-training (cRT) and phase 3 of the
over-sampling remedies, the head's epoch chosen on the validation split or the last one.

Every fit here is ``fit(train, val, classifier, seed, params) -> (W, b, normed, info)``, the
function a remedy's catalog entry names (:data:`fragility.catalog.remedies.REMEDIES`). Fresh
heads are trained on the raw FE, so their ``normed`` is False even when the run's own
classifier was a cosine (normed) one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fragility.catalog.remedies import HEAD_PARAMS, HEAD_SELECTIONS
from fragility.embeddings.files import head_logits
from fragility.errors import ConfigError
from fragility.metrics import balanced_accuracy
from fragility.training.heads import fit_linear_head


def fresh_head(fe, y, n_classes, seed, params, sampler):
    """A fresh linear head on ``fe (N, H)``, ``y (N,)`` with the head parameters of
    ``params`` (:data:`fragility.catalog.remedies.HEAD_PARAMS`) and ``sampler``."""
    head = {k: params[k] for k in HEAD_PARAMS}
    return fit_linear_head(fe, y, n_classes, seed=seed, sampler=sampler, **head)


def oversampling_fit(sample: Callable, sampler_keys: tuple):
    """Phase 2 (``sample``) then phase 3, the head's epoch chosen by ``params["select"]``:
    ``"val_bac"`` keeps the epoch with the best validation BAC (:func:`fit_linear_head_on_val`)
    and falls back to the last epoch, recorded as such, when the run has no validation split
    (e.g. a model trained elsewhere, or a dataset whose majority uses every training image);
    ``"last"`` always keeps the last epoch. The test set never takes part."""

    def fit(train, val, classifier, seed, params):
        n_classes = classifier["weight"].shape[0]
        fe, y = np.asarray(train["fe"], dtype=np.float32), np.asarray(train["label"])
        kwargs = {k: params[k] for k in sampler_keys}
        fe_syn, y_syn, info = sample(
            fe, y, seed=seed, n_classes=n_classes, return_info=True, **kwargs
        )
        fe_all, y_all = np.concatenate([fe, fe_syn]), np.concatenate([y, y_syn])
        select = params["select"]
        if select not in HEAD_SELECTIONS:
            raise ConfigError(
                f"select must be one of {list(HEAD_SELECTIONS)} (the head's epoch), got {select!r}"
            )
        has_val = val is not None and len(val["label"]) > 0
        if select == "val_bac" and has_val:
            head = {k: params[k] for k in HEAD_PARAMS}
            W, b, selection = fit_linear_head_on_val(
                fe_all, y_all, n_classes, val["fe"], val["label"], seed=seed, **head
            )
        else:
            W, b = fresh_head(fe_all, y_all, n_classes, seed, params, "uniform")
            reason = "select: last" if select == "last" else "no validation split"
            selection = {"epoch_selection": f"last ({reason})", "epoch": int(params["epochs"])}
        info = {k: v for k, v in info.items() if not isinstance(v, np.ndarray)}
        info["n_synthetic"] = int(len(y_syn))
        info.update(selection)
        return W, b, False, info

    return fit


def fit_crt(train, val, classifier, seed, params):
    """cRT (Kang et al. 2020): a fresh head on the run's own training FE, class-balanced
    minibatches."""
    n_classes = classifier["weight"].shape[0]
    W, b = fresh_head(train["fe"], train["label"], n_classes, seed, params, "class_balanced")
    return W, b, False, {}


def fit_linear_head_on_val(
    fe: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    fe_val: np.ndarray,
    y_val: np.ndarray,
    **head,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Phase 3 with the epoch chosen on a validation split: ``(W (C, H), b (C,), selection)``.

    Trains exactly as :func:`fit_linear_head` (``head`` takes its keywords; ``epochs`` at
    least 1) and, after every epoch, scores the head on ``fe_val`` (M, H), ``y_val`` (M,) by
    balanced accuracy (``argmax(fe_val @ W.T + b)``). The head of the epoch with the best
    validation BAC is returned (ties: the earliest such epoch), so the test set plays no part
    in the choice. With the cosine schedule that head is an intermediate state of the full
    schedule, not a head trained with fewer epochs. ``selection`` holds ``epoch_selection``
    ("val_bac"), ``epoch`` (1-based) and ``val_bac_per_epoch``.
    """
    epochs = int(head.get("epochs", 10))
    if epochs < 1:
        raise ConfigError(
            f"choosing the head's epoch on validation needs epochs >= 1, got {epochs}"
        )
    fe_val = np.asarray(fe_val, dtype=np.float32)
    y_val = np.asarray(y_val, dtype=np.int64)
    val_bacs: list[float] = []
    best: dict = {}

    def keep_best(epoch: int, weight, bias) -> None:
        W = weight.detach().cpu().numpy().astype(np.float32)
        b = bias.detach().cpu().numpy().astype(np.float32)
        # the same float32 evaluation as the remedy's final val/test metrics
        bac = balanced_accuracy(y_val, head_logits(fe_val, W, b, False).argmax(axis=1), n_classes)
        val_bacs.append(bac)
        if not best or bac > best["bac"]:
            best.update(bac=bac, epoch=epoch, weight=W, bias=b)

    fit_linear_head(fe, y, n_classes, on_epoch_end=keep_best, **head)
    selection = {
        "epoch_selection": "val_bac",
        "epoch": int(best["epoch"]),
        "val_bac_per_epoch": [float(v) for v in val_bacs],
    }
    return best["weight"], best["bias"], selection
