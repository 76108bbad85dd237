"""Figures of the lecture's training-progress diagnostic, in the lecture's form:
majority against minority (and the mean over classes) training accuracy, test accuracy and
FE-gradient norm against the epoch.

:func:`plot_training_dynamics` draws one run from its ``rq2/training_dynamics`` table;
:func:`plot_cross_dynamics` puts every loss (ERM and each loss-level remedy, MFW among them)
of one dataset and imbalance side by side from the cross-run ``training_dynamics`` table.
A history from before the gradient was recorded gets its accuracy panels and a gradient
panel that says so. Declared in :data:`fragility.catalog.outputs.RUN_FIGURES` and
:data:`~fragility.catalog.outputs.CROSS_RUN_FIGURES`, which name these functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.plotting.style import (
    BLACK,
    BLUE,
    GREY,
    VERMILLION,
    WIDTH_IN,
    Line2D,
    MaxNLocator,
    plt,
    save,
    styled,
    ticker,
)

# (history column, axis label) of the three panels, top to bottom
PANELS = (
    ("train_acc", "train acc. (%)"),
    ("test_acc", "test acc. (%)"),
    ("fe_grad_norm", "FE-gradient norm"),
)
ROLE_STYLE = {"majority": (BLUE, 1.2), "minority": (VERMILLION, 1.2), "mean": (BLACK, 0.8)}
NOT_RECORDED = "FE gradient not recorded\n(history from before it was)"


def _not_recorded(ax, message: str) -> None:
    """An empty panel that says why, keeping its epoch axis."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_yticks([])


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in table.column(name).to_pylist()], float)


def _draw(ax, epochs: np.ndarray, y: np.ndarray, role: str, spread=None) -> None:
    colour, width = ROLE_STYLE[role]
    ax.plot(epochs, y, color=colour, linewidth=width)
    if spread is not None and np.isfinite(spread).any():
        ax.fill_between(epochs, y - spread, y + spread, color=colour, alpha=0.15, linewidth=0)


def _finish_panel(ax, measure: str, kept: int | None) -> None:
    if measure == "fe_grad_norm":
        ax.set_yscale("log")  # the minority's peak is often ten times the majority's
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.set_ylim(0, 105)
    if kept is not None:
        ax.axvline(kept, color=GREY, linewidth=0.8, linestyle=":", zorder=0)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))


def _log_ticks(axes) -> None:
    """Gradient axes, once their limits are final: ticks at 1, 2, 5 per decade over a short
    range, at the decades over a long one (DRW can drop the majority's gradient 100-fold)."""
    for ax in axes:
        if ax.get_yscale() == "log":
            low, high = ax.get_ylim()
            subs = (1.0, 2.0, 5.0) if high / max(low, 1e-30) < 300 else (1.0,)
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=subs))


def _role_legend(fig, labels: dict[str, str], kept: bool = True, ncol: int = 2) -> None:
    handles = [
        Line2D([], [], color=ROLE_STYLE[r][0], linewidth=ROLE_STYLE[r][1], label=text)
        for r, text in labels.items()
    ]
    if kept:
        handles.append(Line2D([], [], color=GREY, linestyle=":", label="kept epoch"))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, columnspacing=1.0)


@styled
def plot_training_dynamics(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """One run: train accuracy, test accuracy and FE-gradient norm per epoch (panels, top to
    bottom) of the majority class, the minority class and the mean over classes."""
    table = tables["training_dynamics"]
    fig, axes = plt.subplots(
        3, 1, figsize=(WIDTH_IN, 4.6), layout="constrained", sharex=True, squeeze=False
    )
    if table.num_rows == 0:
        for ax in axes[:, 0]:
            _not_recorded(ax, "no training history")
        save(fig, out_path, title)
        return
    epoch, cls = _column(table, "epoch").astype(int), _column(table, "class").astype(int)
    role = np.array(table.column("role").to_pylist())
    kept_rows = np.array(table.column("kept").to_pylist(), dtype=bool)
    kept = int(epoch[kept_rows][0]) if kept_rows.any() else None
    epochs = np.unique(epoch)
    labels = {}
    for r in ("majority", "minority"):
        if np.any(role == r):
            c = int(cls[role == r][0])
            name = table.column("class_name")[int(np.flatnonzero(role == r)[0])].as_py()
            n = int(_column(table, "n_train")[cls == c][0])
            labels[r] = f"{r}: {name} ({n})"
    labels["mean"] = "mean over classes"
    for ax, (measure, ylabel) in zip(axes[:, 0], PANELS):
        values = _column(table, measure)
        scale = 1.0 if measure == "fe_grad_norm" else 100.0
        if np.isnan(values).all():
            _not_recorded(ax, NOT_RECORDED)
            continue
        for r in labels:
            rows = np.ones(len(role), bool) if r == "mean" else role == r
            y = [np.nanmean(values[rows & (epoch == e)]) for e in epochs]
            _draw(ax, epochs, scale * np.asarray(y), r)
        ax.set_ylabel(ylabel)
        _finish_panel(ax, measure, kept)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].tick_params(labelbottom=True)
    _log_ticks(axes.ravel())
    _role_legend(fig, labels)
    save(fig, out_path, title)


def _groups(table: pa.Table) -> dict[tuple[str, str], list[str]]:
    """(dataset, imbalance) -> its losses, in the table's order with ``ce`` (ERM) first."""
    out: dict[tuple[str, str], list[str]] = {}
    for d, i, loss in zip(*(table.column(k).to_pylist() for k in ("dataset", "imbalance", "loss"))):
        if loss not in out.setdefault((d, i), []):
            out[(d, i)].append(loss)
    return {k: sorted(v, key=lambda x: (x != "ce", v.index(x))) for k, v in out.items()}


@styled
def plot_cross_dynamics(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Every (dataset, imbalance): one column per loss, rows train accuracy, test accuracy
    and FE-gradient norm; majority, minority and mean over classes (mean over seeds, band
    = one standard deviation)."""
    table = tables["training_dynamics"]
    groups = _groups(table)
    ncols = max((len(v) for v in groups.values()), default=1)
    nrows = 3 * max(len(groups), 1)
    width = max(WIDTH_IN, 1.45 * ncols + 0.6)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, 1.25 * nrows + 0.7), layout="constrained",
        sharex=True, sharey="row", squeeze=False,
    )  # fmt: skip
    if not groups:
        _not_recorded(axes[0, 0], "no runs")
    cols = {k: table.column(k).to_pylist() for k in ("dataset", "imbalance", "loss", "role")}
    epoch = _column(table, "epoch")
    for g, ((dataset, imbalance), losses) in enumerate(groups.items()):
        for j in range(ncols):
            block = axes[3 * g : 3 * g + 3, j]
            if j >= len(losses):
                for ax in block:
                    ax.set_axis_off()
                continue
            run = np.array(
                [
                    (d, i, lo) == (dataset, imbalance, losses[j])
                    for d, i, lo in zip(cols["dataset"], cols["imbalance"], cols["loss"])
                ]
            )
            block[0].set_title(losses[j])
            _cross_panels(block, table, run, np.array(cols["role"]), epoch)
            if j == 0:
                for ax, (_, ylabel) in zip(block, PANELS):
                    ax.set_ylabel(f"{imbalance}\n{ylabel}")
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    _log_ticks(axes.ravel())
    roles = {"majority": "majority", "minority": "minority", "mean": "mean over classes"}
    _role_legend(fig, roles, kept=False, ncol=3)
    save(fig, out_path, title or "; ".join(sorted({d for d, _ in groups})))


def _cross_panels(block, table: pa.Table, run: np.ndarray, role: np.ndarray, epoch) -> None:
    """The three panels of one (dataset, imbalance, loss) of the cross-run table (no kept
    epoch: each seed keeps its own)."""
    for ax, (measure, _) in zip(block, PANELS):
        mean = _column(table, f"{measure}_mean")
        std = _column(table, f"{measure}_std") if f"{measure}_std" in table.column_names else None
        scale = 1.0 if measure == "fe_grad_norm" else 100.0
        if np.isnan(mean[run]).all():
            _not_recorded(ax, "not recorded")
            continue
        for r in ROLE_STYLE:
            rows = run & (role == r)
            order = np.argsort(epoch[rows])
            spread = None if std is None else scale * std[rows][order]
            _draw(ax, epoch[rows][order], scale * mean[rows][order], r, spread)
        _finish_panel(ax, measure, None)
