"""The analysis stages as file-in, file-out functions (used by the workflow's analysis rules).

Kept apart from :mod:`fragility.stages` so that these jobs never import torch at start-up
(RQ1's re-training imports it when it runs): the workflow runs dozens of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _write_both(table: pa.Table, out_dir: str | Path, name: str) -> None:
    from .tables import write_table

    for ext in ("csv", "parquet"):
        write_table(table, Path(out_dir) / f"{name}.{ext}")


def analyze_run(run_dir: str | Path, rq: str, out_dir: str | Path, *, ks, k_fe: int) -> None:
    """Write the per-run tables of research question ``rq`` (RQ2-RQ7) as CSV and Parquet."""
    from .tables import RunInputs, rq_tables

    inputs = RunInputs.load(run_dir, pool=False)
    for name, table in rq_tables(rq, inputs, ks=ks, k_fe=k_fe).items():
        _write_both(table, out_dir, name)


def retrain_run(run_dir: str | Path, out_dir: str | Path, *, seed: int, epochs: int) -> None:
    """RQ1 for one run: re-train a linear classifier on the pool FE of this run's extractor
    and evaluate it on the test FE; writes ``retrained.{csv,parquet}`` in ``out_dir``."""
    from ..embeddings import read_classifier, read_embeddings
    from ..metrics import balanced_accuracy
    from .rq1 import evaluate_linear, retrain_classifier
    from .tables import write_table

    emb = Path(run_dir) / "embeddings"
    pool, test = read_embeddings(emb / "pool.parquet"), read_embeddings(emb / "test.parquet")
    n_classes = read_classifier(emb / "classifier.parquet")["weight"].shape[0]
    bac_model = balanced_accuracy(test["label"], test["pred"], n_classes)
    W, bias = retrain_classifier(pool["fe"], pool["label"], n_classes, seed=seed, epochs=epochs)
    preds = evaluate_linear(test["fe"], W, bias)
    bac = balanced_accuracy(test["label"], preds, n_classes)
    table = pa.table(
        {
            "bac_model": [float(bac_model)],
            "bac_retrained": [float(bac)],
            "retrain_gain": [float(bac - bac_model)],
            "n_pool": [len(pool["label"])],
            "epochs": [int(epochs)],
        }
    )
    _write_both(table, out_dir, "retrained")
    # the re-trained classifier's test predictions: the paired bootstrap of RQ1 needs them
    predictions = pa.table({"index": test["index"], "label": test["label"], "pred": preds})
    write_table(predictions, Path(out_dir) / "retrained_predictions.parquet")
    print(f"test BAC {bac_model:.4f} -> {bac:.4f} with a re-trained classifier", file=sys.stderr)


def bootstrap_run(
    files: dict,
    out_dir: str | Path,
    *,
    seed: int,
    claims: bool,
    n_boot: int,
    ks,
    k_fe: int,
    confidence: float = 0.95,
) -> None:
    """``bootstrap.{csv,parquet}`` of one model: its headline numbers and (``claims``) each
    claim's difference with a stratified bootstrap interval. ``files``: ``train``, ``test``,
    ``classifier`` embeddings and ``metrics`` (metrics.json); optionally ``retrained`` (RQ1's
    ``retrained_predictions.parquet``) and ``balanced_test`` (the balanced model's test
    embeddings)."""
    import json

    import numpy as np

    from ..embeddings import read_classifier, read_embeddings
    from .bootstrap import ModelView, run_bootstrap
    from .tables import write_table

    classifier = read_classifier(files["classifier"])
    metrics = json.loads(Path(files["metrics"]).read_text())
    view = ModelView(
        train=read_embeddings(files["train"]),
        test=read_embeddings(files["test"]),
        W=np.asarray(classifier["weight"], dtype=np.float64),
        bias=np.asarray(classifier["bias"], dtype=np.float64),
        normed=bool(classifier["normed"]),
        counts=np.asarray(metrics["train_class_counts"]),
    )
    retrained = files.get("retrained")
    balanced = files.get("balanced_test")
    table = run_bootstrap(
        view,
        seed=seed,
        n_boot=n_boot,
        retrained_pred=None if retrained is None else _aligned_preds(retrained, view.test),
        balanced_test=None if balanced is None else read_embeddings(balanced),
        ks=ks,
        k_fe=k_fe,
        claims=claims,
        confidence=confidence,
    )
    write_table(table.drop_columns(["replicates"]), Path(out_dir) / "bootstrap.csv")
    write_table(table, Path(out_dir) / "bootstrap.parquet")


def _aligned_preds(path: str | Path, test: dict):
    """The ``pred`` column of a predictions file, in the row order of ``test``."""
    table = pq.read_table(path)
    where = {int(i): p for i, p in zip(table["index"].to_pylist(), table["pred"].to_pylist())}
    missing = [int(i) for i in test["index"] if int(i) not in where]
    if missing:
        from ..errors import FragilityError

        raise FragilityError(f"{path} lacks predictions for {len(missing)} test images")
    import numpy as np

    return np.array([where[int(i)] for i in test["index"]], dtype=np.int64)


def plot_run_figure(figure: str, table_paths: dict, out_path: str | Path, title: str) -> None:
    """Draw one per-run figure from its tables (Parquet files keyed by table name)."""
    from ..plotting import plot_figure

    plot_figure(figure, {k: pq.read_table(p) for k, p in table_paths.items()}, out_path, title)


def cross_run_tables(name: str, runs: list[dict], out_dir: str | Path) -> None:
    """Write cross-run table ``name`` (summary over seeds, and ``{name}_by_seed``) as CSV
    and Parquet; ``runs`` are dicts with dataset, imbalance, loss, seed and run_dir."""
    from .crossrun import RunRef, cross_run_table

    summary, by_seed = cross_run_table(name, [RunRef(**r) for r in runs])
    _write_both(summary, out_dir, name)
    _write_both(by_seed, out_dir, f"{name}_by_seed")


def check_claims(
    by_seed_paths: dict, bootstrap_paths: dict, out_csv: str | Path, out_txt: str | Path
) -> None:
    """``claims.csv`` and its plain-text summary from the ``*_by_seed`` cross-run tables
    and each imbalanced run's ``bootstrap.parquet`` (keyed by (dataset, imbalance, loss,
    seed))."""
    from ..io import atomic_path
    from .claims import claims_summary, measure_claims
    from .tables import write_table

    claims = measure_claims(
        {k: pq.read_table(p) for k, p in by_seed_paths.items()},
        {tuple(k): pq.read_table(p) for k, p in bootstrap_paths.items()},
    )
    write_table(claims, out_csv)
    write_table(claims, Path(out_csv).with_suffix(".parquet"))
    text = claims_summary(claims)
    with atomic_path(out_txt) as tmp:
        Path(tmp).write_text(text)
    print(text, file=sys.stderr)


def write_summary(files: dict, out_rst: str | Path) -> None:
    """The report's front page (``summary.rst``) from ``claims`` and, when present,
    ``table1`` and ``remedies`` (Parquet summary tables)."""
    from ..io import atomic_path
    from .summary import front_page

    tables = {k: pq.read_table(p) for k, p in files.items()}
    text = front_page(tables["claims"], tables.get("table1"), tables.get("remedies"))
    with atomic_path(out_rst) as tmp:
        Path(tmp).write_text(text)


def plot_cross_run_figure(figure: str, table_path: str | Path, out_path: str | Path) -> None:
    from ..plotting import plot_cross_run

    plot_cross_run(figure, pq.read_table(table_path), out_path)


def remedies_tables(
    runs: list[dict], base: list[str], remedies: dict, out_dir: str | Path, n_boot: int = 1000
) -> None:
    """``remedies.{csv,parquet}`` (mean, std and interval over seeds, paired verdicts) and
    ``remedies_by_seed.*``."""
    from .crossrun import RunRef, remedies_table

    summary, by_seed = remedies_table([RunRef(**r) for r in runs], base, remedies, n_boot)
    _write_both(summary, out_dir, "remedies")
    _write_both(by_seed, out_dir, "remedies_by_seed")


def plot_remedies(table_path: str | Path, out_path: str | Path) -> None:
    from ..plotting import plot_remedy_costs

    plot_remedy_costs(pq.read_table(table_path), out_path)


def write_provenance(runs: list[dict], out_csv: str | Path) -> None:
    from .crossrun import RunRef, provenance_table
    from .tables import write_table

    write_table(provenance_table([RunRef(**r) for r in runs]), out_csv)
