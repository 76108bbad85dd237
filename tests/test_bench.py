"""The benchmark scripts still run against today's package (what they measure is their own
business: no timing is asserted here)."""

import subprocess
import sys

from snakemake_cli import REPO


def test_the_analysis_bench_runs_on_a_tiny_run():
    args = ["--n-train", "400", "--n-test", "200", "--n-pool", "400", "--epochs", "4"]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench/analysis_speed.py"), *args, "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio = bootstrap s / 1 s" in done.stdout
