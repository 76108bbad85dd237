"""One GPU per job on a workstation: each GPU job claims a device before CUDA initialises.

Snakemake's ``--resources gpu=N`` only counts jobs: without this module every training and
embedding job would open ``cuda``, i.e. device 0, and N jobs would stack on one GPU. A GPU job
therefore calls :func:`claim_for_job` first thing. It takes one *slot*, an exclusive
``flock`` on a file ``gpu{device}.{k}@{host}`` of a folder (the workflow's is
``{results}/.gpu_slots``), and narrows ``CUDA_VISIBLE_DEVICES`` to that one device, so the
job's ``cuda`` is its own GPU. The host name in the file name keeps the slots of machines
that share a results folder (a cluster's shared filesystem) apart: ``gpu0`` of one node is not
``gpu0`` of another. The operating system drops a ``flock`` when the process ends,
however it ends (``kill -9``, a crash), so a killed job frees its GPU and no stale lock is left
to clean up. The lock file stays; only its lock matters.

The device chosen is the one with the fewest current holders (then the lowest position), and
within it the lowest free slot: N jobs on N devices get one device each, and more jobs than
devices (packing small models, ``--resources gpu=2N``) share the devices evenly. Claims are
made one at a time under ``claims.lock`` in the same folder, so two jobs starting together
cannot both count the same device as free.

Devices are, in this order: a ``gpus:`` list in the config (exported by the workflow as
``FRAGILITY_GPUS``), the entries of ``CUDA_VISIBLE_DEVICES`` when it is set, or every GPU
``nvidia-smi`` (else ``/proc/driver/nvidia/gpus``) lists, counted without initialising CUDA.
Indices mean ``nvidia-smi``'s (PCI bus) order: a claim sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
unless the environment already names an order, since CUDA's own default (fastest first)
numbers a machine with mixed GPUs differently.
Nothing is claimed, and the environment is left as it is, when there is nothing to choose:
a CPU device in the config or an explicit ``cuda:K``, no GPU at all, or a single visible GPU
(a SLURM job's ``--gres=gpu:1`` allocation, a one-GPU workstation).

A *GPU job* is one whose rule requested a GPU (the ``gpu`` resource, or a ``gres`` naming one
under SLURM) on a machine or node that advertises one (:func:`advertised_gpus`).
:func:`check_gpu_visible` stops such a job at once, in one line, when torch sees no GPU (a
CPU-only torch build, a driver older than the build's CUDA), instead of letting it train on
the CPU for hours past the runtime its cluster request was sized for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from fragility.errors import FragilityError

SLOTS_ENV = "FRAGILITY_GPU_SLOTS"  # the folder of the slot files (absolute)
GPUS_ENV = "FRAGILITY_GPUS"  # the config's `gpus:` list, comma-separated
# "1": the configured GPUs are stand-ins (bench/gpu_check.sh --tiny): slots are claimed as for
# real ones, and the jobs train on the CPU whatever the machine has
REHEARSAL_ENV = "FRAGILITY_GPU_REHEARSAL"
_HELD: list[Claim] = []  # claims of this process: their file descriptors hold the locks
_CONFIRMED: list[str] = []  # the GPU job check found torch's GPU (SLURM jobs claim no slot)
# environment variables in which SLURM hands a job its GPUs (gres/gpu)
SLURM_GPU_VARS = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "GPU_DEVICE_ORDINAL")


class GpuNotVisible(FragilityError):
    """A GPU job whose torch sees no GPU."""


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def host_name() -> str:
    """This machine's name as slot file names carry it (short name, file-safe)."""
    return _file_safe(socket.gethostname().split(".")[0] or "localhost")


@dataclass
class Claim:
    """A held slot: device ``device`` (an entry for ``CUDA_VISIBLE_DEVICES``), slot ``k``."""

    device: str
    k: int
    path: Path
    fd: int
    holders: int  # jobs on this device with this one
    host: str

    @property
    def name(self) -> str:
        return _slot_name(self.device, self.k, self.host)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with contextlib.suppress(ValueError):
            _HELD.remove(self)


def _listed_gpus() -> list[str]:
    """Every GPU of the machine, counted without initialising CUDA in this process."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
        return [line.strip() for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    proc = Path("/proc/driver/nvidia/gpus")
    n = len(list(proc.iterdir())) if proc.is_dir() else 0
    return [str(i) for i in range(n)]


def visible_devices(configured=None, environ=None) -> list[str]:
    """The devices jobs may use: ``configured`` (the config's ``gpus:``), else the entries of
    ``CUDA_VISIBLE_DEVICES``, else every GPU of the machine (possibly none)."""
    environ = os.environ if environ is None else environ
    if configured:
        return [str(d) for d in configured]
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = [e.strip() for e in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        # CUDA stops at the first invalid entry; "-1" (or "") is the usual way to hide all
        out = []
        for entry in entries:
            if not entry or entry.startswith("-"):
                break
            out.append(entry)
        return out
    return _listed_gpus()


def _slot_name(device: str, k: int, host: str) -> str:
    """The slot file's name, ``gpu{device}.{k}@{host}`` (a MIG device's name may hold a
    slash, made file-safe like the host's)."""
    return f"gpu{_file_safe(device)}.{k}@{host}"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _held_slots(folder: Path, devices: list[str], host: str) -> dict[str, set[int]]:
    """Per device of ``host``, the slots some process holds now (probed: a free slot's lock
    is taken and dropped at once; only called under ``claims.lock``)."""
    held: dict[str, set[int]] = {d: set() for d in devices}
    device_of = {f"gpu{_file_safe(d)}": d for d in devices}
    slot_file = re.compile(rf"^(?P<device>gpu.+)\.(?P<k>\d+)@{re.escape(host)}$")
    for path in folder.iterdir():
        match = slot_file.match(path.name)
        device = device_of.get(match["device"]) if match else None
        if device is None:
            continue
        fd = _try_lock(path)
        if fd is None:
            held[device].add(int(match["k"]))
        else:
            os.close(fd)
    return held


def claim(folder: str | Path, devices: list[str], host: str | None = None) -> Claim:
    """Take the free slot of the least-held device among ``devices`` of ``host`` (default:
    this machine) -- the lowest free slot of the first such device -- and keep it until this
    process ends or :meth:`Claim.release`."""
    if not devices:
        raise ValueError("no devices to claim a slot on")
    host = host or host_name()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mutex = os.open(folder / "claims.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(mutex, fcntl.LOCK_EX)  # released by close, or by the OS if killed
        held = _held_slots(folder, devices, host)
        device = min(devices, key=lambda d: (len(held[d]), devices.index(d)))
        k = next(k for k in range(len(held[device]) + 1) if k not in held[device])
        path = folder / _slot_name(device, k, host)
        fd = _try_lock(path)
        if fd is None:  # cannot happen under the mutex unless someone ignores it
            raise RuntimeError(f"slot {path} was taken while claims.lock was held")
    finally:
        os.close(mutex)
    taken = Claim(device, k, path, fd, len(held[device]) + 1, host)
    _HELD.append(taken)
    return taken


def claim_for_job(device: str = "auto", environ=None) -> Claim | None:
    """Before CUDA initialises: claim a device for this job and make it the only one CUDA
    sees (``CUDA_VISIBLE_DEVICES``). ``None``, and nothing changed, where there is nothing
    to choose (see the module's docstring). A failure to lock (a read-only or lock-less
    filesystem) is reported on stderr and the job goes on unclaimed: bookkeeping of devices
    must never fail a training."""
    environ = os.environ if environ is None else environ
    if device not in ("auto", "cuda") or SLOTS_ENV not in environ:
        return None
    configured = [d for d in environ.get(GPUS_ENV, "").split(",") if d]
    devices = visible_devices(configured, environ)
    if len(devices) < 2 and not configured:
        return None
    try:
        taken = claim(environ[SLOTS_ENV], devices)
    except OSError as error:
        print(f"gpu: no slot claimed ({error}); CUDA picks the device", file=sys.stderr)
        return None
    # indices are nvidia-smi's, which counts in PCI order; CUDA counts fastest first unless
    # told otherwise, so a list such as `gpus: [0, 2]` would name other GPUs on a machine
    # with mixed models. An order the user set is theirs to keep.
    environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    environ["CUDA_VISIBLE_DEVICES"] = taken.device
    print(
        f"gpu: slot {taken.name} of devices {','.join(devices)} ({taken.holders} job(s) on "
        f"it); CUDA_VISIBLE_DEVICES={taken.device} "
        f"CUDA_DEVICE_ORDER={environ['CUDA_DEVICE_ORDER']}",
        file=sys.stderr,
    )
    return taken


def device_record(device) -> dict:
    """What ``metrics.json`` records of the device a job ran on: ``device_index`` (the
    ``CUDA_VISIBLE_DEVICES`` entry of a CUDA device, i.e. the machine's index or UUID;
    ``None`` on a CPU), ``device_name`` (the GPU's name) and ``gpu_slot`` (the slot this
    process claimed, if any)."""
    import torch  # here: the workflow imports this module at start-up, which must not load torch

    device = torch.device(device)
    record = {"device_index": None, "device_name": None, "gpu_slot": None}
    if _HELD:
        record["gpu_slot"] = _HELD[-1].name
    if device.type != "cuda":
        return record
    index = device.index if device.index is not None else torch.cuda.current_device()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [] if visible is None else visible_devices(None, {"CUDA_VISIBLE_DEVICES": visible})
    record["device_index"] = entries[index] if index < len(entries) else str(index)
    record["device_name"] = torch.cuda.get_device_name(index)
    return record


# -- GPU jobs that cannot see their GPU ---------------------------------------------------------


def requests_gpu(resources) -> bool:
    """Whether a job's resources (a mapping, or Snakemake's ``resources``) ask for a GPU: the workflow's ``gpu`` count, or a SLURM
    ``gres`` that names one (``gpu:1``, ``gpu:a100:1``)."""
    try:
        count = int(resources.get("gpu", 0) or 0)
    except (TypeError, ValueError):
        count = 0
    return count > 0 or "gpu" in str(resources.get("gres", "") or "")


def advertised_gpus(environ=None) -> str | None:
    """What says this machine or node has a GPU, without initialising CUDA: a SLURM GPU
    allocation, the NVIDIA driver's GPU list, or NVIDIA device files; ``None`` for none of
    them. (A ``gpus:`` list or ``CUDA_VISIBLE_DEVICES`` alone is a wish, not a GPU.)"""
    environ = os.environ if environ is None else environ
    for var in SLURM_GPU_VARS:
        if environ.get(var):
            return f"SLURM allocated GPU {environ[var]} ({var})"
    proc = Path("/proc/driver/nvidia/gpus")
    listed = len(list(proc.iterdir())) if proc.is_dir() else 0
    if listed:
        return f"the NVIDIA driver lists {listed} GPU(s)"
    files = [p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit()]
    if files:
        return f"{len(files)} NVIDIA device file(s) in /dev"
    return None


def _driver_version() -> str:
    """The NVIDIA driver's version, from the kernel module or nvidia-smi, else why not."""
    version = Path("/proc/driver/nvidia/version")
    if version.is_file():
        match = re.search(r"Kernel Module\s+(\S+)", version.read_text(errors="replace"))
        if match:
            return match.group(1)
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.split()  # fmt: skip
        return out[0] if out else "nvidia-smi lists none"
    except (OSError, subprocess.SubprocessError):
        return "none found (no /proc/driver/nvidia/version, no nvidia-smi)"


def expects_gpu(device: str, gpu_requested: bool, environ=None) -> bool:
    """Whether a job must run on a GPU: the config names a CUDA device, or it is ``auto``
    in a GPU job (see the module's docstring). ``auto`` anywhere else means the CPU when
    torch sees no GPU; so does everything in a rehearsal (:data:`REHEARSAL_ENV`)."""
    environ = os.environ if environ is None else environ
    if environ.get(REHEARSAL_ENV) == "1":
        return False
    if str(device).startswith("cuda"):
        return True
    return str(device) == "auto" and gpu_requested and advertised_gpus(environ) is not None


def check_gpu_visible(device: str, gpu_requested: bool, job: str, environ=None) -> None:
    """Raise :class:`GpuNotVisible` (one line: what torch reports, the driver and
    ``CUDA_VISIBLE_DEVICES``) when this job must run on a GPU (:func:`expects_gpu`) and
    torch sees none. Call it after :func:`claim_for_job`."""
    environ = os.environ if environ is None else environ
    if not expects_gpu(device, gpu_requested, environ):
        return
    import torch  # here: the workflow imports this module at start-up, which must not load torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    if available and count > 0:
        _CONFIRMED.append(job)
        return
    # what torch warned while probing, e.g. "The NVIDIA driver on your system is too old"
    said = "; ".join(" ".join(str(w.message).split()) for w in caught)
    built = torch.version.cuda or "none: a CPU-only build"
    why = f"device {device}" if str(device).startswith("cuda") else "its rule requested a GPU"
    where = advertised_gpus(environ) or "no GPU advertised here"
    visible = environ.get("CUDA_VISIBLE_DEVICES", "unset")
    raise GpuNotVisible(
        f"{job}: a GPU job ({why}; {where}) but torch sees no GPU: torch {torch.__version__} "
        f"(built for CUDA {built}) reports {count} CUDA device(s)"
        f"{f' ({said})' if said else ''}; NVIDIA driver {_driver_version()}; "
        f"CUDA_VISIBLE_DEVICES={visible}. Install a torch build for this driver in the "
        f"job's environment, or set device: cpu to train on the CPU"
    )


def holds_gpu() -> bool:
    """Whether this process took a GPU of its own: a slot claimed, or a GPU job's check
    passed. Only then may a remedy's ``auto`` device mean CUDA."""
    return bool(_HELD or _CONFIRMED)
