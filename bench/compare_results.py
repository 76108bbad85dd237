"""Are two results folders the same study's outputs? For refactors that must not change a
number: every split, table, metric file and embedding is compared, value by value; what
legitimately differs between two runs of the same code is left out (wall-clock times, the
code version, the environment, logs, benchmarks, figures' bytes).

    python bench/compare_results.py results_before results_after

Prints each file that differs (and how), then one line: how many files matched. Exit status
0 when every common file matches and neither folder has a file the other lacks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SKIPPED_FOLDERS = {"logs", "benchmarks"}
SUFFIXES = {".parquet", ".csv", ".json", ".txt", ".rst"}
# columns and keys that time or locate a run rather than measure it
VOLATILE = {
    "wall_seconds",
    "base_wall_seconds",
    "seconds",
    "total_seconds",
    "seconds_mean",
    "seconds_std",
    "code_version",
    "environment",
    "cpu_model",
    "platform",
    "python",
    "torch",
    "torch_threads",
    "epoch_seconds",
}
VOLATILE_PREFIXES = ("seconds_", "total_seconds_")


def _volatile(name: str) -> bool:
    return name in VOLATILE or name.startswith(VOLATILE_PREFIXES)


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.suffix in SUFFIXES
        and not SKIPPED_FOLDERS & set(p.relative_to(root).parts)
        and not p.name.startswith(".")
    }


def _difference(a, b) -> str | None:
    """None when two columns hold the same values; else how they differ (for numbers, the
    largest absolute difference, which tells rounding noise from a moved number)."""
    try:
        x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return None if a == b else "differs"
    if x.shape != y.shape:
        return "differs in shape"
    if np.array_equal(x, y, equal_nan=True):
        return None
    gap = np.abs(x - y)
    if np.isnan(x).tolist() != np.isnan(y).tolist() or not np.isfinite(gap[~np.isnan(x)]).all():
        return "differs (missing or infinite values)"
    return f"differs by up to {np.nanmax(gap):.2g}"


def _compare_tables(a, b) -> str | None:
    if a.column_names != b.column_names:
        return f"columns differ: {sorted(set(a.column_names) ^ set(b.column_names))}"
    if a.num_rows != b.num_rows:
        return f"{a.num_rows} rows against {b.num_rows}"
    problems = []
    for name in a.column_names:
        if _volatile(name):
            continue
        problem = _difference(a[name].to_pylist(), b[name].to_pylist())
        if problem:
            problems.append(f"column {name} {problem}")
    return "; ".join(problems) or None


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not _volatile(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def compare(a: Path, b: Path) -> str | None:
    """None when the two files hold the same values, else what differs."""
    if a.suffix == ".parquet":
        return _compare_tables(pq.read_table(a), pq.read_table(b))
    if a.suffix == ".csv":
        return _compare_tables(pacsv.read_csv(a), pacsv.read_csv(b))
    if a.suffix == ".json":
        same = _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text()))
        return None if same else "values differ"
    return None if a.read_text() == b.read_text() else "text differs"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    left, right = (_files(Path(p)) for p in argv)
    only = sorted(set(left) ^ set(right))
    for name in only:
        print(f"only in {argv[0] if name in left else argv[1]}: {name}")
    differ = 0
    for name in sorted(set(left) & set(right)):
        problem = compare(left[name], right[name])
        if problem:
            differ += 1
            print(f"{name}: {problem}")
    common = len(set(left) & set(right))
    print(f"{common - differ} of {common} common files hold the same values; {len(only)} unmatched")
    return int(bool(differ or only))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
