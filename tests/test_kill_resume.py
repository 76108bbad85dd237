"""SIGKILL of the whole workflow in the middle of training, then a rerun (smoke preset, digits).

The rerun must finish with the same result as an uninterrupted run, resuming the training from
its last finished epoch, and the kill must leave no output or temporary file behind, only the
resume state. After a SIGKILL, Snakemake's directory lock is left behind too (nothing could
remove it), so the rerun is `snakemake --unlock` followed by the same command, as Snakemake's
LockException message tells.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from snakemake_cli import SMOKE, run_snakemake, snakemake_command

RUN = "results/digits/exp10/ce/seed0"
LOG = "results/logs/train/digits/exp10/ce/seed0.log"
TARGET = f"{RUN}/metrics.json"
OUTPUTS = {"model.pt", "history.parquet", "metrics.json"}
EPOCHS = 8  # about 0.5 s each on two CPU threads: the kill lands with epochs still to go


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, configfile, *args, timeout=300)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The smoke preset with its exp10 ce run alone, trained for EPOCHS epochs."""
    config = yaml.safe_load(SMOKE.read_text())
    config["runs"] = [
        {
            "dataset": "digits",
            "imbalance": ["exp10"],
            "loss": ["ce"],
            "seeds": [0],
            "training": {"epochs": EPOCHS},
        }
    ]
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _temp_files(workdir: Path) -> list[Path]:
    """Files that an atomic write (src/fragility/io.py) leaves when it is killed."""
    return [p for p in workdir.rglob("*.tmp") if ".snakemake" not in p.parts]


def _kill_after_two_epochs(workdir: Path, config: Path) -> None:
    """Start Snakemake, SIGKILL its whole process group just after the 2nd epoch's resume state.

    The kill follows the atomic replacement of .resume.pt at once (polled every 10 ms), so it
    lands well inside the next epoch, not in the middle of a file write.
    """
    resume = workdir / RUN / ".resume.pt"
    with (workdir / "killed.out").open("w") as out:
        proc = subprocess.Popen(
            snakemake_command(workdir, config, TARGET),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,  # own process group
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip
    seen, deadline = set(), time.monotonic() + 180
    try:
        while len(seen) < 2:
            with contextlib.suppress(FileNotFoundError):
                seen.add(resume.stat().st_ino)  # each epoch's state is a new file (os.replace)
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "training ended before the kill or never started:\n"
                    + (workdir / "killed.out").read_text()[-3000:]
                )
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the training script it started
        proc.wait()


def _numbers(workdir: Path) -> dict:
    metrics = json.loads((workdir / RUN / "metrics.json").read_text())
    history = pq.read_table(workdir / RUN / "history.parquet").to_pydict()
    return {
        "bac": metrics["bac"],
        "per_class_accuracy": metrics["per_class_accuracy"],
        "kept_epoch": metrics["kept_epoch"],
        "epochs": history["epoch"],
        "loss": history["loss"],
        "test_bac": history["test_bac"],
    }


@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_gives_the_uninterrupted_result(config, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed.mkdir()
    reference.mkdir()
    with (reference / "snakemake.out").open("w") as out:
        uninterrupted = subprocess.Popen(  # runs alongside the killed one
            snakemake_command(reference, config, TARGET), stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )  # fmt: skip

    _kill_after_two_epochs(killed, config)
    run_dir = killed / RUN
    state = torch.load(run_dir / ".resume.pt", weights_only=True)  # complete, loads safely
    assert 1 <= state["epoch"] < EPOCHS - 1  # 0-based: killed with epochs still to go
    assert {p.name for p in run_dir.iterdir()} == {".resume.pt"}  # no output, no temp file
    assert not _temp_files(killed)
    assert "kept epoch" not in (killed / LOG).read_text()

    assert snakemake(killed, config, "--unlock").returncode == 0  # the lock the kill left
    rerun = snakemake(killed, config, TARGET)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    log = (killed / LOG).read_text()
    assert f"resuming from epoch {state['epoch'] + 1}" in log  # not started over
    assert {p.name for p in run_dir.iterdir()} == OUTPUTS  # resume state removed when done
    assert not _temp_files(killed)
    torch.load(run_dir / "model.pt", weights_only=True)  # complete, loads safely

    uninterrupted.wait(timeout=300)
    assert uninterrupted.returncode == 0, (reference / "snakemake.out").read_text()[-3000:]
    assert "resuming" not in (reference / LOG).read_text()
    ours, theirs = _numbers(killed), _numbers(reference)
    assert ours["epochs"] == list(range(1, EPOCHS + 1))
    assert ours == theirs
