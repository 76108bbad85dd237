"""The paper's per-run figures, drawn from the RQ tables of :mod:`fragility.analysis.tables`.

Every figure is declared in :data:`fragility.catalog.outputs.RUN_FIGURES`: its research
question, the tables it reads, its caption and its plot function ``(tables, out_png, title)``
here (or in :mod:`fragility.plotting.dynamics`). Up to :data:`~.style.MAX_BAR_CLASSES` classes
are drawn as the paper draws them (grouped bars, one group per class); with more classes
(CIFAR-100) the ranked panels become class x rank heatmaps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.catalog import resolve
from fragility.catalog.outputs import RUN_FIGURES
from fragility.errors import ConfigError
from fragility.plotting.style import (
    BLACK,
    BLUE,
    GREY,
    MARKERS,
    MAX_BAR_CLASSES,
    MISSING,
    ORANGE,
    SERIES,
    VERMILLION,
    Classes,
    Line2D,
    MaxNLocator,
    Patch,
    class_axis,
    classes_of,
    figure,
    ints,
    no_data,
    plt,
    save,
    styled,
    values,
)

# -- ranked figures (Figs 4-8, 10a) ---------------------------------------------------------


def _pivot(table: pa.Table, value: str, column: str = "rank") -> tuple[Classes, np.ndarray]:
    """``(classes, M)`` with ``M[i, j]`` = ``value`` of class i at the j-th ``column`` value."""
    classes = classes_of(table)
    cls = ints(table, "class")
    col = ints(table, column)
    keys = np.unique(col)
    M = np.full((classes.n, len(keys)), np.nan)
    M[np.searchsorted(classes.index, cls), np.searchsorted(keys, col)] = values(table, value)
    return classes, M


def _class_size_axis(ax, classes: Classes):
    """Training images per class on a secondary axis, as the paper's red line."""
    ax2 = ax.twinx()
    ax2.spines["right"].set_visible(True)
    ax2.plot(
        np.arange(classes.n),
        classes.n_train,
        color=BLACK,
        linestyle=(0, (4, 2)),
        linewidth=1.0,
        label="training images",
    )
    ax2.set_ylim(0, max(classes.n_train.max(), 1) * 1.1)
    ax2.set_ylabel("training images per class")
    ax2.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    return ax2


def _marker(classes: Classes, marker: str) -> str | None:
    return marker if classes.n <= MAX_BAR_CLASSES else None


def _grouped_bars(
    ax, classes: Classes, M: np.ndarray, ylabel: str, ymax: float | None, xlabel: str = "class"
) -> None:
    """Paper style: one group of bars per class (largest first), classes alternating colour."""
    n = M.shape[1]
    width = 0.84 / n
    offsets = (np.arange(n) - (n - 1) / 2) * width
    ax.bar(
        (np.arange(classes.n)[:, None] + offsets[None, :]).ravel(),
        np.nan_to_num(M, nan=0.0).ravel(),
        width=width * 0.92,
        color=np.repeat([BLUE if i % 2 == 0 else ORANGE for i in range(classes.n)], n),
        linewidth=0,
    )
    class_axis(ax, classes, xlabel)
    ax.set_ylabel(ylabel)
    if ymax is not None:
        ax.set_ylim(0, ymax)
    ax.axhline(0, color=BLACK, linewidth=0.6)


def _heatmap(ax, classes: Classes, M: np.ndarray, vmin: float, vmax: float, ylabel: str = "class"):
    """Many classes: class (rows) x rank (columns) heatmap."""
    n = M.shape[1]
    im = ax.imshow(
        np.ma.masked_invalid(M),
        aspect="auto",
        cmap=plt.get_cmap("viridis").with_extremes(bad=MISSING),
        interpolation="nearest",
        vmin=vmin,
        vmax=vmax,
        extent=(0.5, n + 0.5, classes.n - 0.5, -0.5),
    )
    ax.set_xticks(np.arange(1, n + 1))
    missing = "; grey: no instance" if np.isnan(M).any() else ""
    ax.set_xlabel(f"rank within class (1 = largest){missing}")
    ax.set_ylabel(f"{ylabel} index")
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    return im


def _limits(*mats: np.ndarray) -> tuple[float, float]:
    vals = np.concatenate([m[np.isfinite(m)] for m in mats] or [np.zeros(0)])
    if not vals.size:
        return 0.0, 1.0
    lo, hi = float(min(vals.min(), 0.0)), float(vals.max())
    return lo, hi if hi > lo else lo + 1.0


def _ranked_plot(
    table_name: str,
    value: str,
    ylabel: str,
    scale: float = 1.0,
    ymax: float | None = None,
    class_label: str = "class",
):
    """A figure of the per-class top-n values in ``table_name`` (Figs 4-8, 10a)."""

    @styled
    def plot(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
        table = tables[table_name]
        fig, axes = figure(2.6)
        ax = axes[0, 0]
        if table.num_rows == 0:
            no_data(ax, "no data")
        else:
            classes, M = _pivot(table, value)
            M = M * scale
            if classes.n <= MAX_BAR_CLASSES:
                _grouped_bars(ax, classes, M, ylabel, ymax, class_label)
            else:
                im = _heatmap(ax, classes, M, *_limits(M), class_label)
                fig.colorbar(im, ax=ax, label=ylabel, pad=0.02)
        save(fig, out_path, title)

    plot.__name__ = f"plot_{table_name}"
    return plot


# -- RQ2 ------------------------------------------------------------------------------------


@styled
def plot_class_accuracy(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 2: per-class train and test accuracy with the class-size curve."""
    table = tables["per_class_accuracy"]
    classes = classes_of(table)
    x = np.arange(classes.n)
    fig, axes = figure(2.6)
    ax = axes[0, 0]
    lw = 1.2 if classes.n <= MAX_BAR_CLASSES else 0.7
    for column, colour, marker, label in (
        ("train_acc", BLUE, "o", "train"),
        ("test_acc", VERMILLION, "s", "test"),
    ):
        y = 100 * values(table, column)
        ax.plot(x, y, color=colour, marker=_marker(classes, marker), linewidth=lw, label=label)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    class_axis(ax, classes)
    ax2 = _class_size_axis(ax, classes)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    save(fig, out_path, title)


@styled
def plot_accuracy_over_epochs(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Majority and minority class accuracy (and the mean over classes) per epoch."""
    table = tables["accuracy_over_epochs"]
    fig, axes = figure(2.6)
    ax = axes[0, 0]
    if table.num_rows == 0:
        no_data(ax, "no training history")
        save(fig, out_path, title)
        return
    classes = classes_of(table)
    epoch, cls, acc = ints(table, "epoch"), ints(table, "class"), values(table, "accuracy")
    subset = np.array(table.column("subset").to_pylist())
    styles = {"train": "-", "test": (0, (4, 1.5)), "val": (0, (1, 1))}
    subsets = [s for s in styles if np.any(subset == s)]
    series = []
    for role, colour in (("majority", BLUE), ("minority", VERMILLION)):
        i = classes.role_of(role)
        if i is not None:
            label = f"{role}: {classes.names[i]} ({int(classes.n_train[i])})"
            series.append((cls == classes.index[i], colour, label, 1.2))
    series.append((np.ones_like(cls, dtype=bool), BLACK, "mean over classes", 0.8))
    for mask, colour, _, lw in series:
        for s in subsets:
            sel = mask & (subset == s)
            ep = np.unique(epoch[sel])
            y = [np.nanmean(acc[sel & (epoch == e)]) for e in ep]
            ax.plot(ep, 100 * np.asarray(y), color=colour, linestyle=styles[s], linewidth=lw)
    kept = np.array(table.column("kept").to_pylist(), dtype=bool)
    if kept.any():
        ax.axvline(epoch[kept][0], color=GREY, linewidth=0.8, linestyle=":", zorder=0)
        ax.annotate(
            "kept",
            (epoch[kept][0], 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            color="#555555",
        )
    ax.set_ylim(0, 105)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    handles = [Line2D([], [], color=c, linewidth=lw, label=lab) for _, c, lab, lw in series]
    handles += [Line2D([], [], color=GREY, linestyle=styles[s], label=s) for s in subsets]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, columnspacing=1.0)
    save(fig, out_path, title)


# -- RQ3 ------------------------------------------------------------------------------------


@styled
def plot_topk_coverage(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 3: class top-K coverage ratio per predicted class, one line per K."""
    table = tables["topk_coverage"]
    classes, M = _pivot(table, "coverage_ratio", column="k")
    ks = np.unique(ints(table, "k"))
    fig, axes = figure(2.6)
    ax = axes[0, 0]
    x = np.arange(classes.n)
    for j, k in enumerate(ks):
        ax.plot(
            x,
            100 * M[:, j],
            color=SERIES[j % len(SERIES)],
            marker=_marker(classes, MARKERS[j % len(MARKERS)]),
            label=f"K = {k}",
        )
    ax.set_ylim(0, 105)
    ax.set_ylabel("instances covered (%)")
    class_axis(ax, classes, "predicted class")
    legend_title = None
    if "smallest_k" in tables and tables["smallest_k"].num_rows:
        row = tables["smallest_k"].to_pylist()[0]
        k = row["smallest_k_90"]
        if k is None:
            legend_title = "bias-free logits:\nno K covers 90 % of all instances"
        else:  # two lines: one is wider than the figure
            legend_title = (
                f"bias-free logits: K = {k} of {row['n_features']} covers\n"
                f"{100 * row['coverage_k_90']:.1f} % (\u2265 90 %) of all instances"
            )
    fig.legend(
        loc="outside lower center", ncol=min(len(ks), 4), title=legend_title, columnspacing=1.0
    )
    save(fig, out_path, title)


# -- RQ6 ------------------------------------------------------------------------------------


@styled
def plot_members_to_cover(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 9 (one run): class top-K members needed to cover every instance of the class."""
    table = tables["members_to_cover"]
    classes = classes_of(table)
    needed = values(table, "members_needed")
    colours = [{"majority": VERMILLION, "minority": BLUE}.get(role, GREY) for role in classes.roles]
    fig, axes = figure(2.6)
    ax = axes[0, 0]
    ax.bar(np.arange(classes.n), np.nan_to_num(needed), color=colours, width=0.75, linewidth=0)
    k = int(ints(table, "k")[0])
    ax.set_ylabel(f"class top-{k} members needed")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    class_axis(ax, classes, "predicted class")
    ax2 = _class_size_axis(ax, classes)
    handles = [Patch(color=VERMILLION, label="majority"), Patch(color=BLUE, label="minority")]
    if classes.n > 2:
        handles.append(Patch(color=GREY, label="other classes"))
    handles += ax2.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, columnspacing=1.0)
    save(fig, out_path, title)


# -- RQ7 ------------------------------------------------------------------------------------

_GROUPS = (
    ("train", "(a) train"),
    ("test_tp", "(b) test true positives"),
    ("test_fp", "(c) test false positives"),
)


@styled
def plot_fe_means(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 10: mean fe at each class's ten largest train features, train / TP / FP."""
    table = tables["fe_means_top10"]
    group = np.array(table.column("group").to_pylist())
    panels = []
    for key, label in _GROUPS:
        sub = table.filter(pa.array(group == key))
        classes, M = _pivot(sub, "mean_fe")
        n_group = ints(sub, "n_group")
        panels.append((label, classes, M, int(n_group[ints(sub, "rank") == 1].sum())))
    lo, hi = _limits(*(p[2] for p in panels))
    many = panels[0][1].n > MAX_BAR_CLASSES
    fig, axes = figure(5.4, nrows=3, sharex=True, sharey=True)
    im = None
    for ax, (label, classes, M, n) in zip(axes[:, 0], panels):
        ax.set_title(f"{label}, {n} instances", loc="left")
        if many:
            im = _heatmap(ax, classes, M, lo, hi)
        else:
            _grouped_bars(ax, classes, M, "mean fe", hi * 1.05)
        if ax is not axes[-1, 0]:
            ax.set_xlabel("")
    if im is not None:
        fig.colorbar(im, ax=axes[:, 0], label="mean fe (activation)", shrink=0.6)
    save(fig, out_path, title)


# -- the ranked figures: one function each, named by their catalog entries ------------------

plot_class_mean_ce = _ranked_plot("class_mean_ce_top10", "mean_ce", "class-mean ce (logit units)")
plot_topk_logit_share = _ranked_plot(
    "topk_logit_share", "share", "share of class logit (%)", scale=100
)
plot_top_weights = _ranked_plot("top_weights", "abs_weight", "|W| (classifier weight)")
plot_member_frequency = _ranked_plot(
    "class_topk_members",
    "share",
    "class instances holding it (%)",
    100,
    ymax=105,
    class_label="predicted class",
)
plot_class_mean_fe = _ranked_plot("class_mean_fe_top10", "mean_fe", "class-mean fe (activation)")


def plot_figure(
    name: str, tables: dict[str, pa.Table], out_path: str | Path, title: str = ""
) -> None:
    """Draw per-run figure ``name`` from ``tables`` (at least the ``tables`` that
    :data:`fragility.catalog.outputs.RUN_FIGURES` declares for it) to a PNG."""
    if name not in RUN_FIGURES:
        raise ConfigError(f"unknown figure {name!r}; valid figures: {', '.join(RUN_FIGURES)}")
    spec = RUN_FIGURES[name]
    missing = [t for t in spec.tables if t not in tables]
    if missing:
        raise ConfigError(
            f"figure {name!r} needs the {spec.rq} tables {list(spec.tables)}; missing {missing}"
        )
    resolve(spec.plot)(tables, Path(out_path), title)
