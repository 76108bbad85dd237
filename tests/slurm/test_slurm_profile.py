"""The Snakemake profiles: profiles/default (local) and profiles/slurm (SLURM executor plugin).

The unmarked tests need no cluster. The `slurm` test runs the smoke preset through a real SLURM
cluster and is skipped unless one answers (`sinfo`) with a partition `debug`, the partition
profiles/slurm names; `sudo bash tests/slurm/setup_local_slurm.sh` starts such a one-node
cluster on this machine (no accounting, no GPUs).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
SMOKE = REPO / "presets" / "smoke.yaml"
DEFAULT_PROFILE = REPO / "profiles" / "default" / "config.yaml"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
GPU_RULES = ("train_model", "extract_embeddings")
# How a cluster without GPUs drops the profile's GPU request (see profiles/slurm/config.yaml).
NO_GPU = ["--set-resources", *(f"{rule}:gpu=0" for rule in GPU_RULES)]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


# --- no cluster needed -------------------------------------------------------------------------


def test_profiles_parse_and_the_slurm_one_uses_the_slurm_executor():
    default = yaml.safe_load(DEFAULT_PROFILE.read_text())
    slurm = yaml.safe_load(SLURM_PROFILE.read_text())
    assert "executor" not in default  # local runs use Snakemake's local executor
    assert default["resources"] == {"gpu": 1}
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-status-command"] == "squeue"
    assert {"slurm_partition", "runtime", "mem_mb", "cpus_per_task"} <= set(
        slurm["default-resources"]
    )
    for rule in GPU_RULES:
        assert slurm["set-resources"][rule] == {"gpu": 0, "gres": "gpu:1"}
    # profiles/default is loaded next to profiles/slurm and wins on shared keys (see its header)
    assert not set(default) & set(slurm)


def _effective_args(*argv):
    """Snakemake's own reading of the command line plus profiles (as `snakemake` would parse it)."""
    from snakemake.cli import parse_args

    return parse_args(["--snakefile", str(SNAKEFILE), *argv])[1]


def _sbatch_gpu_options(resources: dict) -> str:
    """What the installed slurm plugin adds to sbatch for a job with these resources."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    class Job:
        pass

    job = Job()
    job.resources = Resources(resources)
    return set_gres_string(job).strip()


def _resolved(rule_resources) -> dict:
    """The rule's declared gpu=1, overridden by the set-resources entries for that rule."""
    resources = {"gpu": 1}
    for name, resource in (rule_resources or {}).items():
        resources[name] = resource.raw
    return resources


def test_slurm_profile_asks_slurm_for_one_gpu_and_the_command_line_drops_it(monkeypatch):
    monkeypatch.chdir(REPO)  # profiles/default is found relative to the Snakefile or cwd
    args = _effective_args("--profile", str(SLURM_PROFILE.parent))
    assert args.executor == "slurm"
    assert args.resources["gpu"].raw == 1  # from profiles/default, the workflow profile
    assert args.latency_wait == 30
    for rule in GPU_RULES:
        resources = _resolved(args.set_resources[rule])
        assert resources["gpu"] == 0  # not counted against Snakemake's local gpu=1 limit
        assert _sbatch_gpu_options(resources) == "--gres=gpu:1"

    args = _effective_args("--profile", str(SLURM_PROFILE.parent), *NO_GPU)
    assert set(args.set_resources) == set(GPU_RULES)  # the option replaces the profile's mapping
    for rule in GPU_RULES:
        assert _sbatch_gpu_options(_resolved(args.set_resources[rule])) == ""
    # what happens without the gpu=0 entries: the rule's own gpu=1 becomes --gpus=1
    assert _sbatch_gpu_options({"gpu": 1}) == "--gpus=1"


# --- a real cluster --------------------------------------------------------------------------


def _cluster_with_debug_partition() -> str | None:
    """Why the cluster test cannot run here, or None when it can."""
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) installed"
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--partition", "debug", "--format", "%a %D"],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "sinfo does not answer"
    if out.returncode != 0:
        return f"sinfo fails: {out.stderr.strip()}"
    if not out.stdout.strip().startswith("up"):
        return "no partition 'debug' up (run: sudo bash tests/slurm/setup_local_slurm.sh)"
    return None


SPLITS = ["results/digits/balanced/split_seed0.parquet", "results/digits/exp10/split_seed0.parquet"]
RUN = "results/digits/exp10/ce/seed0"


@pytest.mark.slow
@pytest.mark.slurm
def test_smoke_targets_run_as_slurm_jobs(tmp_path):
    reason = _cluster_with_debug_partition()
    if reason:
        pytest.skip(reason)

    cmd = [
        SNAKEMAKE,
        "--snakefile", str(SNAKEFILE),
        "--directory", str(tmp_path),
        "--profile", str(SLURM_PROFILE.parent),
        "--configfile", str(SMOKE),
        *NO_GPU,  # the local test cluster has no GPUs (no GRES)
        # first status check after 5 s instead of 40 s, so the ~30 s jobs are seen done quickly
        # (the plugin then waits 10 s longer after each check that finds nothing finished)
        "--slurm-init-seconds-before-status-checks", "5",
        "--slurm-keep-successful-logs",
        *SPLITS, f"{RUN}/metrics.json",
    ]  # fmt: skip
    log_path = tmp_path / "snakemake.out"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
        try:
            proc.wait(timeout=540)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # Snakemake then scancels its jobs
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out = log_path.read_text()
    assert proc.returncode == 0, out[-4000:]

    # every job went through sbatch: "Job <n> has been submitted with SLURM jobid <id> (log: ...)"
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.", out))
    assert len(submitted) == 4, out[-4000:]  # prepare_dataset, make_split x2, train_model
    for jobid, slurm_log in submitted.items():
        slurm_log = Path(slurm_log)
        assert slurm_log.name == f"{jobid}.log"
        assert slurm_log.is_relative_to(tmp_path / ".snakemake" / "slurm_logs")
        assert "Finished jobid" in slurm_log.read_text()  # the job's own Snakemake finished it
    train_logs = list((tmp_path / ".snakemake/slurm_logs/rule_train_model").rglob("*.log"))
    assert [p.stem for p in train_logs] == [
        j for j, p in submitted.items() if "rule_train_model" in p
    ]

    # slurmctld still knows the training job (MinJobAge): the profile's request, minus the GPU
    state = subprocess.run(
        ["scontrol", "show", "job", train_logs[0].stem], capture_output=True, text=True
    )
    if state.returncode == 0:  # the job may have been purged on a cluster with a short MinJobAge
        assert "JobState=COMPLETED" in state.stdout
        defaults = yaml.safe_load(SLURM_PROFILE.read_text())["default-resources"]
        hours, minutes = divmod(defaults["runtime"], 60)
        assert f"Partition={defaults['slurm_partition']}" in state.stdout
        assert f"TimeLimit={hours:02d}:{minutes:02d}:00" in state.stdout
        assert f"mem={defaults['mem_mb']}M" in state.stdout
        assert "CPUs/Task=2" in state.stdout  # cpus_per_task: threads (train_model has 2)
        assert not re.search(r"gres[/:]gpu", state.stdout)

    for path in [
        "data/digits.npz",
        *SPLITS,
        f"{RUN}/metrics.json",
        f"{RUN}/model.pt",
        f"{RUN}/history.parquet",
    ]:
        assert (tmp_path / path).stat().st_size > 0, path
    assert "kept epoch" in (tmp_path / "logs/train/digits/exp10/ce/seed0.log").read_text()
