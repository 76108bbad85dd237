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
    assert "ratio = bootstrap s / 5 s" in done.stdout


def _gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_gpu_check_part_past_its_limit_is_recorded_and_the_parts_before_it_kept(tmp_path):
    import json

    check = _gpu_check()
    out = tmp_path / "check.json"
    report = check.Report(out, tiny=True)
    fast = [sys.executable, "-c", "print('{\"x\": 1}')"]
    check.run_part(report, "fast", fast, 60, lambda stdout: json.loads(stdout))
    check.run_part(report, "broken", [sys.executable, "-c", "raise SystemExit(3)"], 60)
    check.run_part(report, "slow", [sys.executable, "-c", "import time; time.sleep(30)"], 1)
    parts = json.loads(out.read_text())["parts"]  # on disk after each part, not only at the end
    assert parts["fast"]["status"] == "ok" and parts["fast"]["result"] == {"x": 1}
    assert parts["broken"]["status"] == "failed" and parts["broken"]["returncode"] == 3
    assert parts["slow"]["status"] == "timeout" and parts["slow"]["seconds"] < 10
    assert json.loads(out.read_text())["finished"] is False


def test_the_gpu_check_rehearses_on_a_cpu(tmp_path):
    """`bench/gpu_check.sh --tiny`: the script's parts at toy size (no GPU needed); the
    multi-GPU part claims two fake devices for two real workflow trainings."""
    import json

    out = tmp_path / "gpu_check.json"
    parts = ["machine", "full_run", "multi_gpu"]
    done = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--tiny", "--only", *parts, "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["finished"] and set(report["parts"]) == set(parts)
    assert {p["status"] for p in report["parts"].values()} == {"ok"}
    assert report["parts"]["machine"]["result"]["torch"]
    full = report["parts"]["full_run"]["result"]
    assert full["args"]["epochs"] == 2 and len(full["test_bac"]) == 1
    runs = report["parts"]["multi_gpu"]["result"]["runs"]
    assert len(runs) == 2 and {r["device"] for r in runs} == {"cpu"}
    assert all(r["gpu_slot"] in {"gpu0.0", "gpu0.1", "gpu1.0", "gpu1.1"} for r in runs)


def test_the_cpu_sharing_bench_times_a_training_epoch():
    """bench/cpu_sharing.py's timing function runs on this machine (no speed asserted)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpu_sharing", REPO / "bench" / "cpu_sharing.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.time_epochs(1) > 0 and bench.time_epochs(1, threads=1) > 0
    assert sum(bench.COUNTS) == 2478  # exp100 of n_max 1,000, as the default study's runs
