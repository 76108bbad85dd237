"""Where a remedy computes: on the CPU unless its job holds a GPU of its own, so that a remedy
job (which claims no GPU) never opens CUDA beside the GPU jobs, and gives the same numbers on
a workstation with GPUs as in a cluster's CPU job. CUDA availability is faked here; any real
use of CUDA would raise."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fragility.embeddings.files import classifier_arrays_table, embeddings_table
from fragility.errors import ConfigError
from fragility.io import write_json, write_parquet
from fragility.remedies.registry import apply_remedy
from fragility.training import gpus
from fragility.training.heads import head_device
from fragility.workflow.stages.heads import remedy_run

OVERSAMPLING = ["eos", "smote"]  # the remedies with a k-NN search on `auto`


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A trained run's embedding files: 3 overlapping classes, 120/30/8 train, 40 test each."""
    folder = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(3)
    centers = np.zeros((3, 8))
    centers[0, :3], centers[1, 3:6], centers[2, 5:] = 2.0, 2.0, 2.0
    W, bias = centers.astype(np.float32), np.array([4.0, 0.0, -4.0], np.float32)
    files = {}
    for name, counts in {"train": [120, 30, 8], "test": [40, 40, 40]}.items():
        y = np.repeat(np.arange(3), counts)
        fe = np.maximum(centers[y] + rng.normal(size=(len(y), 8)), 0).astype(np.float32)
        files[name] = folder / f"{name}.parquet"
        table = embeddings_table(np.arange(len(y)), y, fe, fe @ W.T + bias)
        write_parquet(table, files[name], {"normed": "false"})
    files["classifier"] = folder / "classifier.parquet"
    write_parquet(classifier_arrays_table(W, bias), files["classifier"], {"normed": "false"})
    files["metrics"] = folder / "metrics.json"
    write_json({"config_hash": "0" * 16}, files["metrics"])
    return files


def _trap(*args, **kwargs):
    raise AssertionError("a remedy touched CUDA without holding a GPU")


def _fake_cuda(patch) -> None:
    """torch says two GPUs are there; anything that would initialise CUDA fails the test.
    This process holds no GPU."""
    patch.setattr(torch.cuda, "is_available", lambda: True)
    patch.setattr(torch.cuda, "device_count", lambda: 2)
    patch.setattr(torch.cuda, "_lazy_init", _trap)
    patch.setattr(gpus, "_HELD", [])
    patch.setattr(gpus, "_CONFIRMED", [], raising=False)  # also runs against older code


@pytest.fixture
def cuda_faked_and_trapped(monkeypatch):
    _fake_cuda(monkeypatch)


def _workstation_job(monkeypatch, tmp_path):
    """The environment of a local remedy job on a machine with two GPUs."""
    monkeypatch.setenv(gpus.SLOTS_ENV, str(tmp_path / ".gpu_slots"))
    monkeypatch.setenv(gpus.GPUS_ENV, "0,1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.mark.parametrize("name", OVERSAMPLING)
def test_a_remedy_never_touches_cuda_when_its_job_claimed_no_gpu(
    run_files, cuda_faked_and_trapped, monkeypatch, tmp_path, name
):
    from fragility.embeddings.files import read_classifier, read_embeddings

    _workstation_job(monkeypatch, tmp_path)
    train, test = read_embeddings(run_files["train"]), read_embeddings(run_files["test"])
    classifier = read_classifier(run_files["classifier"])
    result = apply_remedy(name, train, test, classifier, seed=0)
    assert result.info["n_synthetic"] > 0  # the k-NN search ran, on the CPU
    assert str(head_device("auto")) == "cpu"


def test_auto_means_the_gpu_a_job_holds_and_an_explicit_cuda_needs_one(
    cuda_faked_and_trapped, monkeypatch, tmp_path
):
    _workstation_job(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match="remedy device 'cuda': remedy jobs hold no GPU"):
        head_device("cuda")
    monkeypatch.setattr(gpus, "_CONFIRMED", ["a GPU job"])  # its check found the GPU
    assert str(head_device("auto")) == "cuda:0"
    assert str(head_device("cuda")) == "cuda:0"
    monkeypatch.setattr(gpus, "_CONFIRMED", [])
    monkeypatch.delenv(gpus.SLOTS_ENV)  # outside a workflow an explicit device is the caller's
    assert str(head_device("cuda")) == "cuda:0"


def _remedy_outputs(run_files, folder, name) -> dict:
    outputs = {k: folder / f"{k}.parquet" for k in ("train", "test", "classifier")}
    outputs["metrics"] = folder / "metrics.json"
    inputs = {k: run_files[k] for k in ("train", "test", "classifier", "metrics")}
    remedy_run(inputs, name, name, {}, list(outputs.values()), seed=0)
    metrics = json.loads(outputs["metrics"].read_text())
    metrics.pop("wall_seconds")  # a timing
    tables = {k: pq.read_table(outputs[k]) for k in ("train", "test", "classifier")}
    return {"metrics": metrics, "tables": tables}


@pytest.mark.parametrize("name", OVERSAMPLING)
def test_a_remedy_gives_the_same_files_on_a_gpu_workstation_and_in_a_slurm_cpu_job(
    run_files, monkeypatch, tmp_path, name
):
    """The same stage, threads and CPU: once as a local job beside two (faked) GPUs, once
    as in a SLURM CPU group job (no GPU, nothing visible): identical outputs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the rule's threads, on both paths
    try:
        with monkeypatch.context() as local:
            _fake_cuda(local)
            _workstation_job(local, tmp_path)
            workstation = _remedy_outputs(run_files, tmp_path / "local", name)
        with monkeypatch.context() as slurm:
            slurm.setenv(gpus.SLOTS_ENV, str(tmp_path / ".gpu_slots"))
            slurm.delenv(gpus.GPUS_ENV, raising=False)
            slurm.delenv("CUDA_VISIBLE_DEVICES", raising=False)
            slurm.setattr(torch.cuda, "is_available", lambda: False)
            cluster = _remedy_outputs(run_files, tmp_path / "slurm", name)
    finally:
        torch.set_num_threads(threads)
    assert workstation["metrics"] == cluster["metrics"]
    for kind, table in workstation["tables"].items():
        assert table.equals(cluster["tables"][kind]), kind
