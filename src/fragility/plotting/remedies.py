"""The remedies figure (:data:`fragility.catalog.outputs.REMEDY_FIGURE`): test BAC
with its interval and the wall-clock cost of every remedy, from the ``remedies`` summary table
of :mod:`fragility.analysis.crossrun`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fragility.plotting.style import (
    BLACK,
    BLUE,
    GREY,
    MARKERS,
    VERMILLION,
    FixedLocator,
    FuncFormatter,
    Patch,
    figure,
    legend_with_note,
    log_ticks,
    save,
    styled,
)

_KIND_COLOURS = {"untreated": BLACK, "feature-space": BLUE, "loss-level": VERMILLION}
_VERDICT_MARKS = {"better": "better", "worse": "worse", "no detectable difference": "n.s."}


def _seconds_label(x, _pos=None) -> str:
    """Plain seconds on a log axis ("0.01", "2", "40"), not matplotlib's 4x10^1."""
    return f"{x:g}"


@styled
def _plot_remedy_costs(tables: dict[str, pa.Table], out_path: Path, title: str) -> None:
    """Two panels sharing one row per method, so labels never collide: test BAC with its 95 %
    interval and the untreated model as a dashed line (left), wall-clock cost (right)."""
    rows = tables["remedies"].to_pylist()
    groups = list(dict.fromkeys((r["dataset"], r["imbalance"], r["base_loss"]) for r in rows))
    ordered = []
    for group in groups:
        members = [r for r in rows if (r["dataset"], r["imbalance"], r["base_loss"]) == group]
        # the untreated model first, then by BAC
        members.sort(key=lambda r: (r["kind"] != "untreated", -(r["bac_mean"] or 0)))
        ordered.append((group, members))
    n_rows = sum(len(m) for _, m in ordered) + len(ordered) - 1
    fig, axes = figure(0.9 + 0.17 * n_rows, ncols=2, sharey=True, width_ratios=[2.2, 1])
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
        ticks = log_ticks(lo, hi)
        ax_cost.set_xlim(min(lo, ticks[0] / 1.2), max(hi, ticks[-1] * 1.2))
        ax_cost.xaxis.set_major_locator(FixedLocator(ticks))
    ax_cost.xaxis.set_major_formatter(FuncFormatter(_seconds_label))
    ax_cost.xaxis.set_minor_locator(FixedLocator([]))
    ax_cost.set_xlabel("cost (s)")
    ax_cost.tick_params(axis="y", length=0)
    handles = [Patch(color=c, label=k) for k, c in _KIND_COLOURS.items()]
    table = tables["remedies"]
    kinds = sorted(set(table["interval"].to_pylist())) if "interval" in table.column_names else []
    legend_with_note(
        fig,
        "lines: 95 % " + "; ".join(kinds) + ". better / worse / n.s.: the paired BAC gain over "
        "the untreated model on the same test images. Cost: base training + remedy.",
        handles=handles,
        ncol=3,
    )
    save(fig, out_path, title)


def plot_remedy_costs(table: pa.Table, out_path: str | Path, title: str = "") -> None:
    """Test BAC with its interval and the wall-clock cost of every remedy (``remedies``
    summary table)."""
    _plot_remedy_costs({"remedies": table}, Path(out_path), title)
