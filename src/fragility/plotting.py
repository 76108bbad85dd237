"""The paper's per-run figures, drawn from the RQ tables of :mod:`fragility.analysis.tables`.

Every figure is a :class:`FigureSpec` in :data:`FIGURES`: the research question, the tables it
reads, a plot function ``(tables, out_png, title)`` and a caption in plain words. Figures are
sized for one journal column (3.5 in wide, 8 pt text), use the Okabe-Ito colour-blind-safe
palette (viridis for heatmaps) and are written atomically as PNG. Up to
:data:`MAX_BAR_CLASSES` classes are drawn as the paper draws them (grouped bars, one group per
class); with more classes (CIFAR-100) the ranked panels become class x rank heatmaps.
"""

from __future__ import annotations

import functools
import importlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fragility.errors import ConfigError
from fragility.io import atomic_path


class _Lazy:
    """A matplotlib module or class imported on first use: the workflow reads FIGURES (names,
    captions) at start-up, and ``snakemake -n`` should not pay for matplotlib (~0.7 s)."""

    def __init__(self, module: str, attr: str | None = None):
        self._module, self._attr, self._target = module, attr, None

    def _resolve(self):
        if self._target is None:
            importlib.import_module("matplotlib").use("Agg")  # files only, never a window
            target = importlib.import_module(self._module)
            self._target = getattr(target, self._attr) if self._attr else target
        return self._target

    def __getattr__(self, name):
        return getattr(self._resolve(), name)

    def __call__(self, *args, **kwargs):
        return self._resolve()(*args, **kwargs)


plt = _Lazy("matplotlib.pyplot")
Line2D = _Lazy("matplotlib.lines", "Line2D")
Patch = _Lazy("matplotlib.patches", "Patch")
MaxNLocator = _Lazy("matplotlib.ticker", "MaxNLocator")
FuncFormatter = _Lazy("matplotlib.ticker", "FuncFormatter")
FixedLocator = _Lazy("matplotlib.ticker", "FixedLocator")


WIDTH_IN = 3.5  # one journal column
DPI = 200
MAX_BAR_CLASSES = 20  # above this, ranked figures are heatmaps
MAX_NAMED_CLASSES = 12  # above this, the class axis shows indices, not names

# Okabe & Ito (2008), "Color Universal Design"
BLUE = "#0072B2"
ORANGE = "#E69F00"
SKY = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
BLACK = "#000000"
GREY = "#999999"
MISSING = "#DDDDDD"  # heatmap cells without a value
SERIES = (BLUE, GREEN, VERMILLION, BLACK, ORANGE, PURPLE, SKY, YELLOW)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.titlesize": 8,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.dpi": 100,
}


@dataclass(frozen=True)
class FigureSpec:
    """One figure: ``plot(tables, out_png, title)`` reads ``tables`` (names from
    ``TABLES[rq]``); ``caption`` says what it shows and which claim of the paper it tests."""

    rq: str
    tables: tuple[str, ...]
    plot: Callable[[dict[str, pa.Table], Path, str], None]
    caption: str


# -- helpers --------------------------------------------------------------------------------


def _styled(fn):
    """Run a plot function under the house style (and never leak an open figure)."""

    @functools.wraps(fn)
    def wrapper(tables, out_path, title=""):
        try:
            with plt.rc_context(STYLE):
                fn(tables, Path(out_path), title)
        finally:
            plt.close("all")

    return wrapper


def _figure(height: float, nrows: int = 1, ncols: int = 1, **kwargs):
    return plt.subplots(
        nrows, ncols, figsize=(WIDTH_IN, height), layout="constrained", squeeze=False, **kwargs
    )


def _save(fig, out_path: Path, title: str) -> None:
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 70)))
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def _values(table: pa.Table, column: str) -> np.ndarray:
    """A column as float64, null -> NaN."""
    return np.array(
        [np.nan if v is None else v for v in table.column(column).to_pylist()], dtype=np.float64
    )


def _ints(table: pa.Table, column: str) -> np.ndarray:
    return np.array([-1 if v is None else v for v in table.column(column).to_pylist()], np.int64)


@dataclass
class _Classes:
    index: np.ndarray  # (C,) class indices, sorted
    names: list[str]
    roles: list[str]
    n_train: np.ndarray

    @property
    def n(self) -> int:
        return len(self.index)

    def role_of(self, role: str) -> int | None:
        hits = [i for i, r in enumerate(self.roles) if r == role]
        return hits[0] if hits else None


def _classes(table: pa.Table) -> _Classes:
    """The classes of a per-class or long table (first row of each class)."""
    rows: dict[int, dict] = {}
    for r in table.select(["class", "class_name", "role", "n_train"]).to_pylist():
        rows.setdefault(r["class"], r)
    order = sorted(rows)
    return _Classes(
        np.array(order, dtype=np.int64),
        [str(rows[c]["class_name"]) for c in order],
        [str(rows[c]["role"]) for c in order],
        np.array([rows[c]["n_train"] for c in order], dtype=np.float64),
    )


def _pivot(table: pa.Table, value: str, column: str = "rank") -> tuple[_Classes, np.ndarray]:
    """``(classes, M)`` with ``M[i, j]`` = ``value`` of class i at the j-th ``column`` value."""
    classes = _classes(table)
    cls = _ints(table, "class")
    col = _ints(table, column)
    keys = np.unique(col)
    M = np.full((classes.n, len(keys)), np.nan)
    M[np.searchsorted(classes.index, cls), np.searchsorted(keys, col)] = _values(table, value)
    return classes, M


def _class_axis(ax, classes: _Classes, label: str = "class") -> None:
    """Class ticks: names for a few classes, sparse indices for many."""
    if classes.n <= MAX_NAMED_CLASSES:
        ax.set_xticks(np.arange(classes.n))
        names = classes.names
        long = max(len(n) for n in names) > 3
        ax.set_xticklabels(names, rotation=45 if long else 0, ha="right" if long else "center")
        if long:
            ax.tick_params(axis="x", pad=1)
        ax.set_xlabel(label)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.set_xlabel(f"{label} index")
    ax.set_xlim(-0.6, classes.n - 0.4)


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _class_size_axis(ax, classes: _Classes):
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


def _marker(classes: _Classes, marker: str) -> str | None:
    return marker if classes.n <= MAX_BAR_CLASSES else None


def _grouped_bars(
    ax, classes: _Classes, M: np.ndarray, ylabel: str, ymax: float | None, xlabel: str = "class"
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
    _class_axis(ax, classes, xlabel)
    ax.set_ylabel(ylabel)
    if ymax is not None:
        ax.set_ylim(0, ymax)
    ax.axhline(0, color=BLACK, linewidth=0.6)


def _heatmap(ax, classes: _Classes, M: np.ndarray, vmin: float, vmax: float, ylabel: str = "class"):
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

    @_styled
    def plot(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
        table = tables[table_name]
        fig, axes = _figure(2.6)
        ax = axes[0, 0]
        if table.num_rows == 0:
            _no_data(ax, "no data")
        else:
            classes, M = _pivot(table, value)
            M = M * scale
            if classes.n <= MAX_BAR_CLASSES:
                _grouped_bars(ax, classes, M, ylabel, ymax, class_label)
            else:
                im = _heatmap(ax, classes, M, *_limits(M), class_label)
                fig.colorbar(im, ax=ax, label=ylabel, pad=0.02)
        _save(fig, out_path, title)

    plot.__name__ = f"plot_{table_name}"
    return plot


# -- RQ2 ------------------------------------------------------------------------------------


@_styled
def plot_class_accuracy(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 2: per-class train and test accuracy with the class-size curve."""
    table = tables["per_class_accuracy"]
    classes = _classes(table)
    x = np.arange(classes.n)
    fig, axes = _figure(2.6)
    ax = axes[0, 0]
    lw = 1.2 if classes.n <= MAX_BAR_CLASSES else 0.7
    for column, colour, marker, label in (
        ("train_acc", BLUE, "o", "train"),
        ("test_acc", VERMILLION, "s", "test"),
    ):
        y = 100 * _values(table, column)
        ax.plot(x, y, color=colour, marker=_marker(classes, marker), linewidth=lw, label=label)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    _class_axis(ax, classes)
    ax2 = _class_size_axis(ax, classes)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    _save(fig, out_path, title)


@_styled
def plot_accuracy_over_epochs(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Majority and minority class accuracy (and the mean over classes) per epoch."""
    table = tables["accuracy_over_epochs"]
    fig, axes = _figure(2.6)
    ax = axes[0, 0]
    if table.num_rows == 0:
        _no_data(ax, "no training history")
        _save(fig, out_path, title)
        return
    classes = _classes(table)
    epoch, cls, acc = _ints(table, "epoch"), _ints(table, "class"), _values(table, "accuracy")
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
    _save(fig, out_path, title)


# -- RQ3 ------------------------------------------------------------------------------------


@_styled
def plot_topk_coverage(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 3: class top-K coverage ratio per predicted class, one line per K."""
    table = tables["topk_coverage"]
    classes, M = _pivot(table, "coverage_ratio", column="k")
    ks = np.unique(_ints(table, "k"))
    fig, axes = _figure(2.6)
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
    _class_axis(ax, classes, "predicted class")
    legend_title = None
    if "smallest_k" in tables and tables["smallest_k"].num_rows:
        row = tables["smallest_k"].to_pylist()[0]
        pct = round(100 * row["threshold"])
        if row["smallest_k"] is None:
            legend_title = f"no K covers {pct} % of all instances"
        else:
            legend_title = (
                f"K = {row['smallest_k']} of {row['n_features']} covers "
                f"{100 * row['coverage_at_smallest_k']:.1f} % (\u2265 {pct} %) of all instances"
            )
    fig.legend(
        loc="outside lower center", ncol=min(len(ks), 4), title=legend_title, columnspacing=1.0
    )
    _save(fig, out_path, title)


# -- RQ6 ------------------------------------------------------------------------------------


@_styled
def plot_members_to_cover(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 9 (one run): class top-K members needed to cover every instance of the class."""
    table = tables["members_to_cover"]
    classes = _classes(table)
    needed = _values(table, "members_needed")
    colours = [{"majority": VERMILLION, "minority": BLUE}.get(role, GREY) for role in classes.roles]
    fig, axes = _figure(2.6)
    ax = axes[0, 0]
    ax.bar(np.arange(classes.n), np.nan_to_num(needed), color=colours, width=0.75, linewidth=0)
    k = int(_ints(table, "k")[0])
    ax.set_ylabel(f"class top-{k} members needed")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _class_axis(ax, classes, "predicted class")
    ax2 = _class_size_axis(ax, classes)
    handles = [Patch(color=VERMILLION, label="majority"), Patch(color=BLUE, label="minority")]
    if classes.n > 2:
        handles.append(Patch(color=GREY, label="other classes"))
    handles += ax2.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, columnspacing=1.0)
    _save(fig, out_path, title)


# -- RQ7 ------------------------------------------------------------------------------------

_GROUPS = (
    ("train", "(a) train"),
    ("test_tp", "(b) test true positives"),
    ("test_fp", "(c) test false positives"),
)


@_styled
def plot_fe_means(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 10: mean fe at each class's ten largest train features, train / TP / FP."""
    table = tables["fe_means_top10"]
    group = np.array(table.column("group").to_pylist())
    panels = []
    for key, label in _GROUPS:
        sub = table.filter(pa.array(group == key))
        classes, M = _pivot(sub, "mean_fe")
        n_group = _ints(sub, "n_group")
        panels.append((label, classes, M, int(n_group[_ints(sub, "rank") == 1].sum())))
    lo, hi = _limits(*(p[2] for p in panels))
    many = panels[0][1].n > MAX_BAR_CLASSES
    fig, axes = _figure(5.4, nrows=3, sharex=True, sharey=True)
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
    _save(fig, out_path, title)


# -- registry -------------------------------------------------------------------------------


def _dynamics(name: str) -> Callable[[dict[str, pa.Table], Path, str], None]:
    """A plot function of :mod:`fragility.plotting_dynamics` (which imports this module),
    resolved on first use."""
    return lambda tables, out, title="": getattr(
        importlib.import_module("fragility.plotting_dynamics"), name
    )(tables, out, title)


FIGURES: dict[str, FigureSpec] = {
    "fig2_class_accuracy": FigureSpec(
        "rq2",
        ("per_class_accuracy",),
        plot_class_accuracy,
        "Training and test accuracy of every class of the kept checkpoint, with the number of "
        "training images per class (dashed, right axis). Tests the paper's Fig 2 claim that an "
        "imbalanced model nearly memorises every training class but generalises much worse to "
        "the test images of minority classes.",
    ),
    "accuracy_over_epochs": FigureSpec(
        "rq2",
        ("accuracy_over_epochs",),
        plot_accuracy_over_epochs,
        "Per-class accuracy of the majority and the minority class, and the mean over all "
        "classes, at every training epoch (train = running accuracy on augmented batches). "
        "Shows when the minority class's train-test gap of Fig 2 opens and which epoch was kept.",
    ),
    "training_dynamics": FigureSpec(
        "rq2",
        ("training_dynamics",),
        _dynamics("plot_training_dynamics"),
        "The lecture's training progress: train accuracy, test accuracy and the mean norm of "
        "the loss gradient with respect to FE (log scale) of the majority and the minority "
        "class, and the mean over classes, per epoch. Look for the majority fitted first and "
        "the minority under-fitted early, then a peak of the minority's gradient as it is "
        "pushed across the boundary, followed by train accuracy far above test accuracy "
        "(over-fitting); a balanced training progress (MFW) keeps the curves together.",
    ),
    "fig3_topk_coverage": FigureSpec(
        "rq3",
        ("topk_coverage", "smallest_k"),
        plot_topk_coverage,
        "Share of each predicted class's training instances whose K largest classification "
        "embeddings plus the bias already beat the runner-up logit, for several K. Tests the "
        "paper's Fig 3 claims that a few features (K = 7 of 64) decide over 94 % of predictions "
        "and that minority classes need fewer.",
    ),
    "fig4_class_mean_ce": FigureSpec(
        "rq4",
        ("class_mean_ce_top10",),
        _ranked_plot("class_mean_ce_top10", "mean_ce", "class-mean ce (logit units)"),
        "The ten largest class-mean classification embeddings of each class (own-class row, "
        "training set), largest first. The paper's Figs 4 (balanced) and 5 (imbalanced): "
        "minority classes should show fewer but larger values than the majority class.",
    ),
    "fig6_topk_logit_share": FigureSpec(
        "rq4",
        ("topk_logit_share",),
        _ranked_plot("topk_logit_share", "share", "share of class logit (%)", scale=100),
        "Mean share of an instance's own-class logit contributed by its largest, second "
        "largest, ... classification embedding, per class (training set). Tests the paper's "
        "Fig 6 / Table 4 claim that minority-class logits rest on fewer, larger contributions.",
    ),
    "fig7_top_weights": FigureSpec(
        "rq5",
        ("top_weights",),
        _ranked_plot("top_weights", "abs_weight", "|W| (classifier weight)"),
        "The ten largest classifier weight magnitudes of each class. Tests the paper's Fig 7 "
        "claim that majority classes have more large weights than minority classes, while "
        "weights stay far smaller than the class-mean ce of Fig 4.",
    ),
    "fig8_member_frequency": FigureSpec(
        "rq6",
        ("class_topk_members",),
        _ranked_plot(
            "class_topk_members",
            "share",
            "class instances holding it (%)",
            100,
            ymax=105,
            class_label="predicted class",
        ),
        "For each predicted class, the share of its training instances whose top-K feature "
        "embeddings contain each of the class's ten most frequent features. Tests the paper's "
        "Fig 8 claim that minority classes are described by a few features present in nearly "
        "all their instances, the majority class by more varied ones.",
    ),
    "fig9_members_to_cover": FigureSpec(
        "rq6",
        ("members_to_cover",),
        plot_members_to_cover,
        "How many of a class's most frequent top-K features are needed before every training "
        "instance of the class holds at least one, per predicted class, with the training "
        "class sizes (dashed). The per-run view of the paper's Fig 9: the majority class "
        "should need more than the minority class.",
    ),
    "fig10a_class_mean_fe": FigureSpec(
        "rq6",
        ("class_mean_fe_top10",),
        _ranked_plot("class_mean_fe_top10", "mean_fe", "class-mean fe (activation)"),
        "The ten largest class-mean feature embeddings of each class (training set). The "
        "paper's Fig 10a: their scale follows the class-mean ce of Fig 4 rather than the "
        "weights of Fig 7, so features, not weights, drive the large minority ce.",
    ),
    "fig10_fe_means": FigureSpec(
        "rq7",
        ("fe_means_top10",),
        plot_fe_means,
        "Mean feature embeddings at each class's ten largest training-set features, over "
        "training instances (a), test true positives (b) and test false positives (c). Tests "
        "the paper's Fig 10 claim that true positives keep the training magnitudes while "
        "false positives fall well below them.",
    ),
}


def figures_for(rq: str) -> dict[str, FigureSpec]:
    """The figures of one research question."""
    return {name: spec for name, spec in FIGURES.items() if spec.rq == rq}


def plot_figure(
    name: str, tables: dict[str, pa.Table], out_path: str | Path, title: str = ""
) -> None:
    """Draw figure ``name`` from ``tables`` (at least ``FIGURES[name].tables``) to a PNG."""
    if name not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; valid figures: {', '.join(FIGURES)}")
    spec = FIGURES[name]
    missing = [t for t in spec.tables if t not in tables]
    if missing:
        raise ConfigError(
            f"figure {name!r} needs the {spec.rq} tables {list(spec.tables)}; missing {missing}"
        )
    spec.plot(tables, Path(out_path), title)


# -- cross-run figures (results/figures/) ------------------------------------------------------


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
    mean = _values(table, f"{column}_mean")
    names = table.column_names
    if f"{column}_ci_low" not in names:
        return mean, np.zeros((2, len(mean)))
    low, high = _values(table, f"{column}_ci_low"), _values(table, f"{column}_ci_high")
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


def _legend_with_note(fig, note: str, **kwargs) -> None:
    """A legend under the axes whose title is ``note`` (what the whiskers are): inside the
    legend, the constrained layout makes room for it and nothing overlaps."""
    legend = fig.legend(
        loc="outside lower center",
        title="\n".join(textwrap.wrap(note, 80)),
        title_fontsize=5.5,
        columnspacing=1.0,
        handlelength=1.2,
        **kwargs,
    )
    legend.get_title().set_color("#555555")


@_styled
def plot_cross_bac(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Table 1 as bars: test BAC of the balanced, imbalanced and re-trained models."""
    table = tables["table1"]
    labels = _run_groups(table)
    series = [
        ("balanced model", GREEN, *_mean_interval(table, "balanced")),
        ("imbalanced model", VERMILLION, *_mean_interval(table, "imbalanced")),
        ("re-trained classifier", BLUE, *_mean_interval(table, "retrained")),
    ]
    fig, axes = _figure(2.9)
    ax = axes[0, 0]
    _bars_with_errors(ax, labels, series)
    ax.set_ylabel("test balanced accuracy")
    ax.set_ylim(0, 1)
    # two legend rows: three entries side by side are wider than one journal column
    _legend_with_note(fig, _interval_note(table), ncol=2)
    _save(fig, out_path, title)


@_styled
def plot_cross_members(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Fig 9: class top-K members needed to cover every instance, majority vs minority."""
    table = tables["fig9_members_to_cover"]
    roles = {role: table.filter(pc.equal(table["role"], role)) for role in ("majority", "minority")}
    labels = _run_groups(roles["majority"])
    fig, axes = _figure(2.4)
    ax = axes[0, 0]
    _bars_with_errors(
        ax,
        labels,
        [
            ("majority class", VERMILLION, *_mean_interval(roles["majority"], "members_needed")),
            ("minority class", BLUE, *_mean_interval(roles["minority"], "members_needed")),
        ],
    )
    k = int(_ints(table, "k")[0]) if "k" in table.column_names else None
    ax.set_ylabel(f"class top-{k} members needed" if k else "class top-K members needed")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_with_note(fig, _interval_note(table), ncol=2)
    _save(fig, out_path, title)


CROSS_RUN_FIGURES: dict[str, FigureSpec] = {
    "training_dynamics": FigureSpec(
        "rq2",
        ("training_dynamics",),
        _dynamics("plot_cross_dynamics"),
        "The lecture's training progress for ERM (ce) and every loss-level remedy of the same "
        "dataset and imbalance, side by side: train accuracy, test accuracy and FE-gradient "
        "norm per epoch of the majority and the minority class and the mean over classes "
        "(mean over seeds). Compare how far the minority lags in train accuracy early, how "
        "high its gradient peaks, and how wide its train-test gap ends.",
    ),
    "table1_bac": FigureSpec(
        "rq1",
        ("table1",),
        plot_cross_bac,
        "Test balanced accuracy (mean over seeds, whiskers the 95 % interval named under the "
        "figure) of the balanced model, "
        "the imbalanced model, and the imbalanced model's feature extractor with a classifier "
        "re-trained on balanced data. Tests the paper's Table 1 claim: imbalanced < re-trained "
        "< balanced, i.e. the extractor, not only the classifier, is damaged by imbalance.",
    ),
    "fig9_members_to_cover": FigureSpec(
        "rq6",
        ("fig9_members_to_cover",),
        plot_cross_members,
        "How many of a class's most frequent top-K features are needed before every training "
        "instance of the class holds one of them, for the majority and the minority class of "
        "each run group (mean over seeds, whiskers a t-interval where there are 2 or more). "
        "The paper's Fig 9: the "
        "majority class needs more, its instances are described by more varied features.",
    ),
}


def plot_cross_run(name: str, table: pa.Table, out_path: str | Path, title: str = "") -> None:
    """Draw cross-run figure ``name`` from its cross-run summary table."""
    if name not in CROSS_RUN_FIGURES:
        raise ConfigError(
            f"unknown cross-run figure {name!r}; valid: {', '.join(CROSS_RUN_FIGURES)}"
        )
    spec = CROSS_RUN_FIGURES[name]
    spec.plot({spec.tables[0]: table}, Path(out_path), title)


_KIND_COLOURS = {"untreated": BLACK, "feature-space": BLUE, "loss-level": VERMILLION}
_VERDICT_MARKS = {"better": "better", "worse": "worse", "no detectable difference": "n.s."}


def _seconds_label(x, _pos=None) -> str:
    """Plain seconds on a log axis ("0.01", "2", "40"), not matplotlib's 4x10^1."""
    return f"{x:g}"


def _log_ticks(lo: float, hi: float, most: int = 4) -> list[float]:
    """At most ``most`` readable ticks (1-2-5 steps, each at least 4x the one before, so
    labels never touch on a narrow panel) on a log axis from ``lo`` to ``hi``."""
    k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    candidates = [m * 10.0**k for k in range(k0, k1 + 1) for m in (1, 2, 5)]
    for spacing in (4, 2):  # a narrower spacing only when the wider one leaves one tick
        ticks: list[float] = []
        for t in candidates:
            if lo <= t <= hi and (not ticks or t >= spacing * ticks[-1]):
                ticks.append(t)
        if len(ticks) > 1:
            break
    if len(ticks) == 1:  # a single tick cannot show a log scale: add the next 1-2-5 step
        ticks.append(next(t for t in candidates + [10.0 ** (k1 + 1)] if t > ticks[0]))
    step = int(np.ceil(len(ticks) / most)) if ticks else 1
    return ticks[::step]


@_styled
def _plot_remedy_costs(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Two panels sharing one row per method, so labels never collide: test BAC with its 95 %
    interval and the untreated model as a reference line (left), wall-clock cost (right)."""
    rows = tables["remedies"].to_pylist()
    groups = list(dict.fromkeys((r["dataset"], r["imbalance"], r["base_loss"]) for r in rows))
    ordered = []
    for group in groups:
        members = [r for r in rows if (r["dataset"], r["imbalance"], r["base_loss"]) == group]
        # the untreated model first, then by BAC
        members.sort(key=lambda r: (r["kind"] != "untreated", -(r["bac_mean"] or 0)))
        ordered.append((group, members))
    n_rows = sum(len(m) for _, m in ordered) + len(ordered) - 1
    fig, axes = _figure(0.9 + 0.17 * n_rows, ncols=2, sharey=True, width_ratios=[2.2, 1])
    ax_bac, ax_cost = axes[0]
    y, ticks, labels = 0, [], []
    for g, (group, members) in enumerate(ordered):
        for r in members:
            colour = _KIND_COLOURS[r["kind"]]
            mean = r["bac_mean"]
            low, high = r.get("bac_ci_low"), r.get("bac_ci_high")
            if low is not None and high is not None:
                ax_bac.plot([low, high], [y, y], color=colour, linewidth=1.0)
            ax_bac.plot([mean], [y], MARKERS[g % len(MARKERS)], color=colour)
            if r["kind"] == "untreated":
                ax_bac.axvline(mean, color=GREY, linewidth=0.6, linestyle="--", zorder=0)
            ax_cost.barh(y, r["total_seconds_mean"], color=colour, height=0.6, linewidth=0)
            mark = _VERDICT_MARKS.get(r.get("verdict") or "", "")
            name = r["remedy"] if r["kind"] != "untreated" else "untreated"
            if len(groups) > 1:
                name = f"{'/'.join(group[1:])}: {name}"
            labels.append(f"{name} ({mark})" if mark else name)
            ticks.append(y)
            y += 1
        y += 1  # a blank row between groups
    ax_bac.set_yticks(ticks, labels)
    ax_bac.invert_yaxis()
    ax_bac.set_xlabel("test balanced accuracy")
    ax_cost.set_xscale("log")
    costs = [r["total_seconds_mean"] for _, m in ordered for r in m if r["total_seconds_mean"]]
    if costs:
        lo, hi = min(costs) / 1.5, max(costs) * 1.5
        ticks = _log_ticks(lo, hi)
        ax_cost.set_xlim(min(lo, ticks[0] / 1.2), max(hi, ticks[-1] * 1.2))
        ax_cost.xaxis.set_major_locator(FixedLocator(ticks))
    ax_cost.xaxis.set_major_formatter(FuncFormatter(_seconds_label))
    ax_cost.xaxis.set_minor_locator(FixedLocator([]))
    ax_cost.set_xlabel("cost (s)")
    ax_cost.tick_params(axis="y", length=0)
    handles = [Patch(color=c, label=k) for k, c in _KIND_COLOURS.items()]
    table = tables["remedies"]
    kinds = sorted(set(table["interval"].to_pylist())) if "interval" in table.column_names else []
    _legend_with_note(
        fig,
        "lines: 95 % " + "; ".join(kinds) + ". better / worse / n.s.: the paired BAC gain over "
        "the untreated model on the same test images. Cost: base training + remedy.",
        handles=handles,
        ncol=3,
    )
    _save(fig, out_path, title)


def plot_remedy_costs(table: pa.Table, out_path: str | Path, title: str = "") -> None:
    """Test BAC with its interval and the wall-clock cost of every remedy (``remedies``
    summary table)."""
    _plot_remedy_costs({"remedies": table}, Path(out_path), title)
