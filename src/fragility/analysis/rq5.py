"""RQ5 — classifier weights vs features (Fig 7).

Weights are compared by magnitude ``|W[c, h]|``. "Largest mean W" (the paper averages over
nothing else for one model) is the largest ``|W|`` of the whole classifier.
"""

from __future__ import annotations

import numpy as np

from fragility.analysis.embeddings import safe_ratio, top_n_per_row


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
