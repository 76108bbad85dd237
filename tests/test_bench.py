"""The benchmark scripts still run against today's package (what they measure is their own
business: no timing is asserted here)."""

import subprocess
import sys
from pathlib import Path

import pytest
from snakemake_cli import REPO

from fragility.training import gpus


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
    assert [len(run) for run in full["epoch_seconds"]] == [2]  # every epoch's time
    runs = report["parts"]["multi_gpu"]["result"]["runs"]
    assert len(runs) == 2 and {r["device"] for r in runs} == {"cpu"}
    host = gpus.host_name()  # the slot files name the machine
    slots = {f"gpufake{s}@{host}" for s in ("0.0", "0.1", "1.0", "1.1")}  # stand-in GPUs
    assert all(r["gpu_slot"] in slots for r in runs)


def test_the_cuda_tests_part_counts_the_tests_that_ran_before_it_was_cut_off(tmp_path):
    check = _gpu_check()
    stdout = (
        "tests/test_gpus.py::test_a_claim_narrows PASSED    [ 10%]\n"
        "tests/test_precision.py::test_the_gpu_precision_policy[ce-cpu] FAILED [ 20%]\n"
        "tests/test_precision.py::test_the_gpu_precision_policy[ce-cuda] SKIPPED (no) [ 30%]\n"
        "tests/test_precision.py::test_the_gpu_precision_policy[ldam-cpu] "  # cut off here
    )
    counts = check._junit(tmp_path / "missing.xml")(stdout)  # no JUnit file: pytest was killed
    assert counts["complete"] is False
    assert (counts["tests"], counts["passed"], counts["failure"], counts["skipped"]) == (3, 1, 1, 1)


@pytest.mark.slow
def test_every_gpu_check_part_cut_off_by_its_limit_leaves_what_it_measured(tmp_path):
    """`--tiny` with parts far too long for their limits: each is killed at its limit and
    its figures so far are in the JSON (tests that ran, speed rounds, epochs, finished
    runs); multi_gpu's time was set aside from the start, so full_run could not use it."""
    import json

    out = tmp_path / "gpu_check.json"
    limits = {"cuda_tests": 4, "train_speed": 30, "full_run": 60, "multi_gpu": 20}
    cmd = ["bash", str(REPO / "bench" / "gpu_check.sh"), "--tiny", "--out", str(out)]
    cmd += ["--budget", "100", "--full-run-epochs", "100000", "--speed-rounds", "1000"]
    cmd += [arg for part, s in limits.items() for arg in ("--limit", f"{part}={s}")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]  # parts timed out
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert report["finished"] and list(parts) == ["machine", *limits]
    assert parts["machine"]["status"] == "ok"
    assert {parts[p]["status"] for p in ("cuda_tests", "train_speed", "full_run")} == {"timeout"}
    for part in ("cuda_tests", "train_speed", "full_run"):
        assert parts[part]["seconds"] <= parts[part]["limit"] + 10, part
    tests = parts["cuda_tests"]["result"]
    assert tests["complete"] is False and tests["tests"] == len(tests["outcomes"])
    speed = parts["train_speed"]["result"]
    assert speed["finished"] is False and speed["rounds_done"] >= 1 and speed["ratio"] > 0
    full = parts["full_run"]["result"]
    assert full["finished"] is False and len(full["epoch_seconds"][0]) >= 1
    assert full["projected_run_s"] == pytest.approx(100000 * full["median_epoch_s"])
    # the budget (100 s) less multi_gpu's 20 s (and 5 s to end a part) and the parts before
    # left full_run less than its own 60 s ...
    spent = sum(parts[p]["seconds"] for p in ("machine", "cuda_tests", "train_speed"))
    assert parts["full_run"]["limit"] <= 100 - 25 - spent + 0.5 < 60
    # ... and multi_gpu had its 20 s
    assert parts["multi_gpu"]["limit"] == 20
    assert parts["multi_gpu"]["result"]["finished"] == len(parts["multi_gpu"]["result"]["runs"])


@pytest.mark.slow
def test_a_gpu_check_killed_mid_part_keeps_that_parts_figures(tmp_path):
    """The machine taken away during full_run (the check and its children killed): the JSON
    on disk holds the parts before it and full_run's epochs so far."""
    import json
    import os
    import signal
    import time

    out = tmp_path / "gpu_check.json"
    cmd = ["bash", str(REPO / "bench" / "gpu_check.sh"), "--tiny", "--out", str(out)]
    cmd += ["--only", "machine", "full_run", "--full-run-epochs", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline, full = time.monotonic() + 300, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            parts = json.loads(out.read_text())["parts"] if out.exists() else {}
            full = parts.get("full_run", {}).get("result")
            if full and len(full["epoch_seconds"][0]) >= 2:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the check, the part and its children
        proc.wait()
    report = json.loads(out.read_text())
    assert report["finished"] is False and report["parts"]["machine"]["status"] == "ok"
    kept = report["parts"]["full_run"]
    assert kept["status"] == "running" and len(kept["result"]["epoch_seconds"][0]) >= 2
    # the part (a session of its own) does not outlive the check: no 100000-epoch orphan
    part = str(out.with_name(out.name + ".parts") / "full_run.json")
    deadline = time.monotonic() + 10
    while _running(part) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(part)


def _running(marker: str) -> bool:
    """Whether a live (not zombie) process has ``marker`` in its command line."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            return True
    return False


def test_the_cpu_sharing_bench_times_a_training_epoch():
    """bench/cpu_sharing.py's timing function runs on this machine (no speed asserted)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpu_sharing", REPO / "bench" / "cpu_sharing.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.time_epochs(1) > 0 and bench.time_epochs(1, threads=1) > 0
    assert sum(bench.COUNTS) == 2478  # exp100 of n_max 1,000, as the default study's runs
