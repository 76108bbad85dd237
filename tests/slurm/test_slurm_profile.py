"""The Snakemake profiles: profiles/default (local) and profiles/slurm (SLURM executor plugin).

The unmarked tests need no cluster. The `slurm` test starts a one-node SLURM cluster with one
(fake) GPU on this machine with tests/slurm/setup_local_slurm.sh (as root, or through
password-less sudo; Debian/Ubuntu packages), runs smoke-preset targets through
`--profile profiles/slurm`, compares them with a local run, stops the daemons it started, by
pid, and removes the slurm.conf it wrote (a cluster the script started before is restarted
fresh, then stopped as well). Where the cluster cannot be started it is skipped with the
reason, except under CI (CI=true), where it fails, with the daemons' logs when they did not
come up.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
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

SETUP = Path(__file__).with_name("setup_local_slurm.sh")
PID_DIR = Path("/run/slurm-local")  # the script's default: where it records the pids it started
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _as_root() -> tuple[list[str] | None, str]:
    """The prefix that runs the setup script as root, or None and why not."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        return None, "no apt (the test cluster is installed from Debian/Ubuntu packages)"
    if os.geteuid() == 0:
        return [], ""
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "true"], capture_output=True).returncode == 0:
        return [sudo, "-n"], ""
    return None, "not root and no password-less sudo (the test cluster needs root)"


@pytest.fixture(scope="module")
def local_slurm():
    """A fresh one-node cluster (partition debug, gpu:1) for this module; stopped by pid after."""
    prefix, reason = _as_root()
    if prefix is None:
        if IN_CI:
            pytest.fail(f"CI must run the SLURM test, but cannot start the cluster: {reason}")
        pytest.skip(reason)
    start = subprocess.run(
        [*prefix, "bash", str(SETUP)], capture_output=True, text=True, timeout=900
    )
    if start.returncode != 0:  # its stderr holds the daemons' logs
        pytest.fail(f"{SETUP.name} failed:\n{start.stdout}{start.stderr}", pytrace=False)
    pids = {p.stem: int(p.read_text()) for p in PID_DIR.glob("*.pid")}
    assert {"slurmctld", "slurmd"} <= set(pids), start.stderr  # munged only if it started it
    try:
        yield pids
    finally:
        stop = subprocess.run(
            [*prefix, "bash", str(SETUP), "--stop"], capture_output=True, text=True, timeout=120
        )
        assert stop.returncode == 0, stop.stderr
        assert not list(PID_DIR.glob("*.pid"))
        for name, pid in pids.items():
            assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still runs"
        # its config is gone too: a slurm.conf without a controller slows every Snakemake start
        assert not Path("/etc/slurm/slurm.conf").exists(), stop.stderr


SPLITS = ["results/digits/balanced/split_seed0.parquet", "results/digits/exp10/split_seed0.parquet"]
RUN = "results/digits/exp10/ce/seed0"
TARGETS = [*SPLITS, f"{RUN}/metrics.json"]


def _snakemake(workdir: Path, *options: str) -> subprocess.Popen:
    """Snakemake on the smoke preset's TARGETS in workdir; its output goes to workdir/snakemake.out."""
    cmd = [
        SNAKEMAKE, *TARGETS,  # targets first: --configfile takes every value up to the next option
        "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir),
        "--configfile", str(SMOKE),
        *options,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # every GPU the jobs see comes from SLURM (sbatch passes the submitting environment on)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    with (workdir / "snakemake.out").open("w") as out:
        return subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen, workdir: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # Snakemake then scancels its SLURM jobs
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    out = (workdir / "snakemake.out").read_text()
    assert proc.returncode == 0, out[-4000:]
    return out


def _planned_jobs(out: str) -> int:
    """The 'total' of the 'Job stats' table Snakemake prints before running."""
    return int(re.search(r"^total\s+(\d+)$", out, re.MULTILINE).group(1))


def _scontrol_job(jobid: str) -> str:
    state = subprocess.run(
        ["scontrol", "--details", "show", "job", jobid], capture_output=True, text=True
    )
    assert state.returncode == 0, state.stderr  # MinJobAge=300 keeps finished jobs visible
    return state.stdout


@pytest.mark.slow
@pytest.mark.slurm
def test_smoke_targets_run_as_slurm_jobs_and_match_a_local_run(local_slurm, tmp_path):
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    on_slurm.mkdir()
    local.mkdir()
    local_proc = _snakemake(local)  # plain local run (profiles/default), alongside the cluster one
    slurm_proc = _snakemake(
        on_slurm,
        "--profile", str(SLURM_PROFILE.parent),
        # first status check after 5 s instead of 40 s, so the ~10 s jobs are seen done quickly
        # (the plugin then waits 10 s longer after each check that finds nothing finished)
        "--slurm-init-seconds-before-status-checks", "5",
        "--slurm-keep-successful-logs",
    )  # fmt: skip
    out = _finish(slurm_proc, on_slurm, timeout=540)
    local_out = _finish(local_proc, local, timeout=300)
    assert "submitted with SLURM jobid" not in local_out  # the local executor

    # every job went through sbatch: "Job <n> has been submitted with SLURM jobid <id> (log: ...)"
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.", out))
    assert len(submitted) == _planned_jobs(out) == 4, out[-4000:]  # data, 2 splits, training
    defaults = yaml.safe_load(SLURM_PROFILE.read_text())["default-resources"]
    hours, minutes = divmod(defaults["runtime"], 60)
    for jobid, slurm_log in submitted.items():
        slurm_log = Path(slurm_log)
        assert slurm_log.name == f"{jobid}.log"
        assert slurm_log.is_relative_to(on_slurm / ".snakemake" / "slurm_logs")
        log = slurm_log.read_text()
        assert "Finished jobid" in log, log  # the job's own Snakemake finished its rule
        job = _scontrol_job(jobid)
        assert "JobState=COMPLETED" in job and "ExitCode=0:0" in job, job
        assert f"Partition={defaults['slurm_partition']}" in job
        assert f"TimeLimit={hours:02d}:{minutes:02d}:00" in job
        assert f"mem={defaults['mem_mb']}M" in job
        # the cluster's task prolog prints, for each step, the GPUs SLURM gave it; step 0 is the
        # srun in which the job's Snakemake runs the rule
        step = re.search(rf"gpu-check step {jobid}\.0 CUDA_VISIBLE_DEVICES=(\S+)", log)
        assert step, log
        if "/rule_train_model/" in str(slurm_log):
            assert "TresPerNode=gres:gpu:1" in job and "JOB_GRES=gpu:1" in job, job
            assert "CPUs/Task=2" in job  # cpus_per_task: threads (train_model has 2)
            assert step.group(1) == "0"  # the training step was handed the GPU
        else:
            assert not re.search(r"gres[/:]gpu", job), job
            assert step.group(1) == "unset"
    assert sum("/rule_train_model/" in p for p in submitted.values()) == 1

    for path in ["data/digits.npz", *TARGETS, f"{RUN}/model.pt", f"{RUN}/history.parquet"]:
        assert (on_slurm / path).stat().st_size > 0, path
    assert "kept epoch" in (on_slurm / "results/logs/train/digits/exp10/ce/seed0.log").read_text()

    # the same seed and config give the same outputs on the cluster as locally (CPU training)
    for split in SPLITS:
        ours, theirs = pq.read_table(on_slurm / split), pq.read_table(local / split)
        assert ours.num_rows > 0
        assert ours.to_pylist() == theirs.to_pylist(), split
    ours, theirs = (json.loads((d / RUN / "metrics.json").read_text()) for d in (on_slurm, local))
    for key in ("bac", "per_class_accuracy", "kept_epoch", "classes", "config_hash"):
        assert ours[key] == theirs[key], key
