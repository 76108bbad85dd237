"""The house style of every figure: one journal column (3.5 in wide, 8 pt text), the
Okabe-Ito colour-blind-safe palette (viridis for heatmaps), PNGs written atomically, and the
helpers the figure families share (reading a table's columns and classes, a class axis, a
legend with a note, log-axis ticks).

matplotlib is imported on first use (:class:`_Lazy`): importing :mod:`fragility.plotting`
stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.io import atomic_path


class _Lazy:
    """A matplotlib module or class imported on first use: the workflow and the stages import
    :mod:`fragility.plotting` at start-up, and ``snakemake -n`` should not pay for matplotlib
    (~0.7 s)."""

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
ticker = _Lazy("matplotlib.ticker")
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


# -- helpers --------------------------------------------------------------------------------


def styled(fn):
    """Run a plot function under the house style (and never leak an open figure)."""

    @functools.wraps(fn)
    def wrapper(tables, out_path, title=""):
        try:
            with plt.rc_context(STYLE):
                fn(tables, Path(out_path), title)
        finally:
            plt.close("all")

    return wrapper


def figure(height: float, nrows: int = 1, ncols: int = 1, **kwargs):
    return plt.subplots(
        nrows, ncols, figsize=(WIDTH_IN, height), layout="constrained", squeeze=False, **kwargs
    )


def save(fig, out_path: Path, title: str) -> None:
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 70)))
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


def values(table: pa.Table, column: str) -> np.ndarray:
    """A column as float64, null -> NaN."""
    return np.array(
        [np.nan if v is None else v for v in table.column(column).to_pylist()], dtype=np.float64
    )


def ints(table: pa.Table, column: str) -> np.ndarray:
    return np.array([-1 if v is None else v for v in table.column(column).to_pylist()], np.int64)


@dataclass
class Classes:
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


def classes_of(table: pa.Table) -> Classes:
    """The classes of a per-class or long table (first row of each class)."""
    rows: dict[int, dict] = {}
    for r in table.select(["class", "class_name", "role", "n_train"]).to_pylist():
        rows.setdefault(r["class"], r)
    order = sorted(rows)
    return Classes(
        np.array(order, dtype=np.int64),
        [str(rows[c]["class_name"]) for c in order],
        [str(rows[c]["role"]) for c in order],
        np.array([rows[c]["n_train"] for c in order], dtype=np.float64),
    )


def class_axis(ax, classes: Classes, label: str = "class") -> None:
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


def no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def legend_with_note(fig, note: str, **kwargs) -> None:
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


def log_ticks(lo: float, hi: float, most: int = 4) -> list[float]:
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
