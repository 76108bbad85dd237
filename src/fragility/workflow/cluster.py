"""Cluster requests that fit: each SLURM submission checked against its partition before any
is made.

A job that asks a partition for more CPUs, memory or time than any of its nodes has never
starts: SLURM keeps it pending (``Reason=PartitionConfig`` and the like) while Snakemake waits
without a word. The workflow (``rules/cluster.smk``) therefore checks every planned submission
before the first one and stops with one line naming the job, what it asks for and what the
partition offers.

The partition is the job's ``slurm_partition``, else the cluster's default (the one ``sinfo``
marks with ``*``). Its limits per node are read from ``scontrol show partition`` (``MaxTime``,
``MaxCPUsPerNode``, ``MaxMemPerNode``) and ``sinfo`` (each node's CPUs and memory): a job fits
if its CPUs and memory fit on the partition's largest node within those caps, and its time
within ``MaxTime``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

UNLIMITED = ("UNLIMITED", "INFINITE", "NONE", "")


@dataclass(frozen=True)
class Request:
    """What one submission asks for: CPUs and memory on one node, wall time."""

    job: str  # e.g. "group job cpu_digits_exp10_ce_0 (12 jobs: analyze_rq2, ...)"
    partition: str | None  # None: the cluster's default
    cpus: int | None  # None: no CPU request (cpus_per_task < 0)
    mem_mb: int | None
    minutes: float | None


@dataclass(frozen=True)
class Limits:
    """What one node of a partition can give a job (``None``: no limit known)."""

    partition: str
    cpus: int | None
    mem_mb: int | None
    minutes: float | None


def slurm_minutes(text: str) -> float | None:
    """A SLURM time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``)
    in minutes; ``None`` for UNLIMITED / INFINITE."""
    text = text.strip()
    if text.upper() in UNLIMITED:
        return None
    days, dash, clock = text.partition("-")
    if not dash:
        days, clock = "0", text
    parts = [float(p) for p in clock.split(":")]
    if dash:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = (parts + [0.0, 0.0])[:3]
    elif len(parts) == 3:  # HH:MM:SS
        hours, minutes, seconds = parts
    else:  # MM or MM:SS
        hours, minutes, seconds = 0.0, parts[0], (parts[1] if len(parts) > 1 else 0.0)
    return float(days) * 1440 + hours * 60 + minutes + seconds / 60


def _count(text: str | None) -> int | None:
    if text is None or text.upper() in UNLIMITED:
        return None
    match = re.match(r"\d+", text)
    return int(match.group()) if match else None


def parse_partition(text: str) -> dict[str, str]:
    """``KEY=VALUE`` pairs of one partition as ``scontrol show partition`` prints them."""
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def parse_nodes(text: str) -> list[tuple[int, int]]:
    """``(CPUs, memory MB)`` per node from ``sinfo -h -N -o "%c %m"`` lines."""
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and _count(fields[0]) is not None and _count(fields[1]) is not None:
            nodes.append((_count(fields[0]), _count(fields[1])))
    return nodes


def limits_from(partition: str, scontrol: str, sinfo_nodes: str) -> Limits:
    """The per-node limits of ``partition`` from its ``scontrol show partition`` text and
    its nodes' ``sinfo -h -N -o "%c %m"`` lines."""
    fields = parse_partition(scontrol)
    nodes = parse_nodes(sinfo_nodes)
    cpus = max((c for c, _ in nodes), default=None)
    mem = max((m for _, m in nodes), default=None)
    cap_cpus, cap_mem = _count(fields.get("MaxCPUsPerNode")), _count(fields.get("MaxMemPerNode"))
    if cap_cpus is not None:
        cpus = cap_cpus if cpus is None else min(cpus, cap_cpus)
    if cap_mem is not None:
        mem = cap_mem if mem is None else min(mem, cap_mem)
    minutes = slurm_minutes(fields["MaxTime"]) if "MaxTime" in fields else None
    return Limits(partition, cpus, mem, minutes)


Runner = Callable[[list[str]], str]


def _run(cmd: list[str]) -> str:
    """A SLURM command's stdout (CalledProcessError / OSError when it fails)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


def default_partition(run: Runner = _run) -> str | None:
    """The partition ``sinfo`` marks as the default (``debug*``), or ``None``."""
    for name in run(["sinfo", "-h", "-o", "%P"]).split():
        if name.endswith("*"):
            return name.rstrip("*")
    return None


def partition_limits(partition: str | None, run: Runner = _run) -> Limits | None:
    """The limits of ``partition`` (``None``: the cluster's default), or ``None`` where the
    cluster does not say (no default partition)."""
    partition = partition or default_partition(run)
    if not partition:
        return None
    scontrol = run(["scontrol", "show", "partition", partition, "-o"])
    nodes = run(["sinfo", "-h", "-N", "-p", partition, "-o", "%c %m"])
    return limits_from(partition, scontrol, nodes)


def _minutes(value: float | None) -> str:
    if value is None:
        return "no limit"
    hours, minutes = divmod(round(value), 60)
    return f"{hours}:{minutes:02d} h" if hours else f"{minutes} min"


def misfit(request: Request, limits: Limits) -> str | None:
    """What of ``request`` no node of the partition can give, as a phrase, or ``None``."""
    asked, offered = [], []
    if request.cpus is not None and limits.cpus is not None and request.cpus > limits.cpus:
        asked.append(f"{request.cpus} CPUs")
        offered.append(f"{limits.cpus} CPUs")
    if request.mem_mb is not None and limits.mem_mb is not None and request.mem_mb > limits.mem_mb:
        asked.append(f"{request.mem_mb} MB")
        offered.append(f"{limits.mem_mb} MB")
    too_long = request.minutes is not None and limits.minutes is not None
    if too_long and request.minutes > limits.minutes:
        asked.append(f"{_minutes(request.minutes)}")
        offered.append(f"{_minutes(limits.minutes)} (MaxTime)")
    if not asked:
        return None
    return (
        f"{request.job} asks partition {limits.partition} for {', '.join(asked)} on one "
        f"node, but its nodes offer at most {', '.join(offered)}"
    )


def first_misfit(
    requests: Iterable[Request], limits_of: Callable[[str | None], Limits | None]
) -> tuple[str, int] | None:
    """The first request no node of its partition can satisfy, as a phrase, and how many
    requests do not fit in all; ``None`` when every one fits (or no limits are known).
    ``limits_of`` is called once per partition."""
    known: dict[str | None, Limits | None] = {}
    found = []
    for request in requests:
        if request.partition not in known:
            known[request.partition] = limits_of(request.partition)
        limits = known[request.partition]
        phrase = None if limits is None else misfit(request, limits)
        if phrase:
            found.append(phrase)
    return (found[0], len(found)) if found else None


def unfit_line(requests: Iterable[Request], run: Runner = _run) -> str | None:
    """The one line that stops a cluster run before its first submission, or ``None``."""
    try:
        problem = first_misfit(requests, lambda p: partition_limits(p, run))
    except (OSError, subprocess.SubprocessError) as error:
        cmd = getattr(error, "cmd", None)
        what = shlex.join(cmd) if isinstance(cmd, list) else str(error)
        print(f"note: the partitions' limits are unknown ({what} failed); not checked")
        return None
    if problem is None:
        return None
    phrase, n = problem
    more = f" ({n - 1} more submissions do not fit either)" if n > 1 else ""
    return (
        f"cluster error: {phrase}, so it would wait in the queue forever{more}. Lower the "
        f"request (threads, mem_mb, runtime) or choose a partition that has such nodes "
        f"(slurm_partition in profiles/slurm/config.yaml); nothing was submitted"
    )
