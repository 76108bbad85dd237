"""Where a result came from: package versions and the code's git commit, for metrics.json."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path

from fragility import __version__

PACKAGES = ("torch", "torchvision", "numpy", "pyarrow", "matplotlib", "snakemake")


@cache
def code_version() -> str:
    """The git commit of this source tree (``-dirty`` with uncommitted changes), or the
    package version when the code is not a git checkout (an installed wheel)."""
    here = Path(__file__).resolve().parents[1]  # the package: src/fragility
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return f"fragility {__version__} (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


@cache
def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux): float kernels, and so trained
    weights, differ between CPU models, so every result records where it was computed."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def torch_threads() -> int | None:
    """Torch's intra-op thread count where torch is loaded (thread count changes the order
    of float reductions on a CPU); None in processes that never import it."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def environment() -> dict:
    """Python, platform, CPU model and torch threads, this package's code version and the
    versions of its dependencies."""
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch_threads(),
        "fragility": __version__,
        "code_version": code_version(),
    }
    for name in PACKAGES:
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    return env
