"""Where a result came from: package versions and the code's git commit, for metrics.json."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from functools import cache
from pathlib import Path

from . import __version__

PACKAGES = ("torch", "torchvision", "numpy", "pyarrow", "matplotlib", "snakemake")


@cache
def code_version() -> str:
    """The git commit of this source tree (``-dirty`` with uncommitted changes), or the
    package version when the code is not a git checkout (an installed wheel)."""
    here = Path(__file__).resolve().parent
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


def environment() -> dict:
    """Python, platform, this package's code version and the versions of its dependencies."""
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fragility": __version__,
        "code_version": code_version(),
    }
    for name in PACKAGES:
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    return env
