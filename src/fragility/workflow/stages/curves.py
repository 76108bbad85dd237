"""The fragility-curve stages: each by-seed table as a curve over the imbalance ratio R,
every curve table side by side, and where each claim starts to hold."""

from __future__ import annotations

from pathlib import Path

from fragility.analysis.curves import joined_curve_table, smallest_ratio_table, source_curve_table
from fragility.io import Outputs, output_paths, read_table, write_table


def _write_each(table, outputs: Outputs) -> None:
    for path in output_paths(outputs):
        write_table(table, path)


def write_curve_table(source: str, by_seed_path: str | Path, outputs: Outputs) -> None:
    """The curve table of ``source`` to each of ``outputs`` (CSV and Parquet)."""
    _write_each(source_curve_table(source, read_table(by_seed_path)), outputs)


def write_joined_curve_table(curve_paths: list[str], outputs: Outputs) -> None:
    """Every curve table side by side, to each of ``outputs`` (CSV and Parquet)."""
    _write_each(joined_curve_table([read_table(p) for p in curve_paths]), outputs)


def write_smallest_ratio_table(claims_path: str | Path, outputs: Outputs) -> None:
    """Where each claim starts to hold, from ``claims.parquet``, to each of ``outputs``."""
    _write_each(smallest_ratio_table(read_table(claims_path)), outputs)
