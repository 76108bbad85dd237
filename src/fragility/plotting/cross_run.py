"""Figures over the study's runs (``results/figures/``), drawn from the cross-run summary
tables of :mod:`fragility.analysis.crossrun`.

Every figure is declared in :data:`fragility.catalog.outputs.CROSS_RUN_FIGURES`: the
cross-run table it reads, its caption and its plot function (here, or in
:mod:`fragility.plotting.dynamics`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fragility.catalog import resolve
from fragility.catalog.outputs import CROSS_RUN_FIGURES
from fragility.errors import ConfigError
from fragility.plotting.style import (
    BLUE,
    GREEN,
    VERMILLION,
    MaxNLocator,
    figure,
    ints,
    legend_with_note,
    save,
    styled,
    values,
)


def _run_groups(table: pa.Table) -> list[str]:
    """x labels for the (dataset, imbalance, loss) rows of a cross-run summary table."""
    datasets = set(table.column("dataset").to_pylist())
    labels = []
    for row in table.select(["dataset", "imbalance", "loss"]).to_pylist():
        prefix = f"{row['dataset']}\n" if len(datasets) > 1 else ""
        labels.append(f"{prefix}{row['imbalance']}\n{row['loss']}")
    return labels


def _mean_interval(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(means (n,), yerr (2, n))``: whiskers reach the 95 % interval (``_ci_low`` /
    ``_ci_high``); a group without an interval (one seed, no bootstrap) gets none."""
    mean = values(table, f"{column}_mean")
    names = table.column_names
    if f"{column}_ci_low" not in names:
        return mean, np.zeros((2, len(mean)))
    low, high = values(table, f"{column}_ci_low"), values(table, f"{column}_ci_high")
    yerr = np.vstack([mean - low, high - mean])
    return mean, np.nan_to_num(np.maximum(yerr, 0.0))


def _interval_note(table: pa.Table) -> str:
    """What the whiskers are, from the summary table's ``interval`` column."""
    if "interval" not in table.column_names:
        return "whiskers: 95 % intervals"
    kinds = sorted(set(table["interval"].to_pylist()))
    drawn = [k for k in kinds if not k.startswith("none")]
    note = "whiskers: 95 % " + "; ".join(drawn) if drawn else "no whiskers"
    if len(drawn) < len(kinds):
        note += " (none where a group has one seed and no bootstrap)"
    return note


def _bars_with_errors(ax, labels: list[str], series: list[tuple[str, str, np.ndarray, np.ndarray]]):
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (label, colour, mean, yerr) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(
            x + offset,
            np.nan_to_num(mean),
            width,
            yerr=yerr,
            color=colour,
            label=label,
            linewidth=0,
            error_kw={"linewidth": 0.6, "capsize": 1.5},
        )
    ax.set_xticks(x, labels)


@styled
def plot_cross_bac(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Table 1 as bars: test BAC of the balanced, imbalanced and re-trained models."""
    table = tables["table1"]
    labels = _run_groups(table)
    series = [
        ("balanced model", GREEN, *_mean_interval(table, "balanced")),
        ("imbalanced model", VERMILLION, *_mean_interval(table, "imbalanced")),
        ("re-trained classifier", BLUE, *_mean_interval(table, "retrained")),
    ]
    fig, axes = figure(2.9)
    ax = axes[0, 0]
    _bars_with_errors(ax, labels, series)
    ax.set_ylabel("test balanced accuracy")
    ax.set_ylim(0, 1)
    # two legend rows: three entries side by side are wider than one journal column
    legend_with_note(fig, _interval_note(table), ncol=2)
    save(fig, out_path, title)


@styled
def plot_cross_members(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 9: class top-K members needed to cover every instance, majority vs minority."""
    table = tables["fig9_members_to_cover"]
    roles = {role: table.filter(pc.equal(table["role"], role)) for role in ("majority", "minority")}
    labels = _run_groups(roles["majority"])
    fig, axes = figure(2.4)
    ax = axes[0, 0]
    _bars_with_errors(
        ax,
        labels,
        [
            ("majority class", VERMILLION, *_mean_interval(roles["majority"], "members_needed")),
            ("minority class", BLUE, *_mean_interval(roles["minority"], "members_needed")),
        ],
    )
    k = int(ints(table, "k")[0]) if "k" in table.column_names else None
    ax.set_ylabel(f"class top-{k} members needed" if k else "class top-K members needed")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    legend_with_note(fig, _interval_note(table), ncol=2)
    save(fig, out_path, title)


def plot_cross_run(name: str, table: pa.Table, out_path: str | Path, title: str = "") -> None:
    """Draw cross-run figure ``name`` (:data:`fragility.catalog.outputs.CROSS_RUN_FIGURES`) from its
    cross-run summary table."""
    if name not in CROSS_RUN_FIGURES:
        raise ConfigError(
            f"unknown cross-run figure {name!r}; valid: {', '.join(CROSS_RUN_FIGURES)}"
        )
    spec = CROSS_RUN_FIGURES[name]
    resolve(spec.plot)({spec.tables[0]: table}, Path(out_path), title)
