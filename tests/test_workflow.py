"""End-to-end runs of the real Snakemake workflow on the smoke preset (digits, seconds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "presets" / "smoke.yaml"
RUNS = ["digits/balanced/ce/seed0", "digits/exp10/ce/seed0", "digits/exp10/ldam_drw/seed0"]


def snakemake(workdir: Path, *args: str, configfile: Path = SMOKE) -> subprocess.CompletedProcess:
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        "--cores", "2",
        "--resources", "gpu=1",
        *args,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    counts, in_table = {}, False
    for line in result.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and parts[:1] == ["total"]:
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_smoke_preset_produces_every_run_output(smoke_run):
    for run in RUNS:
        out = smoke_run / "results" / run
        metrics = json.loads((out / "metrics.json").read_text())
        assert {"bac", "macro_f1", "gmean", "per_class_accuracy", "kept_epoch", "wall_seconds"} <= set(metrics)
        assert len(metrics["per_class_accuracy"]) == 10
        assert metrics["select"] == "test_bac"
        history = pq.read_table(out / "history.parquet")
        assert history.num_rows == 3
        assert {"lr", "loss", "train_acc", "val_acc", "test_acc", "test_bac", "seconds"} <= set(history.column_names)
        assert (out / "model.pt").stat().st_size > 10_000
        assert not (out / ".resume.pt").exists()  # removed once the run is complete
        log = (smoke_run / "logs" / "train" / (run + ".log")).read_text()
        assert "3/3" in log and "kept epoch" in log  # the progress bar reached the rule's log
    split = pq.read_table(smoke_run / "results/digits/exp10/split_seed0.parquet")
    assert str(split.schema.field("index").type) == "int64"
    assert str(split.schema.field("subset").type) == "string"
    counts = {}
    for label, subset in zip(split.column("label").to_pylist(), split.column("subset").to_pylist()):
        if subset == "train":
            counts[label] = counts.get(label, 0) + 1
    # exp10 over 10 classes with n_max 100: int(100 * 10 ** (-i / 9))
    assert [counts[c] for c in range(10)] == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    assert (smoke_run / "benchmarks/train/digits/exp10/ce/seed0.tsv").exists()


@pytest.mark.slow
def test_second_invocation_has_nothing_to_do(smoke_run):
    result = snakemake(smoke_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_changing_one_loss_setting_reruns_only_that_run(smoke_run, tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["losses"]["ldam_drw"]["ldam_max_margin"] = 0.3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(smoke_run, "-n", configfile=changed)
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result) == {"all": 1, "train_model": 1}
    assert "results/digits/exp10/ldam_drw/seed0/metrics.json" in result.stdout


@pytest.mark.slow
def test_deleted_output_is_rebuilt_alone(smoke_run):
    (smoke_run / "results/digits/exp10/split_seed0.parquet").unlink()
    result = snakemake(smoke_run, "-n", "results/digits/exp10/split_seed0.parquet")
    assert planned_jobs(result) == {"make_split": 1}


def _write(tmp_path, config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _smoke_config():
    return yaml.safe_load(SMOKE.read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["runs"][0].update(loss=["hinge"]), "unknown loss 'hinge'"),
        (lambda c: c["runs"][0].update(dataset="mnist"), "not configured under 'datasets'"),
        (lambda c: c["runs"][0].update(imbalance=["exp"]), "'exp' does not match"),
        (lambda c: c["training"].update(epoch=3), "Additional properties are not allowed"),
        (lambda c: c["training"].update(arch="vgg"), "'vgg' is not one of"),
        (lambda c: c["datasets"]["digits"].update(loader="mnist"), "has no loader 'mnist'"),
    ],
)
def test_config_errors_stop_before_anything_runs(tmp_path, edit, message):
    config = _smoke_config()
    edit(config)
    result = snakemake(tmp_path, "-n", configfile=_write(tmp_path, config))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_missing_dataset_is_one_clear_message_and_no_partial_file(tmp_path):
    config = _smoke_config()
    config["datasets"] = {"mine": {"loader": "image_folder", "root": str(tmp_path / "nowhere")}}
    for group in config["runs"]:
        group["dataset"] = "mine"
    result = snakemake(tmp_path, configfile=_write(tmp_path, config))
    assert result.returncode != 0
    log = (tmp_path / "logs/data/mine.log").read_text()
    assert log.startswith("error: ") and str(tmp_path / "nowhere") in log
    assert "Traceback" not in log
    assert not list(tmp_path.glob("data/*"))  # no canonical file, not even a temporary one


def test_n_max_larger_than_the_data_fails_at_the_split(tmp_path):
    config = _smoke_config()
    config["datasets"]["digits"]["split"]["n_max"] = 170
    result = snakemake(tmp_path, configfile=_write(tmp_path, config))
    assert result.returncode != 0
    logs = "".join(p.read_text() for p in (tmp_path / "logs/splits").rglob("*.log"))
    assert "fewer than n_max=170" in logs
    assert not list((tmp_path / "results").rglob("*.parquet"))


def test_workflow_lints_clean():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "--lint", "--snakefile", str(REPO / "Snakefile"),
         "--configfile", str(SMOKE), "--directory", str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

