"""RQ5 — classifier weights vs features (Fig 7).

Weights are compared by magnitude ``|W[c, h]|``. "Largest mean W" (the paper averages over
nothing else for one model) is the largest ``|W|`` of the whole classifier.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fragility.analysis.ce import own_class_ce, safe_ratio, top_n_per_row
from fragility.analysis.columns import one_row, ranked_table, roles_row
from fragility.analysis.inputs import N_TOP, ClaimInputs, Measured, RunInputs, log_ratio, point
from fragility.analysis.matching import largest_entry
from fragility.analysis.rq4 import class_mean_own_ce
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
    run = data.run
    maj, mino = run.roles
    sums = weight_sums(run.W, maj, mino, N_TOP)
    values = np.full(data.n_boot + 1, np.nan)
    values[0] = sums["majority_sum"] - sums["minority_sum"]
    return Measured(values, {"majority": sums["majority_sum"], "minority": sums["minority_sum"]})


def ce_far_above_weights(data: ClaimInputs) -> Measured:
    """log(largest class-mean ce / largest |W|) − log 2: the weights fixed, the training
    images resampled."""
    run = data.run
    tr = run.train
    ce = own_class_ce(tr["fe"], run.W, tr["label"], run.normed)
    means = weighted_class_means(data.train_w, ce, tr["label"], run.n_classes)
    largest_ce = np.nanmax(largest_entry(means), axis=1)
    largest_w = float(np.max(np.abs(run.W)))
    parts = {
        "largest_mean_ce": point(largest_ce),
        "largest_abs_w": largest_w,
        "ratio": point(largest_ce / largest_w),
    }
    return Measured(log_ratio(largest_ce, largest_w) - np.log(FAR_LARGER), parts)


# -- the per-run tables (fragility.catalog.outputs.RUN_TABLES["rq5"]) ----------------------


def run_tables(inputs: RunInputs, **_) -> dict[str, pa.Table]:
    W, normed = inputs.W, inputs.normed
    tr, n_classes = inputs.train, inputs.n_classes
    maj, mino = inputs.majority, inputs.minority
    vals, idx = top_abs_weights(W, N_TOP)
    signed = np.take_along_axis(W, np.maximum(idx, 0), axis=1)
    sums = weight_sums(W, maj, mino, N_TOP)
    mean_ce = class_mean_own_ce(tr["fe"], W, tr["label"], n_classes, normed)
    vs = largest_weight_vs_ce(W, mean_ce)
    row = roles_row(inputs)
    row.update(
        n_top=int(vals.shape[1]),
        majority_top_abs_w_sum=sums["majority_sum"],
        minority_top_abs_w_sum=sums["minority_sum"],
        largest_abs_w=vs["largest_abs_w"],
        largest_mean_ce=vs["largest_mean_ce"],
        ratio_ce_to_w=vs["ratio"],
    )
    return {
        "top_weights": ranked_table(inputs, vals, "abs_weight", idx, extra={"weight": signed}),
        "weight_sums": one_row(row),
    }
