"""A toy claim, a toy per-run table and a toy figure, each declared by one catalog entry and
made by one function here: the tests register them (:func:`register`) and check that they
reach the rules, the targets, the claims and the report with nothing else edited.

A subprocess (the workflow and its jobs) registers them through a ``sitecustomize`` module
that :func:`site_folder` writes, found on ``PYTHONPATH`` before the interpreter runs
anything else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.analysis.inputs import ClaimInputs, Measured, RunInputs, point
from fragility.catalog.claims import CLAIMS, ClaimSpec
from fragility.catalog.outputs import RUN_FIGURES, RUN_TABLES, Figure, RunTables
from fragility.plotting.style import figure, save, styled

TOY_RQ, TOY_TABLE, TOY_FIGURE, TOY_CLAIM = "rq8", "toy_means", "toy_means", "toy_claim"
TOY_CAPTION = "A toy figure: each class's mean FE norm, declared by one catalog entry."


def register(caption: str = TOY_CAPTION) -> None:
    """Add the toy entries to the catalog (its dicts are the ones every module reads)."""
    RUN_TABLES[TOY_RQ] = RunTables(
        (TOY_TABLE,),
        ("train", "classifier", "metrics"),
        "a toy table: each class's mean FE norm",
        build="toy_entries:toy_tables",
    )
    RUN_FIGURES[TOY_FIGURE] = Figure(TOY_RQ, (TOY_TABLE,), caption, plot="toy_entries:plot_toy")
    CLAIMS[TOY_CLAIM] = ClaimSpec(
        "minority instances have larger FE than majority ones",
        "a test",
        "minority - majority mean FE norm of the training instances",
        "> 0",
        "Toy: minority FE larger",
        "toy_entries:toy_statistic",
        "minority minus majority mean FE norm {difference:.3f}",
        "train",
        {},
    )


def site_folder(folder: Path, before: str = "") -> Path:
    """A folder holding a ``sitecustomize`` that registers the toy entries (after running
    ``before``, Python source) in every interpreter started with it on ``PYTHONPATH``."""
    folder.mkdir(parents=True, exist_ok=True)
    code = f"import toy_entries\n{before}\ntoy_entries.register()\n"
    (folder / "sitecustomize.py").write_text(code)
    return folder


def toy_tables(inputs: RunInputs, *, ks, k_fe: int) -> dict[str, pa.Table]:
    norms = np.linalg.norm(inputs.train["fe"], axis=1)
    labels = inputs.train["label"]
    means = [float(norms[labels == c].mean()) if (labels == c).any() else None
             for c in range(inputs.n_classes)]  # fmt: skip
    return {TOY_TABLE: pa.table({"class": list(range(inputs.n_classes)), "mean_fe_norm": means})}


@styled
def plot_toy(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    table = tables[TOY_TABLE]
    fig, axes = figure(2.0)
    axes[0, 0].bar(table["class"].to_pylist(), table["mean_fe_norm"].to_pylist())
    save(fig, out_path, title)


def toy_statistic(data: ClaimInputs) -> Measured:
    run = data.run
    norms = np.linalg.norm(run.train["fe"], axis=1)
    labels, (majority, minority) = run.train["label"], run.roles

    def mean(c: int) -> np.ndarray:
        rows = labels == c
        return data.train_w[:, rows] @ norms[rows] / data.train_w[:, rows].sum(axis=1)

    values = mean(minority) - mean(majority)
    return Measured(values, {"difference": point(values)})
