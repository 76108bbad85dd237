"""Fragility-curve figures (SPEC §4, "Fragility curves"): a claim statistic against the
imbalance ratio R on a log axis, one line per family (exp, step) with its 95 % interval band,
and the balanced model's level as a dashed reference line.

Every figure is a :class:`CurveFigure` in :data:`CURVE_FIGURES`: the statistics it draws (one
panel each, from :data:`fragility.analysis.curves.STATISTICS`) and a caption naming the claim
it tests. The house style (one journal column, Okabe-Ito colours) is
:mod:`fragility.plotting.style`'s.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.analysis import curves
from fragility.errors import ConfigError
from fragility.io import read_table
from fragility.plotting.style import BLACK, BLUE, GREY, STYLE, VERMILLION, Patch, figure, plt, save

FAMILY_STYLE = {"exp": (BLUE, "o", "exp"), "step": (VERMILLION, "s", "step")}
PANEL_HEIGHT_IN = 1.55
LEGEND_HEIGHT_IN = 0.6
TITLE_CHARS = 20  # a panel title wider than half a column wraps


@dataclass(frozen=True)
class CurveFigure:
    """One curve figure: a panel per ``(statistic, panel title)`` in ``panels`` (or per
    statistic of source ``every_stat_of``), sharing the y axis ``ylabel``; ``caption`` says
    what it shows and which claim it tests."""

    panels: tuple[tuple[str, str], ...]
    ylabel: str
    caption: str
    reference: str | None = None  # the statistic whose R = 1 level every panel shows
    # a source whose every statistic is a panel, compared with 0 (``zero``, its legend label)
    # rather than with the balanced model: the remedies' gains, the claims' differences
    every_stat_of: str | None = None
    zero: str = ""
    share_y: bool = True  # False when panels measure different things

    def sources(self) -> tuple[str, ...]:
        """The tables the figure reads (sources of :func:`curves.curve_input`)."""
        if self.every_stat_of:
            return (self.every_stat_of,)
        return tuple(dict.fromkeys(curves.source_of(stat) for stat, _ in self.panels))


_BAND = (
    "Lines are means over seeds, bands their 95 % t-intervals; the dashed line and grey band "
    "are the balanced model (R = 1; cross-entropy's when the loss has no balanced run)."
)
_ROLES = "minority class", "majority class"
_GROUPS = "minority group", "majority group"
_OTHERS = "other classes (mean)", "majority class"

CURVE_FIGURES: dict[str, CurveFigure] = {
    "rq1_bac": CurveFigure(
        (("bac", "imbalanced model"), ("bac_retrained", "re-trained classifier")),
        "test balanced accuracy",
        "RQ1 (the paper's Table 1) against the imbalance ratio: test BAC of the imbalanced "
        "model and of its feature extractor with a classifier re-trained on balanced data. "
        "Tests 'imbalanced < re-trained < balanced': from which R is the extractor itself "
        f"damaged? {_BAND}",
        reference="bac",
    ),
    "rq2_gaps": CurveFigure(
        tuple(zip(("minority_gap", "majority_gap"), _ROLES)),
        "train − test accuracy",
        "RQ2 (Table 2) against the imbalance ratio: train minus test accuracy of the minority "
        "and of the majority class. Tests 'minority test accuracy far below its train "
        f"accuracy': does the minority's gap grow smoothly with R or appear at a threshold? "
        f"{_BAND}",
    ),
    "rq3_smallest_k": CurveFigure(
        (("smallest_k", "all training predictions"),),
        "smallest K covering 90 %",
        "RQ3 against the imbalance ratio: the smallest K whose bias-free top-K ce cover 90 % "
        f"of the training predictions. Tests 'a few features decide' (K ≪ H: K ≤ H/5). {_BAND}",
    ),
    "rq3_coverage": CurveFigure(
        tuple(zip(("coverage_minority", "coverage_majority"), _GROUPS)),
        "coverage at smallest K",
        "RQ3 against the imbalance ratio: mean class top-K coverage ratio of the minority and "
        "of the majority group (the smallest and the largest 40 % of the classes) at the "
        "smallest configured K, bias-free logits. Tests 'minority classes are covered with "
        f"smaller K'. {_BAND}",
    ),
    "rq4_largest_ce": CurveFigure(
        tuple(zip(("others_largest_mean_ce", "majority_largest_mean_ce"), _OTHERS)),
        "largest class-mean ce",
        "RQ4 (Table 3) against the imbalance ratio: the majority class's largest class-mean "
        "ce and the mean of the other classes' largest. Tests 'the majority's is at least 2x "
        f"smaller'. {_BAND}",
    ),
    "rq4_logit_share": CurveFigure(
        tuple(zip(("others_largest_share", "majority_largest_share"), _OTHERS)),
        "largest logit share",
        "RQ4 (Table 4) against the imbalance ratio: the largest share of the logit from one "
        "ce, the majority class's and the other classes' mean. Tests 'the majority's is 2-4 "
        f"times smaller'. {_BAND}",
    ),
    "rq5_weight_sums": CurveFigure(
        tuple(zip(("minority_weight_sum", "majority_weight_sum"), _ROLES)),
        "sum of top-10 |W|",
        "RQ5 (Fig 7) against the imbalance ratio: the sum of the ten largest absolute "
        "classifier weights of the minority and of the majority class. Tests 'the majority's "
        f"sum is larger'. {_BAND}",
    ),
    "rq6_top_share": CurveFigure(
        tuple(zip(("top_share_minority", "top_share_majority"), _GROUPS)),
        "share of instances",
        "RQ6 (Fig 8) against the imbalance ratio: the share of a class's training instances "
        "whose top-K features hold the class's most frequent one, minority and majority group "
        f"means. Tests 'minority classes have a few features present in nearly all their "
        f"instances'. {_BAND}",
    ),
    "rq7_fb": CurveFigure(
        (("fb_tp", "FB(TP), size-matched"), ("fb_fp", "FB(FP), false positives")),
        "Frobenius distance",
        "RQ7 against the imbalance ratio: Frobenius distance between the training FE means "
        "and the test false positives' means (FB(FP)) at each class's ten top features, and "
        "the same for true positives drawn per class to the false positives' number (FB(TP), "
        f"mean over draws). Tests 'FB(TP) < FB(FP)' beyond sample size. {_BAND}",
    ),
    "remedy_gains": CurveFigure(
        (),
        "test BAC gain",
        "Each remedy's test-BAC gain over the untreated model of the same run and seed "
        "against the imbalance ratio, feature-space and loss-level alike: does a remedy help "
        "more the more imbalanced the data? Lines are means over seeds, bands their 95 % "
        "t-intervals; the dashed line is no gain.",
        every_stat_of=curves.REMEDY_SOURCE,
        zero="no gain",
    ),
    "claims": CurveFigure(
        (),
        "signed difference",
        "Each claim of the paper against the imbalance ratio: its signed difference (positive "
        "on the claimed side) with the 95 % interval its verdict rests on (a t-interval over "
        "seeds from three seeds on, else the stratified bootstrap of one run). The claim holds "
        "at an R where the whole band lies above the dashed zero line: the figure form of "
        "claims_smallest_ratio.",
        every_stat_of=curves.CLAIMS_SOURCE,
        zero="claim boundary",
        share_y=False,
    ),
}


def _values(rows: Sequence[Mapping], column: str) -> np.ndarray:
    return np.array([np.nan if r.get(column) is None else r[column] for r in rows], float)


def _panel(
    ax, rows: list[dict], stat: str, reference: dict | None, ref_stat: str, loss: str, zero: str
) -> None:
    """One statistic: a line and interval band per family; the balanced level (``ref_stat``
    of ``reference``, a curve-table row) dashed with its band, or (``reference`` None) a
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
    if reference is None:
        ax.axhline(0.0, label=zero, **dashed)
    elif reference.get(f"{ref_stat}_mean") is not None:
        own = reference["loss"] == loss
        label = "balanced" if own else f"balanced ({reference['loss']})"
        ax.axhline(reference[f"{ref_stat}_mean"], label=label, **dashed)
        low, high = reference.get(f"{ref_stat}_ci_low"), reference.get(f"{ref_stat}_ci_high")
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
    tables of its sources (``tables``: source -> :func:`curves.source_curve_table`)."""
    if name not in CURVE_FIGURES:
        raise ConfigError(f"unknown curve figure {name!r}; valid: {', '.join(CURVE_FIGURES)}")
    spec = CURVE_FIGURES[name]
    panels = _panels(spec, tables)
    if not panels:
        raise ConfigError(f"curve figure {name!r} has nothing to draw: no statistic in its table")
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
                reference = (
                    None if spec.every_stat_of else curves.reference_rows(table, dataset, loss)
                )
                _panel(ax, rows, stat, reference, spec.reference or stat, loss, spec.zero)
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


def plot_curve_files(
    name: str,
    by_seed_paths: Mapping[str, str | Path],
    dataset: str,
    loss: str,
    out_path: str | Path,
) -> None:
    """File-in, file-out: draw curve figure ``name`` from its input tables (source -> path
    of :func:`curves.curve_input`)."""
    tables = {
        source: curves.curve_of(source, read_table(path)) for source, path in by_seed_paths.items()
    }
    plot_curve_figure(name, tables, dataset, loss, out_path)
