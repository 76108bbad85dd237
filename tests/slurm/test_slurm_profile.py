"""The Snakemake profiles: profiles/default (local) and profiles/slurm (SLURM executor plugin).

The unmarked tests need no cluster: the profiles as Snakemake reads them, and a dry run under
profiles/slurm (bench/cluster_jobs.py: Snakemake's own grouping of the planned jobs). The
`slurm` tests start a one-node SLURM cluster with one (fake) GPU on this machine with
tests/slurm/setup_local_slurm.sh (as root, or through password-less sudo; Debian/Ubuntu
packages): smoke-preset targets run as the profile's group jobs and match a local run, and a
training requeued mid-run (`scontrol requeue`, as a preemption does) resumes and ends with the
weights of an uninterrupted run. Afterwards the daemons it started are stopped, by pid, and
the slurm.conf it wrote is removed (a cluster the script started before is restarted fresh,
then stopped as well). Where the cluster cannot be started they are skipped with the reason,
except under CI (CI=true), where they fail, with the daemons' logs when they did not come up.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
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
CLUSTER_JOBS = REPO / "bench" / "cluster_jobs.py"
RUN_WILDCARDS = ("dataset", "imbalance", "loss", "seed")


# --- no cluster needed -------------------------------------------------------------------------


def test_profiles_parse_and_the_slurm_one_uses_the_slurm_executor():
    default = yaml.safe_load(DEFAULT_PROFILE.read_text())
    slurm = yaml.safe_load(SLURM_PROFILE.read_text())
    assert "executor" not in default  # local runs use Snakemake's local executor
    assert default["resources"] == {"gpu": 1, "group_slot": 1}
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-status-command"] == "squeue"
    assert {"slurm_partition", "runtime", "mem_mb", "cpus_per_task"} <= set(
        slurm["default-resources"]
    )
    # a group job's jobs run one after another: each holds its group's one slot, counted per
    # group job (local scope), not across the cluster
    assert slurm["default-resources"]["group_slot"] == 1
    assert slurm["set-resource-scopes"] == {"group_slot": "local"}
    for rule in GPU_RULES:
        assert slurm["set-resources"][rule] == {"gpu": 0, "gres": "gpu:1"}
    # profiles/default is loaded next to profiles/slurm and wins on shared keys (see its header)
    assert not set(default) & set(slurm)
    assert slurm["retries"] == 2  # and the rules' resources grow with the attempt
    assert slurm["slurm-requeue"] is True  # sbatch --requeue: preempted jobs come back
    assert slurm["config"] == {"check_inputs": False}  # no shadow folders (see the profile)
    assert {slurm["groups"][rule] for rule in GPU_RULES} == {
        "gpu_{dataset}_{imbalance}_{loss}_{seed}"
    }


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


def _cluster_jobs(tmp_path, *args: str) -> dict:
    """bench/cluster_jobs.py's reading of a dry run under profiles/slurm."""
    out = tmp_path / "cluster_jobs.json"
    done = subprocess.run(
        [sys.executable, str(CLUSTER_JOBS), *args, "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _run_of(wildcards: dict) -> tuple | None:
    return tuple(wildcards[k] for k in RUN_WILDCARDS) if "seed" in wildcards else None


def test_a_dry_run_puts_each_run_in_one_gpu_job_and_one_cpu_job(tmp_path):
    plan = _cluster_jobs(tmp_path, "--base-config", "", "--configfile", str(SMOKE))
    runs = {("digits", "balanced", "ce", "0"), ("digits", "exp10", "ce", "0")}
    runs.add(("digits", "exp10", "ldam_drw", "0"))
    # one data job, and per run one GPU and one CPU job; nothing submitted on its own
    assert plan["groups_by_kind"] == {"cpu": 3, "data": 1, "gpu": 3}
    assert plan["submissions"] == 7 and plan["ungrouped_submissions"] == 0
    by_run = {}
    for group in plan["groups"]:
        kind, jobs = group["kind"], group["jobs"]
        if kind == "data":
            assert group["rules"] == {"make_split": 2, "prepare_dataset": 1}
            assert "gres" not in group["resources"]
            assert group["resources"]["cpus_per_task"] == 1  # one job at a time, 1 thread each
            continue
        (run,) = {_run_of(job["wildcards"]) for job in jobs}  # every job of one run
        assert (kind, run) not in by_run
        by_run[kind, run] = group
        if kind == "gpu":  # training and extraction, one GPU for both, CPUs of one job
            assert group["rules"] == {"extract_embeddings": 1, "train_model": 1}
            assert group["resources"]["gres"] == "gpu:1"
            assert group["resources"]["cpus_per_task"] == 2
        else:
            assert not {"train_model", "extract_embeddings"} & set(group["rules"])
            assert "gres" not in group["resources"]
            # the largest threads among its jobs (apply_remedy: 2), not --cores (4)
            cpus = 2 if "apply_remedy" in group["rules"] else 1
            assert group["resources"]["cpus_per_task"] == cpus, group
    assert set(by_run) == {(kind, run) for kind in ("gpu", "cpu") for run in runs}
    # the treated run's CPU job holds its remedies and their analyses; the balanced run has no RQ1
    treated = by_run["cpu", ("digits", "exp10", "ce", "0")]["rules"]
    assert treated["apply_remedy"] == 4 and treated["analyze_remedy_rq3"] == 4  # the preset's
    assert treated["bootstrap_run"] == treated["retrain_classifier"] == 1
    assert "retrain_classifier" not in by_run["cpu", ("digits", "balanced", "ce", "0")]["rules"]
    # what stays on the login node reads several runs: cross-run tables, claims, figures, summary
    local = set(plan["local_by_rule"])
    assert {"claims", "summary", "cross_run_table1", "plot_cross_run_figure"} <= local
    assert not local & {"plot_run_figure", "bootstrap_run", "retrain_classifier", "make_split"}
    assert not any(rule.startswith(("analyze_", "apply_")) for rule in local)
    assert plan["jobs"] == plan["local"] + sum(len(g["jobs"]) for g in plan["groups"])


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
# a data job (the .npz and both splits), the run's GPU job (training, extraction) and its CPU
# job (here RQ3's tables)
TARGETS = [*SPLITS, f"{RUN}/metrics.json", f"{RUN}/rq3/smallest_k.csv"]
# the local run beside the cluster one uses this machine's 2 cores; the cluster run is the
# README's command as written (profiles/default's --cores 4): its group jobs ask for the
# threads of their largest job, which the one-node test cluster's 2 CPUs satisfy
CORES = ["--cores", "2"]
# A local run on this GPU-less machine trains with one thread (rules/common.smk: CPU_ONLY), a
# cluster job that asks for a GPU with two: the local run is told the cluster's threads, so
# that the same seed and config give the same weights on both
SAME_THREADS = ["--set-threads", "train_model=2", "extract_embeddings=2"]
FAST_POLL = [  # first status check after 5 s, not 40 s, so the short jobs are seen done soon
    "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs",
]  # fmt: skip


def _snakemake(workdir: Path, *options: str, configfile=SMOKE, targets=TARGETS) -> subprocess.Popen:
    """Snakemake on the smoke preset's TARGETS in workdir; its output goes to workdir/snakemake.out."""
    cmd = [
        SNAKEMAKE, *targets,  # targets first: --configfile takes every value up to the next option
        "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir),
        "--configfile", str(configfile),
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


def _submitted(out: str) -> dict[str, str]:
    """SLURM job id -> its log: "Job <n> has been submitted with SLURM jobid <id> (log: ...)"."""
    return dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.", out))


def _scontrol_job(jobid: str) -> str:
    state = subprocess.run(
        ["scontrol", "--details", "show", "job", jobid], capture_output=True, text=True
    )
    assert state.returncode == 0, state.stderr  # MinJobAge=300 keeps finished jobs visible
    return state.stdout


def _memory_mb(job: str) -> int:
    """The job's memory in MB, as `scontrol show job` writes it (MinMemoryNode=3584M, =3.50G)."""
    value, unit = re.search(r"MinMemoryNode=([\d.]+)([MGT])", job).groups()
    return round(float(value) * {"M": 1, "G": 1024, "T": 1024**2}[unit])


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _same_weights(a: Path, b: Path) -> bool:
    ours, theirs = _weights(a), _weights(b)
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def _compare_results(a: Path, b: Path) -> subprocess.CompletedProcess:
    compare = [sys.executable, str(REPO / "bench" / "compare_results.py"), str(a), str(b)]
    return subprocess.run(compare, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.slurm
def test_smoke_targets_run_as_group_jobs_and_match_a_local_run(local_slurm, tmp_path):
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    on_slurm.mkdir()
    local.mkdir()
    # what Snakemake will submit, read from a dry run of the same targets
    plan = _cluster_jobs(tmp_path, *TARGETS, "--base-config", "", "--configfile", str(SMOKE))
    planned = {group["kind"]: group for group in plan["groups"]}
    assert plan["submissions"] == len(planned) == 3, plan
    local_proc = _snakemake(local, *CORES, *SAME_THREADS)  # a local run beside the cluster one
    # the README's command, no --cores
    slurm_proc = _snakemake(on_slurm, "--profile", str(SLURM_PROFILE.parent), *FAST_POLL)
    out = _finish(slurm_proc, on_slurm, timeout=540)
    local_out = _finish(local_proc, local, timeout=300)
    assert "submitted with SLURM jobid" not in local_out  # the local executor

    submitted = _submitted(out)
    kinds = {}
    for jobid, slurm_log in submitted.items():
        slurm_log = Path(slurm_log)
        assert slurm_log.name == f"{jobid}.log"
        assert slurm_log.is_relative_to(on_slurm / ".snakemake" / "slurm_logs")
        kind = re.match(r"group_(data|gpu|cpu)_", slurm_log.parent.name).group(1)
        kinds[kind] = jobid
        log = slurm_log.read_text()
        assert "Finished jobid" in log, log  # the job's own Snakemake finished its rules
        job = _scontrol_job(jobid)
        assert "JobState=COMPLETED" in job and "ExitCode=0:0" in job, job
        assert "Partition=debug" in job and "Requeue=1" in job  # sbatch --requeue (profile)
        # the group's request is what the rules' resource functions add up to
        hours, minutes = divmod(planned[kind]["resources"]["runtime"], 60)
        assert f"TimeLimit={hours:02d}:{minutes:02d}:00" in job, job
        assert _memory_mb(job) == planned[kind]["resources"]["mem_mb"], job
        assert f"CPUs/Task={planned[kind]['resources']['cpus_per_task']}" in job, job
        for rule in planned[kind]["rules"]:  # each of the group's rules ran in this job
            assert f"(Rule: {rule})" in log, (rule, log)
        # the cluster's task prolog prints the GPUs SLURM gave each step: the batch step, and
        # an srun step per rule that is not a localrule (the data and GPU jobs' rules; the
        # analyses, localrules, run in the batch step itself)
        steps = dict(re.findall(rf"gpu-check step {jobid}\.(\w+) CUDA_VISIBLE_DEVICES=(\S+)", log))
        if kind == "gpu":
            assert "TresPerNode=gres:gpu:1" in job and "JOB_GRES=gpu:1" in job, job
            assert steps == {"batch": "0", "0": "0", "1": "0"}  # training, then extraction
        else:
            assert not re.search(r"gres[/:]gpu", job), job
            assert set(steps.values()) == {"unset"} and "batch" in steps
            assert len(steps) == 1 + (kind == "data") * sum(planned[kind]["rules"].values())
    assert sorted(kinds) == ["cpu", "data", "gpu"] and len(submitted) == 3, out[-4000:]

    for path in ["data/digits.npz", *TARGETS, f"{RUN}/model.pt", f"{RUN}/history.parquet"]:
        assert (on_slurm / path).stat().st_size > 0, path
    assert "kept epoch" in (on_slurm / "results/logs/train/digits/exp10/ce/seed0.log").read_text()
    # the same seed and config give the same outputs on the cluster as locally (CPU training,
    # two threads on both): every split, metric, embedding and table, and the weights
    same = _compare_results(on_slurm / "results", local / "results")
    assert same.returncode == 0, same.stdout[-3000:]
    assert "; 0 unmatched" in same.stdout
    assert _same_weights(on_slurm / RUN / "model.pt", local / RUN / "model.pt")


EPOCHS = 16  # a fraction of a second each: the requeue lands with epochs still to go


@pytest.fixture(scope="module")
def long_training(tmp_path_factory) -> Path:
    """The smoke preset with its exp10 ce run alone, trained for EPOCHS epochs."""
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"] = [{"dataset": "digits", "imbalance": ["exp10"], "loss": ["ce"], "seeds": [0]}]
    config["training"]["epochs"] = EPOCHS
    del config["remedies"]
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _requeue_after_two_epochs(workdir: Path, proc: subprocess.Popen) -> str:
    """Wait until the run's GPU job has finished two epochs (its resume state was replaced
    twice), then requeue it as a preemption would; the job's SLURM id."""
    resume, seen = workdir / RUN / ".resume.pt", set()
    deadline = time.monotonic() + 300
    while len(seen) < 2:
        with contextlib.suppress(FileNotFoundError):
            seen.add(resume.stat().st_ino)  # each epoch's state is a new file (os.replace)
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("training ended before the requeue or never started:\n"
                        + (workdir / "snakemake.out").read_text()[-3000:])  # fmt: skip
        time.sleep(0.01)
    out = (workdir / "snakemake.out").read_text()
    (jobid,) = [j for j, log in _submitted(out).items() if "/group_gpu_" in log]
    requeue = subprocess.run(["scontrol", "requeue", jobid], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr  # possible because sbatch got --requeue
    # SLURM holds a requeued job back for about two minutes (Reason=BeginTime): start it now
    deadline = time.monotonic() + 60
    while "JobState=PENDING" not in _scontrol_job(jobid) and time.monotonic() < deadline:
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], check=True)
    return jobid


def _not_requeueable_without_the_profile() -> str:
    """What `scontrol requeue` says to a job submitted without --requeue on this cluster
    (JobRequeue=0, as on many sites)."""
    jobid = subprocess.run(
        ["sbatch", "--parsable", "--partition", "debug", "--time", "2", "--output", "/dev/null",
         "--wrap", "sleep 60"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        requeue = subprocess.run(["scontrol", "requeue", jobid], capture_output=True, text=True)
        return requeue.stderr if requeue.returncode else "requeued"
    finally:
        subprocess.run(["scancel", jobid], check=False)


@pytest.mark.slow
@pytest.mark.slurm
def test_a_training_requeued_mid_run_resumes_and_ends_as_an_uninterrupted_one(
    local_slurm, long_training, tmp_path
):
    assert "disabled" in _not_requeueable_without_the_profile()
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    on_slurm.mkdir()
    local.mkdir()
    targets = [f"{RUN}/metrics.json", f"{RUN}/embeddings/test.parquet"]  # the GPU group job
    local_proc = _snakemake(local, *CORES, *SAME_THREADS, configfile=long_training, targets=targets)
    slurm_proc = _snakemake(
        on_slurm, "--profile", str(SLURM_PROFILE.parent), *FAST_POLL,
        configfile=long_training, targets=targets,
    )  # fmt: skip
    jobid = _requeue_after_two_epochs(on_slurm, slurm_proc)
    out = _finish(slurm_proc, on_slurm, timeout=540)
    _finish(local_proc, local, timeout=300)

    job = _scontrol_job(jobid)
    assert "Restarts=1" in job and "JobState=COMPLETED" in job, job  # the same job, run twice
    assert list(_submitted(out)).count(jobid) == 1  # Snakemake waited for it, submitted no other
    log = (on_slurm / "results/logs/train/digits/exp10/ce/seed0.log").read_text()
    resumed = re.search(r"resuming from epoch (\d+)", log)  # the rerun's log
    assert resumed and 2 <= int(resumed.group(1)) < EPOCHS, log
    assert not (on_slurm / RUN / ".resume.pt").exists()  # removed when the training completed

    history = {d: pq.read_table(d / RUN / "history.parquet").to_pydict() for d in (on_slurm, local)}
    assert history[on_slurm]["epoch"] == list(range(1, EPOCHS + 1))  # continuous
    for column in ("loss", "test_bac", "train_acc", "fe_grad_norm"):
        assert history[on_slurm][column] == history[local][column], column
    assert _same_weights(on_slurm / RUN / "model.pt", local / RUN / "model.pt")
    ours, theirs = (json.loads((d / RUN / "metrics.json").read_text()) for d in (on_slurm, local))
    for key in ("bac", "per_class_accuracy", "kept_epoch", "config_hash"):
        assert ours[key] == theirs[key], key
    test = {d: pq.read_table(d / RUN / "embeddings/test.parquet") for d in (on_slurm, local)}
    assert test[on_slurm].equals(test[local])  # extraction, after the resumed training


@pytest.mark.slow
@pytest.mark.slurm
def test_a_request_no_node_can_satisfy_stops_before_submission_in_one_line(local_slurm, tmp_path):
    """A training asking for 4 threads on the 2-CPU test cluster: its GPU group job could
    never start. The run stops before its first sbatch, in one line naming the group job,
    its request and the partition's limit."""
    proc = _snakemake(
        tmp_path, "--profile", str(SLURM_PROFILE.parent), "--set-threads", "train_model=4",
        targets=[f"{RUN}/metrics.json"],
    )  # fmt: skip
    proc.wait(timeout=300)
    out = (tmp_path / "snakemake.out").read_text()
    assert proc.returncode != 0, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("cluster error:")]
    assert len(errors) == 1, out[-3000:]
    assert errors[0].startswith(
        "cluster error: group job gpu_digits_exp10_ce_0 (1 job: train_model) asks partition "
        "debug for 4 CPUs on one node, but its nodes offer at most 2 CPUs, so it would wait "
        "in the queue forever."
    ), errors[0]
    assert "Traceback" not in out and "submitted with SLURM jobid" not in out
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    assert queue.returncode == 0 and queue.stdout.strip() == "", queue.stdout


@pytest.mark.slow
@pytest.mark.slurm
def test_a_gpu_job_whose_torch_sees_no_gpu_fails_at_once_in_one_line(local_slurm, tmp_path):
    """device: auto on the test cluster, whose one GPU is a stand-in: SLURM hands the GPU
    job a GPU (CUDA_VISIBLE_DEVICES=0, SLURM_JOB_GPUS=0) that torch cannot see. The training
    ends before its first epoch with one line, instead of training on the CPU."""
    proc = _snakemake(
        tmp_path, "--profile", str(SLURM_PROFILE.parent), *FAST_POLL, "--retries", "0",
        "--config", "device=auto", targets=[f"{RUN}/metrics.json"],
    )  # fmt: skip
    proc.wait(timeout=400)
    out = (tmp_path / "snakemake.out").read_text()
    assert proc.returncode != 0, out[-3000:]
    log = (tmp_path / "results/logs/train/digits/exp10/ce/seed0.log").read_text()
    last = log.strip().splitlines()[-1]
    assert last.startswith("error: train_model digits/exp10/ce/seed0: a GPU job (its rule "
                           "requested a GPU; SLURM allocated GPU 0"), log  # fmt: skip
    assert "torch sees no GPU" in last and "CUDA_VISIBLE_DEVICES=0" in last, last
    assert "Traceback" not in log and "epoch" not in log
    assert not (tmp_path / RUN / "model.pt").exists()
