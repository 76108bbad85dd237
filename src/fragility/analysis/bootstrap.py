"""One run's headline numbers and claim statistics with a stratified bootstrap.

Each of the paper's claims (:data:`fragility.catalog.claims.CLAIMS`) is a signed difference that is
positive when the claim holds, computed by the function its catalog entry names (in the
module of its research question) on :class:`~fragility.analysis.inputs.ClaimInputs`. This
module draws the bootstrap replicates, calls every claim's function and writes one row per
statistic: its value under the data as observed, its percentile interval, the values its
detail quotes, and why it is *n/a* where it is.

"Resampled" (each claim's ``resampled``) names the instances the bootstrap redraws (per
class): the test images for statistics of test predictions, the training images for those
measured on the training subset (RQ3-RQ6), the training images of both models for the
claims that compare a run with its balanced partner. The trained models are held fixed: the
interval says how much the number moves with the images, not with training randomness. The
weight sums of RQ5 depend on no image: they have no bootstrap interval, and a verdict on them
needs seeds.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from fragility.analysis.inputs import ClaimInputs, Measured, RunInputs
from fragility.analysis.uncertainty import (
    N_BOOT,
    confusion_metrics,
    percentile_interval,
    stratified_weights,
    weighted_confusion,
)
from fragility.catalog import resolve
from fragility.catalog.claims import CLAIMS, ClaimSpec

HEADLINE = ("bac", "macro_f1", "gmean", "accuracy", "minority_acc", "majority_acc")
KIND = {
    "test": "bootstrap over test images",
    "train": "bootstrap over training images",
    "partner": "bootstrap over the training images of the run and its balanced partner",
    "model": "none: a property of the trained weights, no image to resample",
}


def statistic(name: str) -> Callable[[ClaimInputs], Measured]:
    """The function that measures claim ``name`` (its catalog entry's ``compute``)."""
    return resolve(CLAIMS[name].compute)


def measure(name: str, data: ClaimInputs) -> Measured:
    """Claim ``name`` on one run: n/a on a head its statistic means nothing on."""
    spec: ClaimSpec = CLAIMS[name]
    if data.run.head not in spec.heads:
        return Measured.not_measurable(f"{data.run.head} head: {spec.head_reason}")
    return statistic(name)(data)


def headline_statistics(run: RunInputs, test_w: np.ndarray) -> dict[str, np.ndarray]:
    """BAC, macro-F1, G-mean, accuracy, minority and majority test accuracy under each row
    of ``test_w`` (R, N_test)."""
    maj, mino = run.roles
    conf = weighted_confusion(test_w, run.test["label"], run.test["pred"], run.n_classes)
    return confusion_metrics(conf, maj, mino)


def _balanced_weights(run: RunInputs, balanced_test: dict, test_w: np.ndarray, seed: int, n_boot):
    """``(labels, preds, weights)`` of the balanced model's test images: paired image by
    image with ours (the same bootstrap rows) when it saw the same images, else its own."""
    same = np.array_equal(np.sort(balanced_test["index"]), np.sort(run.test["index"]))
    if same:  # the same images: reorder the balanced model's rows to ours
        where = {int(i): r for r, i in enumerate(balanced_test["index"])}
        order = np.array([where[int(i)] for i in run.test["index"]])
        return balanced_test["label"][order], balanced_test["pred"][order], test_w
    weights = stratified_weights(balanced_test["label"], n_boot, (seed, 2), observed_first=True)
    return balanced_test["label"], balanced_test["pred"], weights


SCHEMA = pa.schema(
    [
        ("statistic", pa.string()),
        ("estimate", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int64()),
        ("n_boot", pa.int64()),
        ("interval", pa.string()),
        ("reason", pa.string()),  # why a claim is n/a on this run (null when measured)
        ("parts", pa.string()),  # JSON: the values a claim's detail quotes
        ("replicates", pa.list_(pa.float64())),
    ]
)


def _json(parts: dict) -> str:
    def plain(value):
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    return json.dumps({k: plain(v) for k, v in parts.items()}, sort_keys=True)


def run_bootstrap(
    run: RunInputs,
    *,
    seed: int,
    n_boot: int = N_BOOT,
    retrained_pred: np.ndarray | None = None,
    balanced_test: dict | None = None,
    balanced_name: str = "",
    partner: RunInputs | None = None,
    partner_name: str = "",
    partner_missing: str = "",
    ks=(2, 3, 5, 7),
    k_fe: int = 7,
    claims: bool = True,
    confidence: float = 0.95,
) -> pa.Table:
    """One row per statistic: ``statistic``, ``estimate``, ``ci_low``, ``ci_high``, ``n``
    (instances resampled), ``n_boot``, ``interval`` (its kind), ``reason`` (why a claim is
    n/a), ``parts`` (JSON) and ``replicates`` (list).

    Headline metrics always; with ``claims`` (an imbalanced run) every claim of the catalog,
    with the extra statistics some of them measure (RQ1's three BACs). ``retrained_pred``:
    the RQ1 classifier's test predictions; ``balanced_test``: Table 1's balanced model's test
    embeddings (paired by image when it holds the same test images); ``partner``: the
    balanced run of the same loss, head, architecture and epochs that the
    balanced-vs-imbalanced claims compare with (``partner_missing`` says why there is none).
    The replicates are seeded by ``seed`` (the run's), so the same files give the same
    intervals on every machine."""
    test_w = stratified_weights(run.test["label"], n_boot, (seed, 0), observed_first=True)
    rows: list[tuple[str, np.ndarray | None, str, str, dict]] = []
    for name, values in headline_statistics(run, test_w).items():
        rows.append((name, values, "test", "", {}))
    if claims:
        train_w = stratified_weights(run.train["label"], n_boot, (seed, 1), observed_first=True)
        data = ClaimInputs(run, train_w, test_w, ks=tuple(ks), k_fe=int(k_fe))
        data.retrained_pred = retrained_pred
        if balanced_test is not None:
            data.balanced_test = _balanced_weights(run, balanced_test, test_w, seed, n_boot)
            data.balanced_name = balanced_name
        if partner is not None:
            data.partner = partner
            data.partner_train_w = stratified_weights(
                partner.train["label"], n_boot, (seed, 3), observed_first=True
            )
            data.partner_name = partner_name
        elif partner_missing:
            data.partner_missing = partner_missing
        for name, spec in CLAIMS.items():
            result = measure(name, data)
            rows.append((name, result.values, spec.resampled, result.reason, result.parts))
            for extra, values in result.extra.items():
                rows.append((extra, values, spec.resampled, "", {}))
    n_of = {
        "test": len(run.test["label"]),
        "train": len(run.train["label"]),
        "partner": len(run.train["label"]),
        "model": 1,
    }
    out: dict[str, list] = {field.name: [] for field in SCHEMA}
    for name, values, side, reason, parts in rows:
        if values is None:
            values = np.full(n_boot + 1, np.nan)
        estimate = float(values[0]) if np.isfinite(values[0]) else None
        replicates = np.asarray(values[1:], dtype=np.float64)
        iv = percentile_interval(replicates, estimate, n_of[side], KIND[side], confidence)
        out["statistic"].append(name)
        out["estimate"].append(iv.estimate)
        out["ci_low"].append(iv.low)
        out["ci_high"].append(iv.high)
        out["n"].append(iv.n)
        out["n_boot"].append(n_boot)
        out["interval"].append(iv.kind)
        out["reason"].append(reason or None)
        out["parts"].append(_json(parts))
        out["replicates"].append([None if not np.isfinite(v) else float(v) for v in replicates])
    return pa.table(out, schema=SCHEMA)
