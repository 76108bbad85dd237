"""bench/compare_results.py: two results folders hold the same values, timings aside."""

import json
import runpy

import pyarrow as pa
import pyarrow.parquet as pq
from snakemake_cli import REPO

compare = runpy.run_path(str(REPO / "bench/compare_results.py"))


def _study(root, bac: float, seconds: float) -> None:
    run = root / "d/exp10/ce/seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"bac": bac, "wall_seconds": seconds}))
    table = pa.table({"bac": [bac], "seconds": [seconds]})
    pq.write_table(table, run / "table.parquet")
    (root / "logs").mkdir()
    (root / "logs/train.log").write_text(f"took {seconds} s")


def test_timings_and_logs_may_differ_values_may_not(tmp_path, capsys):
    _study(tmp_path / "a", 0.5, 10.0)
    _study(tmp_path / "b", 0.5, 12.0)
    assert compare["main"]([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "2 of 2 common files hold the same values; 0 unmatched" in capsys.readouterr().out
    _study(tmp_path / "c", 0.5000001, 10.0)
    assert compare["main"]([str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out
    # how far: rounding noise reads apart from a moved number
    assert "d/exp10/ce/seed0/table.parquet: column bac differs by up to 1e-07" in out
    assert "d/exp10/ce/seed0/metrics.json: values differ" in out
    (tmp_path / "a/d/exp10/ce/seed0/extra.csv").write_text("x\n1\n")
    assert compare["main"]([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "only in" in capsys.readouterr().out
