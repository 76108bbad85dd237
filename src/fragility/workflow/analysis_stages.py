"""The analysis stages as file-in, file-out functions (used by the workflow's analysis rules).

Kept apart from :mod:`fragility.workflow.stages` so that these jobs never import torch at start-up
(RQ1's re-training imports it when it runs): the workflow runs dozens of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

from fragility.io import read_table


def _paths(outputs) -> list[str]:
    """Output paths from a list, or a single JSON-able list given on the command line."""
    return [str(p) for p in ([outputs] if isinstance(outputs, str | Path) else outputs)]


def analyze_run(files: dict, rq: str, outputs: list, *, ks, k_fe: int) -> None:
    """Write the per-run tables of research question ``rq`` (RQ2-RQ7) to ``outputs`` (each
    table's ``.csv`` and ``.parquet``, as :data:`fragility.catalog.outputs.RUN_TABLES` names them).
    ``files``: the model files it reads, kind -> path (``train``, ``test``, ``classifier``,
    ``metrics``, ``history``; :meth:`RunInputs.from_files`)."""
    from fragility.analysis.inputs import RunInputs
    from fragility.analysis.tables import rq_tables
    from fragility.io import write_tables

    inputs = RunInputs.from_files(files)
    write_tables(rq_tables(rq, inputs, ks=ks, k_fe=k_fe), _paths(outputs))


def retrain_run(files: dict, outputs: list, *, seed: int, epochs: int) -> None:
    """RQ1 for one run: re-train a linear classifier on the pool FE (``files["pool"]``) of
    this run's extractor and evaluate it on the test FE (``test``; ``classifier`` gives the
    class count); writes ``retrained.{csv,parquet}`` and ``retrained_predictions.parquet``
    to ``outputs``."""
    from fragility.analysis.rq1 import evaluate_linear, retrain_classifier
    from fragility.embeddings.files import read_classifier, read_embeddings
    from fragility.io import write_tables
    from fragility.metrics import balanced_accuracy

    pool, test = read_embeddings(files["pool"]), read_embeddings(files["test"])
    n_classes = read_classifier(files["classifier"])["weight"].shape[0]
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
    # the re-trained classifier's test predictions: the paired bootstrap of RQ1 needs them
    predictions = pa.table({"index": test["index"], "label": test["label"], "pred": preds})
    write_tables({"retrained": table, "retrained_predictions": predictions}, _paths(outputs))
    print(f"test BAC {bac_model:.4f} -> {bac:.4f} with a re-trained classifier", file=sys.stderr)


def bootstrap_run(
    files: dict,
    out_csv: str | Path,
    out_parquet: str | Path,
    *,
    seed: int,
    claims: bool,
    n_boot: int,
    ks,
    k_fe: int,
    balanced_name: str = "",
    partner_name: str = "",
    partner_missing: str = "",
    confidence: float = 0.95,
) -> None:
    """``bootstrap.{csv,parquet}`` of one model: its headline numbers and (``claims``) each
    claim's difference with a stratified bootstrap interval. ``files``: ``train``, ``test``,
    ``classifier`` embeddings and ``metrics`` (metrics.json); with ``claims`` also
    ``retrained_predictions`` (RQ1's re-trained classifier), ``balanced_test`` (Table 1's
    balanced model's test embeddings, named ``balanced_name``) when there is one, and the
    balanced partner's ``partner_train``, ``partner_classifier`` and ``partner_metrics``
    (named ``partner_name``; ``partner_missing`` says why there is none)."""
    from fragility.analysis.bootstrap import run_bootstrap
    from fragility.analysis.inputs import RunInputs
    from fragility.embeddings.files import read_embeddings
    from fragility.errors import FragilityError
    from fragility.io import write_table

    run = RunInputs.from_files(files)
    retrained = files.get("retrained_predictions")
    if claims and retrained is None:
        raise FragilityError("the claims' bootstrap needs RQ1's retrained_predictions file")
    balanced = files.get("balanced_test")
    partner = RunInputs.from_files(files, "partner_") if "partner_train" in files else None
    table = run_bootstrap(
        run,
        seed=seed,
        n_boot=n_boot,
        retrained_pred=None if retrained is None else _aligned_preds(retrained, run.test),
        balanced_test=None if balanced is None else read_embeddings(balanced),
        balanced_name=balanced_name,
        partner=partner,
        partner_name=partner_name,
        partner_missing=partner_missing,
        ks=ks,
        k_fe=k_fe,
        claims=claims,
        confidence=confidence,
    )
    write_table(table.drop_columns(["replicates"]), out_csv)
    write_table(table, out_parquet)


def _aligned_preds(path: str | Path, test: dict):
    """The ``pred`` column of a predictions file, in the row order of ``test``."""
    table = read_table(path)
    where = {int(i): p for i, p in zip(table["index"].to_pylist(), table["pred"].to_pylist())}
    missing = [int(i) for i in test["index"] if int(i) not in where]
    if missing:
        from fragility.errors import FragilityError

        raise FragilityError(f"{path} lacks predictions for {len(missing)} test images")
    import numpy as np

    return np.array([where[int(i)] for i in test["index"]], dtype=np.int64)


def plot_run_figure(figure: str, table_paths: dict, out_path: str | Path, title: str) -> None:
    """Draw one per-run figure from its tables (Parquet files keyed by table name)."""
    from fragility.plotting.run_figures import plot_figure

    plot_figure(figure, {k: read_table(p) for k, p in table_paths.items()}, out_path, title)


def _run_refs(runs: list[dict]):
    from fragility.analysis.runs import RunFiles

    return [RunFiles(**r) for r in runs]


def cross_run_tables(name: str, runs: list[dict], outputs: list) -> None:
    """Write cross-run table ``name`` (summary over seeds, and ``{name}_by_seed``) to
    ``outputs`` (CSV and Parquet). ``runs``: dicts with dataset, imbalance, loss, seed and
    ``files`` (kind -> path, the files :data:`fragility.catalog.outputs.CROSS_RUN_TABLES` says the
    table reads)."""
    from fragility.analysis.crossrun import cross_run_table
    from fragility.io import write_tables

    summary, by_seed = cross_run_table(name, _run_refs(runs))
    write_tables({name: summary, f"{name}_by_seed": by_seed}, _paths(outputs))


def check_claims(
    premise_path: str | Path,
    bootstrap_paths: dict,
    out_csv: str | Path,
    out_parquet: str | Path,
    out_txt: str | Path,
    losses: dict | None = None,
) -> None:
    """``claims.{csv,parquet}`` and its plain-text summary from each imbalanced run's
    ``bootstrap.parquet`` (keyed by (dataset, imbalance, loss, seed)) and ``table2_by_seed``
    (``premise_path``: every seed's lowest class train accuracy); ``losses``, the study's loss
    entries, say which paper model each run group compares with."""
    from fragility.analysis.claims import claims_summary, measure_claims
    from fragility.io import write_table, write_text

    claims = measure_claims(
        read_table(premise_path),
        {tuple(k): read_table(p) for k, p in bootstrap_paths.items()},
        losses,
    )
    write_table(claims, out_csv)
    write_table(claims, out_parquet)
    text = claims_summary(claims)
    write_text(text, out_txt)
    print(text, file=sys.stderr)


def write_summary(files: dict, out_rst: str | Path, out_matrix: str | Path) -> None:
    """The report's front page (``summary.rst``) from ``claims`` and, when present,
    ``table1`` and ``remedies`` (Parquet summary tables), and the claims at a glance
    (``claims_matrix.html``)."""
    from fragility.analysis.summary import claims_matrix, front_page
    from fragility.io import write_text

    tables = {k: read_table(p) for k, p in files.items()}
    write_text(front_page(tables["claims"], tables.get("table1"), tables.get("remedies")), out_rst)
    write_text(claims_matrix(tables["claims"]), out_matrix)


def plot_cross_run_figure(figure: str, table_path: str | Path, out_path: str | Path) -> None:
    from fragility.plotting.cross_run import plot_cross_run

    plot_cross_run(figure, read_table(table_path), out_path)


def remedies_tables(runs: list[dict], remedies: dict, outputs: list, n_boot: int = 1000) -> None:
    """``remedies.{csv,parquet}`` (mean, std and interval over seeds, paired verdicts) and
    ``remedies_by_seed.*`` to ``outputs``. ``runs`` as for :func:`cross_run_tables`, the
    treated ones with ``remedies`` (remedy name -> its files); ``remedies`` maps each remedy
    name to its method."""
    from fragility.analysis.crossrun import remedies_table
    from fragility.io import write_tables

    summary, by_seed = remedies_table(_run_refs(runs), remedies, n_boot)
    write_tables({"remedies": summary, "remedies_by_seed": by_seed}, _paths(outputs))


def plot_remedies(table_path: str | Path, out_path: str | Path) -> None:
    from fragility.plotting.remedies import plot_remedy_costs

    plot_remedy_costs(read_table(table_path), out_path)


def write_provenance(runs: list[dict], out_csv: str | Path) -> None:
    """``provenance.csv``: what produced each run, from its ``metrics`` file."""
    from fragility.analysis.crossrun import provenance_table
    from fragility.io import write_table

    write_table(provenance_table(_run_refs(runs)), out_csv)
