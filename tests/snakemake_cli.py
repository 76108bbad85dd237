"""How the tests start the real workflow: this virtualenv's `snakemake` on this repository's
Snakefile, in a working folder of the test's own."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "presets" / "smoke.yaml"


def snakemake_command(
    workdir: Path, configfile: Path, *args: str, cores: int = 2, gpus: int = 1
) -> list[str]:
    return [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        "--resources", f"gpu={gpus}",  # before --cores: it takes every value up to the next option
        "--cores", str(cores),
        *args,
    ]  # fmt: skip


def run_snakemake(
    workdir: Path,
    configfile: Path,
    *args: str,
    timeout: int = 900,
    pythonpath: tuple[Path, ...] = (),
    **resources: int,
) -> subprocess.CompletedProcess:
    """Snakemake on ``workdir``; ``pythonpath`` goes before the environment's PYTHONPATH of
    the workflow and of every job it starts."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if pythonpath:
        paths = [*map(str, pythonpath), *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    cmd = snakemake_command(workdir, configfile, *args, **resources)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
