"""Fragility-curve figures: a claim statistic against the imbalance ratio R on a log axis,
one line per family (exp, step) with its 95 % interval band, and the balanced model's level
as a dashed line.

Every figure is a :class:`~fragility.catalog.outputs.CurveFigure` in
:data:`fragility.catalog.outputs.CURVE_FIGURES`: the statistics it draws (one panel each,
from :data:`fragility.analysis.curves.STATISTICS`), a caption naming the claim it tests, and
its plot function (:func:`draw_curves`). The house style (one journal column, Okabe-Ito
colours) is :mod:`fragility.plotting.style`'s.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.analysis import curves
from fragility.catalog import resolve
from fragility.catalog.outputs import CURVE_FIGURES, CurveFigure
from fragility.errors import ConfigError
from fragility.plotting.style import BLACK, BLUE, GREY, STYLE, VERMILLION, Patch, figure, plt, save

FAMILY_STYLE = {"exp": (BLUE, "o", "exp"), "step": (VERMILLION, "s", "step")}
PANEL_HEIGHT_IN = 1.55
LEGEND_HEIGHT_IN = 0.6
TITLE_CHARS = 20  # a panel title wider than half a column wraps


def _values(rows: Sequence[Mapping], column: str) -> np.ndarray:
    return np.array([np.nan if r.get(column) is None else r[column] for r in rows], float)


def _panel(
    ax, rows: list[dict], stat: str, balanced: dict | None, level_stat: str, loss: str, zero: str
) -> None:
    """One statistic: a line and interval band per family; the balanced level (``level_stat``
    of ``balanced``, the curve-table row of R = 1) dashed with its band, or (``balanced`` None) a
    dashed line at 0 labelled ``zero``."""
    ratios: set[float] = set()
    for family, (colour, marker, name) in FAMILY_STYLE.items():
        line = sorted((r for r in rows if r["family"] == family), key=lambda r: r["ratio"])
        if not line:
            continue
        x = np.array([r["ratio"] for r in line])
        ratios.update(x.tolist())
        mean = _values(line, f"{stat}_mean")
        ax.plot(x, mean, color=colour, marker=marker, label=name)
        low, high = _values(line, f"{stat}_ci_low"), _values(line, f"{stat}_ci_high")
        if np.isfinite(low).any():
            ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
            # a band needs two neighbouring points: a point whose neighbours were not
            # measured shows its interval as a whisker
            measured = np.pad(np.isfinite(mean), 1, constant_values=False)
            alone = measured[1:-1] & ~measured[:-2] & ~measured[2:] & np.isfinite(low)
            if alone.any():
                ax.errorbar(
                    x[alone], mean[alone], yerr=[mean[alone] - low[alone], high[alone] - mean[alone]],
                    fmt="none", ecolor=colour, elinewidth=0.8, capsize=2,
                )  # fmt: skip
    dashed = {"color": BLACK, "linestyle": (0, (4, 2)), "linewidth": 0.9}
    if balanced is None:
        ax.axhline(0.0, label=zero, **dashed)
    elif balanced.get(f"{level_stat}_mean") is not None:
        own = balanced["loss"] == loss
        label = "balanced" if own else f"balanced ({balanced['loss']})"
        ax.axhline(balanced[f"{level_stat}_mean"], label=label, **dashed)
        low, high = balanced.get(f"{level_stat}_ci_low"), balanced.get(f"{level_stat}_ci_high")
        if low is not None and high is not None:
            ax.axhspan(low, high, color=GREY, alpha=0.25, linewidth=0)
    ax.set_xscale("log")
    if ratios:
        ticks = sorted(ratios)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(min(ticks) / 1.3, max(ticks) * 1.3)


def _panels(spec: CurveFigure, tables: Mapping[str, pa.Table]) -> list[tuple[str, str]]:
    if not spec.every_stat_of:
        return list(spec.panels)
    stats = curves.curve_stats(tables[spec.every_stat_of])
    return [(stat, stat.removeprefix("gain_").replace("_", " ")) for stat in stats]


def plot_curve_figure(
    name: str, tables: Mapping[str, pa.Table], dataset: str, loss: str, out_path: str | Path
) -> None:
    """Draw curve figure ``name`` for the curves of ``dataset`` and ``loss`` from the curve
    tables of its sources (``tables``: source -> :func:`curves.source_curve_table`), with the
    plot function its catalog entry names."""
    if name not in CURVE_FIGURES:
        raise ConfigError(f"unknown curve figure {name!r}; valid: {', '.join(CURVE_FIGURES)}")
    spec = CURVE_FIGURES[name]
    if not _panels(spec, tables):
        raise ConfigError(f"curve figure {name!r} has nothing to draw: no statistic in its table")
    resolve(spec.plot)(spec, tables, dataset, loss, out_path)


def draw_curves(
    spec: CurveFigure,
    tables: Mapping[str, pa.Table],
    dataset: str,
    loss: str,
    out_path: str | Path,
) -> None:
    """Draw the curve figure ``spec`` (a panel per statistic) to ``out_path``."""
    panels = _panels(spec, tables)
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    with plt.rc_context(STYLE):
        try:
            height = PANEL_HEIGHT_IN * nrows + LEGEND_HEIGHT_IN
            fig, axes = figure(height, nrows, ncols, sharey=spec.share_y)
            for ax in axes.ravel()[len(panels) :]:
                ax.set_axis_off()
            for i, (ax, (stat, title)) in enumerate(zip(axes.ravel(), panels)):
                table = tables[spec.every_stat_of or curves.source_of(stat)]
                rows = [
                    r for r in table.to_pylist() if (r["dataset"], r["loss"]) == (dataset, loss)
                ]
                balanced = None if spec.every_stat_of else curves.balanced_row(table, dataset, loss)
                _panel(ax, rows, stat, balanced, spec.balanced_stat or stat, loss, spec.zero)
                ax.set_title("\n".join(textwrap.wrap(title, TITLE_CHARS)))
                if i % ncols == 0:
                    ax.set_ylabel(spec.ylabel)
                if i + ncols >= len(panels):  # the lowest panel of its column
                    ax.set_xlabel("imbalance ratio R")
            handles, labels = axes.ravel()[0].get_legend_handles_labels()
            handles.append(Patch(color=GREY, alpha=0.35, linewidth=0))
            labels.append("95 % interval")
            ncol = len(labels) if len(labels) <= 3 else math.ceil(len(labels) / 2)  # fits 3.5 in
            fig.legend(handles, labels, loc="outside lower center", ncol=ncol)
            save(fig, Path(out_path), f"{dataset}, {loss}")
        finally:
            plt.close("all")
