"""The GPU slot picker (fragility.training.gpus) with a fake device list and no GPU: every holder is a
real process, as every GPU job of a workflow is, and the locks are the operating system's."""

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from fragility.training import gpus

HOST = gpus.host_name()

# A job: claim a slot as a workflow script does, report the device CUDA would see, then hold
# the slot until stdin closes (or the process is killed).
HOLDER = textwrap.dedent(
    """
    import os, sys
    from fragility.training.gpus import claim_for_job
    taken = claim_for_job(sys.argv[1])
    print(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"), taken and taken.name, flush=True)
    sys.stdin.read()
    """
)


def _env(slots, devices="0,1,2"):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "FRAGILITY_"))}
    env.update({gpus.SLOTS_ENV: str(slots), gpus.GPUS_ENV: devices})
    return env


def _start(slots, devices="0,1,2", device="auto"):
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, device],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(slots, devices),
    )  # fmt: skip


def _device_of(proc) -> str:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return line.split()[0]


@pytest.fixture
def holders():
    procs = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


def test_jobs_started_together_get_distinct_devices(tmp_path, holders):
    holders += [_start(tmp_path) for _ in range(3)]  # all three race for a slot
    assert sorted(_device_of(p) for p in holders) == ["0", "1", "2"]


def test_a_killed_holder_frees_its_device(tmp_path, holders):
    holders += [_start(tmp_path, "0,1") for _ in range(2)]
    devices = {_device_of(p): p for p in holders}
    assert set(devices) == {"0", "1"}
    devices["1"].send_signal(signal.SIGKILL)  # no cleanup runs: the OS drops its flock
    devices["1"].wait(timeout=30)
    holders.append(_start(tmp_path, "0,1"))
    assert _device_of(holders[-1]) == "1"  # not a second job on device 0


def test_more_jobs_than_devices_share_them_evenly(tmp_path, holders):
    seen = Counter()
    for n in range(1, 6):  # one after another: each sees the ones before it
        holders.append(_start(tmp_path, "0,1"))
        seen[_device_of(holders[-1])] += 1
        assert sorted(seen.values(), reverse=True) == [(n + 1) // 2, n // 2][: len(seen)]
    # the third job took the second slot of the first device, and so on; each file names
    # this machine
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != "claims.lock")
    assert names == [f"gpu{s}@{HOST}" for s in ("0.0", "0.1", "0.2", "1.0", "1.1")]


def test_a_freed_slot_is_refilled_before_a_busier_device_gets_another(tmp_path):
    first = gpus.claim(tmp_path, ["0", "1"])
    second = gpus.claim(tmp_path, ["0", "1"])
    third = gpus.claim(tmp_path, ["0", "1"])
    assert [c.name for c in (first, second, third)] == [
        f"gpu0.0@{HOST}",
        f"gpu1.0@{HOST}",
        f"gpu0.1@{HOST}",
    ]
    first.release()  # device 0 keeps slot 1, device 1 has slot 0: one job each
    fourth = gpus.claim(tmp_path, ["0", "1"])
    assert (fourth.device, fourth.holders) == ("0", 2) and fourth.name == f"gpu0.0@{HOST}"
    for claim in (second, third, fourth):
        claim.release()


def test_nothing_is_claimed_or_changed_where_there_is_nothing_to_choose(tmp_path):
    def claimed(device="auto", **env):
        environ = {gpus.SLOTS_ENV: str(tmp_path), **env}
        before = dict(environ)
        taken = gpus.claim_for_job(device, environ)
        if taken is None:
            assert environ == before  # CUDA_VISIBLE_DEVICES untouched
        else:
            taken.release()
        return taken

    assert claimed(CUDA_VISIBLE_DEVICES="") is None  # a CPU-only machine (devices hidden)
    assert claimed(CUDA_VISIBLE_DEVICES="0") is None  # one GPU: a SLURM job's, a laptop's
    assert claimed("cpu", **{gpus.GPUS_ENV: "0,1"}) is None
    assert claimed("cuda:1", **{gpus.GPUS_ENV: "0,1"}) is None  # the config chose one
    assert claimed(CUDA_VISIBLE_DEVICES="2,3") is not None
    assert gpus.claim_for_job("auto", {gpus.GPUS_ENV: "0,1"}) is None  # outside a workflow


def test_visible_devices_follow_the_config_then_cuda_visible_devices():
    assert gpus.visible_devices([2, 3], {"CUDA_VISIBLE_DEVICES": "0"}) == ["2", "3"]
    assert gpus.visible_devices(None, {"CUDA_VISIBLE_DEVICES": "3,1"}) == ["3", "1"]
    uuid = "GPU-8f6b3c2a-0000-4000-8000-000000000000"
    assert gpus.visible_devices(None, {"CUDA_VISIBLE_DEVICES": f"{uuid},1"}) == [uuid, "1"]
    # CUDA ignores everything from the first invalid entry on
    assert gpus.visible_devices(None, {"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]
    assert gpus.visible_devices(None, {"CUDA_VISIBLE_DEVICES": ""}) == []


def test_a_claim_narrows_cuda_visible_devices_to_an_entry_of_the_callers_list(tmp_path):
    environ = {gpus.SLOTS_ENV: str(tmp_path), "CUDA_VISIBLE_DEVICES": "5,7"}
    taken = gpus.claim_for_job("cuda", environ)
    try:
        assert environ["CUDA_VISIBLE_DEVICES"] == taken.device == "5"
        assert environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # nvidia-smi's numbering
    finally:
        taken.release()


def test_every_device_list_is_read_in_pci_order_unless_the_user_chose_an_order(tmp_path):
    """CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi, and so the indices
    users write, count in PCI order. A configured list, an inherited CUDA_VISIBLE_DEVICES
    and an enumerated machine all get PCI_BUS_ID; an order already set is kept."""
    cases = [
        ({gpus.GPUS_ENV: "0,2"}, "PCI_BUS_ID"),
        ({"CUDA_VISIBLE_DEVICES": "2,0"}, "PCI_BUS_ID"),
        ({gpus.GPUS_ENV: "0,2", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}, "FASTEST_FIRST"),
    ]
    for extra, order in cases:
        environ = {gpus.SLOTS_ENV: str(tmp_path), **extra}
        taken = gpus.claim_for_job("auto", environ)
        try:
            assert environ["CUDA_DEVICE_ORDER"] == order, extra
            assert environ["CUDA_VISIBLE_DEVICES"] == taken.device
        finally:
            taken.release()


def test_machines_sharing_a_results_folder_do_not_take_each_others_slots(tmp_path):
    """Two nodes with a shared results folder: gpu0 of one is not gpu0 of the other."""
    a = gpus.claim(tmp_path, ["0"], host="node-a")
    b = gpus.claim(tmp_path, ["0"], host="node-b")  # node-a's lock does not count here
    again = gpus.claim(tmp_path, ["0"], host="node-a")
    try:
        assert (a.name, b.name, again.name) == ("gpu0.0@node-a", "gpu0.0@node-b", "gpu0.1@node-a")
        assert (a.holders, b.holders, again.holders) == (1, 1, 2)
    finally:
        for claim in (a, b, again):
            claim.release()


def test_the_cpu_device_record_has_no_index_or_name_but_the_slot():
    record = gpus.device_record("cpu")
    assert record == {"device_index": None, "device_name": None, "gpu_slot": None}


def test_a_held_claim_is_seen_by_another_process(tmp_path, holders):
    mine = gpus.claim(tmp_path, ["0"])
    holders.append(_start(tmp_path, "0"))  # a configured list of one is still claimed
    assert holders[-1].stdout.readline().split() == ["0", f"gpu0.1@{HOST}"]
    mine.release()


# -- on a machine with GPUs (bench/gpu_check.sh runs these there) ------------------------------

GPU_HOLDER = textwrap.dedent(
    """
    import sys
    from fragility.training.gpus import claim_for_job
    claim_for_job("cuda")
    import torch
    x = torch.ones(1, device="cuda")  # CUDA initialises now, on the claimed device only
    print(torch.cuda.device_count(), torch.cuda.get_device_properties(0).uuid, flush=True)
    sys.stdin.read()
    """
)


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(_cuda_devices() < 1, reason="needs a CUDA device")
def test_a_gpu_job_records_the_device_it_ran_on():
    import torch

    record = gpus.device_record("cuda")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    assert record["device_index"] == (visible.split(",")[0] if visible else "0")
    assert record["device_name"] == torch.cuda.get_device_name(0)


@pytest.mark.skipif(_cuda_devices() < 2, reason="needs two CUDA devices")
def test_two_gpu_jobs_started_together_run_on_two_gpus(tmp_path, holders):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAGILITY_")}
    env[gpus.SLOTS_ENV] = str(tmp_path)
    for _ in range(2):
        holders.append(
            subprocess.Popen(
                [sys.executable, "-c", GPU_HOLDER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )  # fmt: skip
        )
    seen = [p.stdout.readline().split() for p in holders]
    assert all(s and s[0] == "1" for s in seen), [p.stderr.read() for p in holders]  # one each
    assert seen[0][1] != seen[1][1]  # two different GPUs (their UUIDs)


def test_device_names_that_are_no_file_names_still_get_their_own_slots(tmp_path):
    mig = ["MIG-GPU-8f6b3c2a/1/0", "MIG-GPU-8f6b3c2a/2/0"]  # an older driver's MIG names
    taken = [gpus.claim(tmp_path, mig) for _ in range(3)]
    assert [c.device for c in taken] == [mig[0], mig[1], mig[0]]
    assert taken[2].name == f"gpuMIG-GPU-8f6b3c2a_1_0.1@{HOST}" and taken[2].path.exists()
    for claim in taken:
        claim.release()


# -- a GPU job that cannot see its GPU ------------------------------------------------------

NO_CUDA = pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="needs a machine where torch sees no GPU"
)
SLURM_GPU = {"SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}  # what SLURM hands a gres job


def test_a_job_asks_for_a_gpu_through_the_gpu_resource_or_a_slurm_gres():
    assert gpus.requests_gpu({"gpu": 1})
    assert gpus.requests_gpu({"gpu": 0, "gres": "gpu:1"})  # profiles/slurm's GPU rules
    assert gpus.requests_gpu({"gres": "gpu:a100:1"})
    assert not gpus.requests_gpu({"gpu": 0})
    assert not gpus.requests_gpu({"gres": "", "mem_mb": 1000})


def test_only_a_slurm_allocation_or_the_driver_advertises_a_gpu():
    assert (
        gpus.advertised_gpus({"SLURM_STEP_GPUS": "1"}) == "SLURM allocated GPU 1 (SLURM_STEP_GPUS)"
    )
    # a gpus: list or CUDA_VISIBLE_DEVICES alone is no GPU (this machine has no driver)
    if gpus.advertised_gpus({}) is None:
        assert gpus.advertised_gpus({"CUDA_VISIBLE_DEVICES": "0", gpus.GPUS_ENV: "0,1"}) is None


@NO_CUDA
def test_a_gpu_job_that_torch_cannot_see_its_gpu_in_stops_in_one_line():
    with pytest.raises(gpus.GpuNotVisible) as stopped:
        gpus.check_gpu_visible("auto", True, "train_model digits/exp10/ce/seed0", SLURM_GPU)
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("train_model digits/exp10/ce/seed0: a GPU job (its rule requested")
    assert "SLURM allocated GPU 0 (SLURM_JOB_GPUS)" in message
    import torch

    assert f"torch {torch.__version__} (built for CUDA " in message
    assert "reports 0 CUDA device(s)" in message and "NVIDIA driver " in message
    assert "CUDA_VISIBLE_DEVICES=0" in message
    # an explicit CUDA device needs a GPU wherever it runs
    with pytest.raises(gpus.GpuNotVisible, match="a GPU job \\(device cuda:0; no GPU advertised"):
        gpus.check_gpu_visible("cuda:0", False, "job", {})


@NO_CUDA
def test_auto_means_the_cpu_where_no_gpu_is_requested_or_advertised():
    gpus.check_gpu_visible("auto", False, "job", SLURM_GPU)  # no gpu resource: a CPU job
    if gpus.advertised_gpus({}) is None:  # nothing advertises one: the CPU (a rehearsal)
        gpus.check_gpu_visible("auto", True, "job", {"CUDA_VISIBLE_DEVICES": "0"})
    gpus.check_gpu_visible("cpu", True, "job", SLURM_GPU)  # the config chose the CPU
    rehearsal = {**SLURM_GPU, gpus.REHEARSAL_ENV: "1"}  # gpu_check --tiny: stand-in GPUs
    gpus.check_gpu_visible("cuda", True, "job", rehearsal)
    assert not gpus.holds_gpu()


def test_a_gpu_job_that_sees_its_gpu_goes_on_and_holds_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(gpus, "_CONFIRMED", [])
    gpus.check_gpu_visible("auto", True, "job", SLURM_GPU)
    assert gpus.holds_gpu()


@pytest.mark.slow
@NO_CUDA
def test_a_workflow_training_on_a_gpu_node_whose_torch_sees_no_gpu_fails_at_once(tmp_path):
    """A GPU job as SLURM starts one (SLURM_JOB_GPUS, CUDA_VISIBLE_DEVICES) with a torch
    that sees no GPU: the training job ends in one line before any epoch, instead of
    training on the CPU."""
    import os

    from snakemake_cli import SMOKE, snakemake_command

    target = "results/digits/exp10/ce/seed0/metrics.json"
    cmd = snakemake_command(tmp_path, SMOKE, target, "--config", "device=auto")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "SLURM_"))}
    env.update(SLURM_GPU, PYTHONUNBUFFERED="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode != 0, done.stderr[-3000:]
    log = (tmp_path / "results/logs/train/digits/exp10/ce/seed0.log").read_text()
    last = log.strip().splitlines()[-1]
    assert last.startswith("error: train_model digits/exp10/ce/seed0: a GPU job"), log
    assert "torch sees no GPU" in last and "CUDA_VISIBLE_DEVICES=0" in last
    assert "Traceback" not in log and "epoch" not in log
    assert not (tmp_path / "results/digits/exp10/ce/seed0/model.pt").exists()
