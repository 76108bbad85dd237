"""RQ3 — how many classification embeddings does a prediction rest on? (Fig 3)

Instance top-K: for instance n with reference class ``R`` (argmax logit) and strongest
adversary ``A``, sort ``CE[n, R, :]`` descending; n is *covered at K* when
``sum(top K ce) + bias[R] > LG_A``. Every K in 1..H is evaluated; K = H always covers an
instance with ``LG_R > LG_A`` (the full sum is the logit), a tie is never covered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fragility.analysis.embeddings import own_class_ce, reference_and_alternative


def topk_coverage_matrix(
    fe: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    logits: np.ndarray,
    normed: bool = False,
) -> np.ndarray:
    """Covered flags (N, H): column ``K-1`` says whether instance n is covered at K."""
    ref, _, _, lg_alt = reference_and_alternative(logits)
    ce = own_class_ce(fe, W, ref, normed)
    partial = np.cumsum(-np.sort(-ce, axis=1), axis=1)
    return partial + np.asarray(bias, dtype=np.float64)[ref][:, None] > lg_alt[:, None]


def class_topk_coverage(
    covered: np.ndarray,
    preds: np.ndarray,
    n_classes: int,
    ks: tuple[int, ...] = (2, 3, 5, 7),
) -> np.ndarray:
    """Class top-K coverage ratio (C, len(ks)): share of covered instances per *predicted*
    class; NaN for a class nothing is predicted as."""
    preds = np.asarray(preds, dtype=np.int64)
    cols = covered[:, [k - 1 for k in ks]].astype(np.float64)
    counts = np.bincount(preds, minlength=n_classes)
    hits = np.stack(
        [np.bincount(preds, weights=cols[:, j], minlength=n_classes) for j in range(len(ks))],
        axis=1,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, None] > 0, hits / counts[:, None], np.nan)


def smallest_k(covered: np.ndarray, threshold: float = 0.94) -> int | None:
    """Smallest K whose coverage over all instances is >= ``threshold``; None if none."""
    ratios = covered.mean(axis=0)
    hit = np.nonzero(ratios >= threshold)[0]
    return int(hit[0]) + 1 if hit.size else None


@dataclass
class CoverageResult:
    """RQ3 output. ``class_ratio`` (C, len(ks)), ``n_per_class`` (C,) predicted counts,
    ``overall_by_k`` (H,) coverage of all instances for K = 1..H."""

    ks: tuple[int, ...]
    class_ratio: np.ndarray
    n_per_class: np.ndarray
    overall_by_k: np.ndarray
    smallest_k: int | None
    threshold: float

    def table(self) -> dict[str, list]:
        """Fig 3 table: ``class``, ``n_pred``, then one ``K=k`` column per K."""
        out: dict[str, list] = {
            "class": list(range(len(self.n_per_class))),
            "n_pred": [int(x) for x in self.n_per_class],
        }
        for j, k in enumerate(self.ks):
            out[f"K={k}"] = [float(x) for x in self.class_ratio[:, j]]
        return out


def rq3_coverage(
    fe: np.ndarray,
    W: np.ndarray,
    bias: np.ndarray,
    logits: np.ndarray,
    normed: bool = False,
    ks: tuple[int, ...] = (2, 3, 5, 7),
    threshold: float = 0.94,
) -> CoverageResult:
    """All RQ3 figures for one embedding set; classes are the argmax of ``logits``."""
    logits = np.asarray(logits)
    n_classes, width = logits.shape[1], np.asarray(fe).shape[1]
    if any(k < 1 or k > width for k in ks):
        raise ValueError(f"every K must lie in 1..{width}, got {ks}")
    covered = topk_coverage_matrix(fe, W, bias, logits, normed)
    preds = np.argmax(logits, axis=1)
    return CoverageResult(
        ks=tuple(ks),
        class_ratio=class_topk_coverage(covered, preds, n_classes, ks),
        n_per_class=np.bincount(preds, minlength=n_classes),
        overall_by_k=covered.mean(axis=0),
        smallest_k=smallest_k(covered, threshold),
        threshold=threshold,
    )
