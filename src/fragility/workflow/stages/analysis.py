"""The analysis stages: a run's per-run tables and bootstrap, the tables over the study's
runs, the claims, the report's front page and the provenance. None of them imports torch
(the workflow runs dozens of them)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fragility.analysis.bootstrap import run_bootstrap
from fragility.analysis.claims import claims_summary, measure_claims
from fragility.analysis.crossrun import cross_run_table, provenance_table, remedies_table
from fragility.analysis.inputs import RunInputs
from fragility.analysis.runs import RunFiles
from fragility.analysis.summary import claims_matrix, front_page
from fragility.analysis.tables import rq_tables
from fragility.catalog.outputs import REMEDY_TABLE
from fragility.embeddings.files import read_embeddings
from fragility.errors import FragilityError
from fragility.io import (
    Outputs,
    outputs_named,
    read_table,
    the_output,
    write_table,
    write_tables,
    write_text,
)


def analyze_run(files: dict, rq: str, outputs: Outputs, *, ks: list[int], k_fe: int) -> None:
    """Write the per-run tables of research question ``rq`` (RQ2-RQ7) to ``outputs`` (each
    table's ``.csv`` and ``.parquet``, as :data:`fragility.catalog.outputs.RUN_TABLES` names them).
    ``files``: the model files it reads, kind -> path (``train``, ``test``, ``classifier``,
    ``metrics``, ``history``; :meth:`RunInputs.from_files`)."""
    inputs = RunInputs.from_files(files)
    write_tables(rq_tables(rq, inputs, ks=ks, k_fe=k_fe), outputs)


def bootstrap_run(
    files: dict,
    outputs: Outputs,
    *,
    seed: int,
    claims: bool,
    n_boot: int,
    ks: list[int],
    k_fe: int,
    balanced_name: str = "",
    partner_name: str = "",
    partner_missing: str = "",
    confidence: float = 0.95,
) -> None:
    """``bootstrap.csv`` (without the replicates) and ``bootstrap.parquet`` of one model, to
    ``outputs``: its headline numbers and (``claims``) each
    claim's difference with a stratified bootstrap interval. ``files``: ``train``, ``test``,
    ``classifier`` embeddings and ``metrics`` (metrics.json); with ``claims`` also
    ``retrained_predictions`` (RQ1's re-trained classifier), ``balanced_test`` (Table 1's
    balanced model's test embeddings, named ``balanced_name``) when there is one, and the
    balanced partner's ``partner_train``, ``partner_classifier`` and ``partner_metrics``
    (named ``partner_name``; ``partner_missing`` says why there is none)."""
    paths = outputs_named(outputs, (".csv", ".parquet"))
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
    write_table(table.drop_columns(["replicates"]), paths[".csv"])
    write_table(table, paths[".parquet"])


def _aligned_preds(path: str | Path, test: dict):
    """The ``pred`` column of a predictions file, in the row order of ``test``."""
    table = read_table(path)
    where = {int(i): p for i, p in zip(table["index"].to_pylist(), table["pred"].to_pylist())}
    missing = [int(i) for i in test["index"] if int(i) not in where]
    if missing:
        raise FragilityError(f"{path} lacks predictions for {len(missing)} test images")
    return np.array([where[int(i)] for i in test["index"]], dtype=np.int64)


def _run_files(runs: list[dict]) -> list[RunFiles]:
    return [RunFiles(**r) for r in runs]


def cross_run_tables(name: str, runs: list[dict], outputs: Outputs) -> None:
    """Write cross-run table ``name`` (summary over seeds, and ``{name}_by_seed``) to
    ``outputs`` (CSV and Parquet). ``runs``: dicts with dataset, imbalance, loss, seed and
    ``files`` (kind -> path, the files :data:`fragility.catalog.outputs.CROSS_RUN_TABLES` says the
    table reads)."""
    summary, by_seed = cross_run_table(name, _run_files(runs))
    write_tables({name: summary, f"{name}_by_seed": by_seed}, outputs)


def check_claims(
    premise_path: str | Path,
    bootstrap_paths: dict,
    outputs: Outputs,
    losses: dict | None = None,
) -> None:
    """``claims.csv``, ``claims.parquet`` and its plain-text summary ``claims.txt`` (to
    ``outputs``) from each imbalanced run's
    ``bootstrap.parquet`` (keyed by (dataset, imbalance, loss, seed)) and ``table2_by_seed``
    (``premise_path``: every seed's lowest class train accuracy); ``losses``, the study's loss
    entries, say which paper model each run group compares with."""
    paths = outputs_named(outputs, (".csv", ".parquet", ".txt"))
    claims = measure_claims(
        read_table(premise_path),
        {tuple(k): read_table(p) for k, p in bootstrap_paths.items()},
        losses,
    )
    write_table(claims, paths[".csv"])
    write_table(claims, paths[".parquet"])
    text = claims_summary(claims)
    write_text(text, paths[".txt"])
    print(text, file=sys.stderr)


def write_summary(files: dict, outputs: Outputs) -> None:
    """The report's front page (``summary.rst``) from ``claims`` and, when present,
    ``table1`` and ``remedies`` (Parquet summary tables), and the claims at a glance
    (``claims_matrix.html``), to ``outputs``."""
    paths = outputs_named(outputs, (".rst", ".html"))
    tables = {k: read_table(p) for k, p in files.items()}
    front = front_page(tables["claims"], tables.get("table1"), tables.get("remedies"))
    write_text(front, paths[".rst"])
    write_text(claims_matrix(tables["claims"]), paths[".html"])


def remedies_tables(runs: list[dict], remedies: dict, outputs: Outputs, n_boot: int = 1000) -> None:
    """``remedies.{csv,parquet}`` (mean, std and interval over seeds, paired verdicts) and
    ``remedies_by_seed.*`` to ``outputs``. ``runs`` as for :func:`cross_run_tables`, the
    treated ones with ``remedies`` (remedy name -> its files); ``remedies`` maps each remedy
    name to its method."""
    summary, by_seed = remedies_table(_run_files(runs), remedies, n_boot)
    write_tables({REMEDY_TABLE: summary, f"{REMEDY_TABLE}_by_seed": by_seed}, outputs)


def write_provenance(runs: list[dict], outputs: Outputs) -> None:
    """``provenance.csv`` (``outputs``: its path): what produced each run, from its
    ``metrics`` file."""
    write_table(provenance_table(_run_files(runs)), the_output(outputs))
