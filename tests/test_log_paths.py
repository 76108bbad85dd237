"""Logs and benchmarks live under the study's `results:` root (docs/outputs.md), so two studies
run in the same folder never write to the same log file."""

import re
from pathlib import Path

import yaml
from snakemake_cli import SMOKE, run_snakemake


def _study(tmp_path: Path, results: str) -> Path:
    config = yaml.safe_load(SMOKE.read_text())
    config["results"] = results
    path = tmp_path / f"{results}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _planned(result, key: str) -> list[str]:
    """Every ``log:`` (or ``benchmark:``) path of a dry run's job listing."""
    return [m[1] for m in re.finditer(rf"^\s*{key}: (.+)$", result.stdout, re.MULTILINE)]


def test_every_rule_logs_under_the_results_root(tmp_path):
    result = run_snakemake(tmp_path, _study(tmp_path, "study_b"), "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    logs, benchmarks = _planned(result, "log"), _planned(result, "benchmark")
    assert len(logs) > 50 and benchmarks  # every job of the smoke study, training benchmarked
    assert [p for p in logs if not p.startswith("study_b/logs/")] == []
    assert [p for p in benchmarks if not p.startswith("study_b/benchmarks/")] == []


def test_two_studies_write_their_logs_to_different_places(tmp_path):
    split = "digits/exp10/split_seed0.parquet"
    for results in ("study_a", "study_b"):
        done = run_snakemake(tmp_path, _study(tmp_path, results), f"{results}/{split}")
        assert done.returncode == 0, done.stderr[-3000:]
    log_a = tmp_path / "study_a/logs/splits/digits/exp10/seed0.log"
    log_b = tmp_path / "study_b/logs/splits/digits/exp10/seed0.log"
    assert log_a.is_file() and log_b.is_file()
    assert not (tmp_path / "logs").exists()  # nothing shared in the working folder
