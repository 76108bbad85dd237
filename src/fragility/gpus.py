"""One GPU per job on a workstation: each GPU job claims a device before CUDA initialises.

Snakemake's ``--resources gpu=N`` only counts jobs: without this module every training and
embedding job would open ``cuda``, i.e. device 0, and N jobs would stack on one GPU. A GPU job
therefore calls :func:`claim_for_job` first thing. It takes one *slot*, an exclusive
``flock`` on a file ``gpu{device}.{k}`` of a folder (the workflow's is
``{results}/.gpu_slots``), and narrows ``CUDA_VISIBLE_DEVICES`` to that one device, so the
job's ``cuda`` is its own GPU. The operating system drops a ``flock`` when the process ends,
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
Nothing is claimed, and the environment is left as it is, when there is nothing to choose:
a CPU device in the config or an explicit ``cuda:K``, no GPU at all, or a single visible GPU
(a SLURM job's ``--gres=gpu:1`` allocation, a one-GPU workstation).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SLOTS_ENV = "FRAGILITY_GPU_SLOTS"  # the folder of the slot files (absolute)
GPUS_ENV = "FRAGILITY_GPUS"  # the config's `gpus:` list, comma-separated
_SLOT_FILE = re.compile(r"^gpu(?P<device>.+)\.(?P<k>\d+)$")
_HELD: list[Claim] = []  # claims of this process: their file descriptors hold the locks


@dataclass
class Claim:
    """A held slot: device ``device`` (an entry for ``CUDA_VISIBLE_DEVICES``), slot ``k``."""

    device: str
    k: int
    path: Path
    fd: int
    holders: int  # jobs on this device with this one

    @property
    def name(self) -> str:
        return _slot_name(self.device, self.k)

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


def _slot_name(device: str, k: int) -> str:
    """The slot file's name (a MIG device's name may hold a slash)."""
    return f"gpu{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.{k}"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _held_slots(folder: Path, devices: list[str]) -> dict[str, set[int]]:
    """Per device, the slots some process holds now (probed: a free slot's lock is taken and
    dropped at once; only called under ``claims.lock``)."""
    held: dict[str, set[int]] = {d: set() for d in devices}
    device_of = {_slot_name(d, 0).removesuffix(".0"): d for d in devices}
    for path in folder.iterdir():
        match = _SLOT_FILE.match(path.name)
        device = device_of.get(f"gpu{match['device']}") if match else None
        if device is None:
            continue
        fd = _try_lock(path)
        if fd is None:
            held[device].add(int(match["k"]))
        else:
            os.close(fd)
    return held


def claim(folder: str | Path, devices: list[str]) -> Claim:
    """Take the free slot of the least-held device among ``devices`` (the lowest free slot
    of the first such device) and keep it until this process ends or :meth:`Claim.release`."""
    if not devices:
        raise ValueError("no devices to claim a slot on")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mutex = os.open(folder / "claims.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(mutex, fcntl.LOCK_EX)  # released by close, or by the OS if killed
        held = _held_slots(folder, devices)
        device = min(devices, key=lambda d: (len(held[d]), devices.index(d)))
        k = next(k for k in range(len(held[device]) + 1) if k not in held[device])
        path = folder / _slot_name(device, k)
        fd = _try_lock(path)
        if fd is None:  # cannot happen under the mutex unless someone ignores it
            raise RuntimeError(f"slot {path} was taken while claims.lock was held")
    finally:
        os.close(mutex)
    taken = Claim(device, k, path, fd, len(held[device]) + 1)
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
    enumerated = not configured and "CUDA_VISIBLE_DEVICES" not in environ
    devices = visible_devices(configured, environ)
    if len(devices) < 2 and not configured:
        return None
    try:
        taken = claim(environ[SLOTS_ENV], devices)
    except OSError as error:
        print(f"gpu: no slot claimed ({error}); CUDA picks the device", file=sys.stderr)
        return None
    if enumerated:  # nvidia-smi's indices are in PCI order; make CUDA count the same way
        environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    environ["CUDA_VISIBLE_DEVICES"] = taken.device
    print(
        f"gpu: slot {taken.name} of devices {','.join(devices)} ({taken.holders} job(s) on "
        f"it); CUDA_VISIBLE_DEVICES={taken.device}",
        file=sys.stderr,
    )
    return taken


def device_record(device) -> dict:
    """What ``metrics.json`` records of the device a job ran on: ``device_index`` (the
    ``CUDA_VISIBLE_DEVICES`` entry of a CUDA device, i.e. the machine's index or UUID;
    ``None`` on a CPU), ``device_name`` (the GPU's name) and ``gpu_slot`` (the slot this
    process claimed, if any)."""
    import torch

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
