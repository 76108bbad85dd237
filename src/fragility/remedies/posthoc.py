"""Post-hoc remedies: the run's own classifier adjusted after training, τ-normalisation of its
weights (Kang et al. 2020) and logit adjustment by the training class prior (Menon et al.
2021). Each keeps the classifier's form (linear or cosine)."""

from __future__ import annotations

import numpy as np

from fragility.embeddings.files import NORM_EPS, head_logits
from fragility.errors import FragilityError
from fragility.metrics import balanced_accuracy


def tau_normalize(W: np.ndarray, tau: float) -> np.ndarray:
    """Row-wise ``W_c / ||W_c||**tau`` (Kang et al. 2020), same dtype as ``W``.

    τ = 0 leaves W unchanged, τ = 1 gives unit rows. The bias is not touched here; the τ-norm
    classifier of Kang et al. has none (their ``logits = fe @ W_tau.T``), see
    :func:`fit_tau_norm`. Zero rows stay zero.
    """
    W = np.asarray(W)
    norms = np.maximum(np.linalg.norm(W.astype(np.float64), axis=1, keepdims=True), NORM_EPS)
    return (W / norms ** float(tau)).astype(W.dtype)


def _tau_bias(bias: np.ndarray, keep_bias: bool) -> np.ndarray:
    bias = np.asarray(bias, dtype=np.float32)
    return bias if keep_bias else np.zeros_like(bias)


def tau_val_bacs(
    fe_val, y_val, W, bias, taus, *, normed: bool = False, keep_bias: bool = False
) -> np.ndarray:
    """Validation BAC of the τ-normalised head for each τ in ``taus``."""
    n_classes = np.asarray(W).shape[0]
    b = _tau_bias(bias, keep_bias)
    return np.array(
        [
            balanced_accuracy(
                y_val,
                head_logits(fe_val, tau_normalize(W, t), b, normed).argmax(axis=1),
                n_classes,
            )
            for t in taus
        ]
    )


def _log_prior(class_counts) -> np.ndarray:
    counts = np.asarray(class_counts, dtype=np.float64)
    if np.any(counts <= 0):
        raise FragilityError(
            "logit adjustment needs every class in the training counts; "
            f"got counts {counts.astype(int).tolist()}"
        )
    return np.log(counts / counts.sum())


def fit_tau_norm(train, val, classifier, seed, params):
    """τ-normalisation (Kang et al. 2020) of the run's own classifier: ``W_c / ||W_c||**τ``,
    τ fixed by ``params`` or chosen by validation BAC among ``params["taus"]`` (ties: the
    smallest); the bias dropped unless ``keep_bias``. Never the test set."""
    W, bias, normed = classifier["weight"], classifier["bias"], bool(classifier["normed"])
    info = {"keep_bias": bool(params["keep_bias"])}
    if params["tau"] is not None:
        tau = float(params["tau"])
        info["tau_source"] = "params"
    else:
        if val is None:
            raise FragilityError(
                "tau_norm chooses τ on a validation split: pass val= (the run's validation "
                "embeddings), or fix params={'tau': ...}; the test set is never used for this"
            )
        taus = np.sort(np.asarray(params["taus"], dtype=float))
        bacs = tau_val_bacs(
            val["fe"], val["label"], W, bias, taus, normed=normed, keep_bias=params["keep_bias"]
        )
        tau = float(taus[int(np.argmax(bacs))])
        info.update(tau_source="val", taus=taus.tolist(), val_bac=bacs.tolist())
    info["tau"] = tau
    return (
        tau_normalize(np.asarray(W, np.float32), tau),
        _tau_bias(bias, params["keep_bias"]),
        normed,
        info,
    )


def fit_logit_adjust(train, val, classifier, seed, params):
    """Post-hoc logit adjustment (Menon et al. 2021): the run's own classifier with its bias
    lowered by ``τ log(prior)``, the prior the training class frequencies."""
    n_classes = classifier["weight"].shape[0]
    counts = np.bincount(np.asarray(train["label"], dtype=np.int64), minlength=n_classes)
    tau = float(params["tau"])
    bias = np.asarray(classifier["bias"], dtype=np.float64) - tau * _log_prior(counts)
    info = {"tau": tau, "class_counts": counts.tolist()}
    return (
        np.asarray(classifier["weight"], dtype=np.float32),
        bias.astype(np.float32),
        bool(classifier["normed"]),
        info,
    )
