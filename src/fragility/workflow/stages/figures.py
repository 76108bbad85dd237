"""The figure stages: a run's figures, the figures over the study's runs, the remedies'
figure and the fragility curves, each a PNG drawn from its tables."""

from __future__ import annotations

from pathlib import Path

from fragility.analysis.curves import curve_of
from fragility.io import Outputs, read_table, the_output
from fragility.plotting import curves as curve_plots
from fragility.plotting.cross_run import plot_cross_run
from fragility.plotting.remedies import plot_remedy_costs
from fragility.plotting.run_figures import plot_figure


def plot_run_figure(figure: str, table_paths: dict, outputs: Outputs, title: str) -> None:
    """Draw per-run figure ``figure`` from its tables (Parquet files keyed by table name)."""
    tables = {k: read_table(p) for k, p in table_paths.items()}
    plot_figure(figure, tables, the_output(outputs), title)


def plot_cross_run_figure(figure: str, table_path: str | Path, outputs: Outputs) -> None:
    """Draw cross-run figure ``figure`` from its cross-run summary table."""
    plot_cross_run(figure, read_table(table_path), the_output(outputs))


def plot_remedies(table_path: str | Path, outputs: Outputs) -> None:
    """Draw the remedies' test BAC against their cost from the remedies summary table."""
    plot_remedy_costs(read_table(table_path), the_output(outputs))


def plot_curve_figure(
    curve: str, table_paths: dict, dataset: str, loss: str, outputs: Outputs
) -> None:
    """Draw fragility-curve figure ``curve`` of ``dataset`` and ``loss`` from its input tables
    (source -> path of :func:`fragility.analysis.curves.curve_input`)."""
    tables = {source: curve_of(source, read_table(path)) for source, path in table_paths.items()}
    curve_plots.plot_curve_figure(curve, tables, dataset, loss, the_output(outputs))
