"""RQ5 — classifier weights vs features (Fig 7).

Weights are compared by magnitude ``|W[c, h]|``. "Largest mean W" (the paper averages over
nothing else for one model) is the largest ``|W|`` of the whole classifier.
"""

from __future__ import annotations

import numpy as np

from fragility.analysis.ce import own_class_ce, safe_ratio, top_n_per_row
from fragility.analysis.inputs import N_TOP, ClaimInputs, Measured, largest_entry, log_ratio, point
from fragility.analysis.uncertainty import weighted_class_means
from fragility.catalog.claims import FAR_LARGER


def top_abs_weights(W: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Fig 7: the ``n`` largest ``|W[c, :]|`` per class, ``(values (C, n), idx (C, n))``."""
    return top_n_per_row(np.abs(np.asarray(W, dtype=np.float64)), n)


def weight_sums(
    W: np.ndarray, majority: int = 0, minority: int | None = None, n: int = 10
) -> dict[str, float | int]:
    """Sum of the ``n`` largest ``|W|`` of the majority and of the minority class
    (``minority`` defaults to the last class)."""
    vals, _ = top_abs_weights(W, n)
    minority = vals.shape[0] - 1 if minority is None else minority
    return {
        "majority_class": majority,
        "minority_class": minority,
        "majority_sum": float(vals[majority].sum()),
        "minority_sum": float(vals[minority].sum()),
    }


def largest_weight_vs_ce(W: np.ndarray, mean_ce: np.ndarray) -> dict[str, float]:
    """Largest ``|W|`` against the largest class-mean ce (``mean_ce`` (C, H) from RQ4);
    ``ratio = largest_mean_ce / largest_abs_w``."""
    w = float(np.max(np.abs(W)))
    ce = float(np.nanmax(mean_ce))
    return {"largest_abs_w": w, "largest_mean_ce": ce, "ratio": safe_ratio(ce, w)}


# -- the claims of RQ5 (each measured per run by the bootstrap; see fragility.catalog.claims.CLAIMS) --
# Both are defined on a linear head only: a cosine head's weight rows all have the norm of its
# scale, and its ce never exceed its weights (the catalog's ``heads``).


def majority_weights_larger(data: ClaimInputs) -> Measured:
    """Sum of the ten largest |W| of the majority class minus the minority class's: a number
    of the trained weights alone (no bootstrap: NaN replicates)."""
    view = data.view
    maj, mino = view.roles
    sums = weight_sums(view.W, maj, mino, N_TOP)
    values = np.full(data.n_boot + 1, np.nan)
    values[0] = sums["majority_sum"] - sums["minority_sum"]
    return Measured(values, {"majority": sums["majority_sum"], "minority": sums["minority_sum"]})


def ce_far_above_weights(data: ClaimInputs) -> Measured:
    """log(largest class-mean ce / largest |W|) − log 2: the weights fixed, the training
    images resampled."""
    view = data.view
    tr = view.train
    ce = own_class_ce(tr["fe"], view.W, tr["label"], view.normed)
    means = weighted_class_means(data.train_w, ce, tr["label"], view.n_classes)
    largest_ce = np.nanmax(largest_entry(means), axis=1)
    largest_w = float(np.max(np.abs(view.W)))
    parts = {
        "largest_mean_ce": point(largest_ce),
        "largest_abs_w": largest_w,
        "ratio": point(largest_ce / largest_w),
    }
    return Measured(log_ratio(largest_ce, largest_w) - np.log(FAR_LARGER), parts)
