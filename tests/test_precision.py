"""The precision policy (fragility.training.precision): which dtype the trunk, the head, the kept
checkpoint's evaluation and the extraction compute in, on every device. The GPU policy runs
here on the CPU (torch has bf16 autocast there too); the same test runs on CUDA where a GPU
exists (bench/gpu_check.sh runs it)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fragility.catalog.layout import EMBEDDINGS
from fragility.embeddings.files import decomposition_error, read_classifier, read_embeddings
from fragility.errors import ConfigError
from fragility.metrics import balanced_accuracy, per_class_accuracy
from fragility.training import precision
from fragility.training.engine import eval_batch_size, resolve_device
from fragility.training.precision import Precision
from fragility.workflow.stages import data as data_stages
from fragility.workflow.stages import embeddings as embedding_stages
from fragility.workflow.stages.training import MODEL_OUTPUTS, train_run

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]


@pytest.fixture(scope="module")
def digits_split(tmp_path_factory):
    """The canonical digits file and an exp10 split of it (60 images in the largest class)."""
    folder = tmp_path_factory.mktemp("digits")
    data, split = folder / "digits.npz", folder / "split.parquet"
    data_stages.prepare_data("digits", {}, data)
    draw = {"imbalance": "exp10", "seed": 0, "n_max": 60, "n_val": 0, "n_test": 20}
    data_stages.split_dataset(data, split, **draw)
    return data, split


def _gpu_policy(device: str):
    """The policy of an Ampere-or-later GPU: bf16 trunk. On a CPU it must be injected."""
    return Precision("cpu", torch.bfloat16) if device == "cpu" else "auto"


def _dtypes_seen(model) -> dict[str, set]:
    """Hooks that record the dtype of a trunk layer's output and of the head's input and
    output at every forward pass."""
    seen = {"trunk": set(), "head_in": set(), "head_out": set()}
    model.conv1.register_forward_hook(lambda m, i, o: seen["trunk"].add(o.dtype))

    def head(module, inputs, output):
        seen["head_in"].add(inputs[0].dtype)
        seen["head_out"].add(output.dtype)

    model.classifier.register_forward_hook(head)
    return seen


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loss", ["ce", "ldam"])
def test_the_gpu_precision_policy_keeps_the_decomposition_and_the_kept_metrics_exact(
    digits_split, tmp_path, monkeypatch, device, loss
):
    """Trained under the GPU policy (bf16 trunk): the head's logits are float32, the
    extracted embeddings decompose into their logits to 1e-4, and metrics.json's test BAC is
    the BAC of test.parquet's `pred`, exactly."""
    import fragility.training.engine as training

    data, split = digits_split
    seen = {}
    new_model = training._new_model

    def watched(*args, **kwargs):  # the trained model, with its dtypes recorded
        model = new_model(*args, **kwargs)
        seen.update(_dtypes_seen(model))
        return model

    monkeypatch.setattr(training, "_new_model", watched)
    run = tmp_path / "run"
    settings = {"arch": "resnet8", "epochs": 4, "batch_size": 32, "seed": 0}
    settings["loss"] = loss
    info = {"dataset": "digits", "imbalance": "exp10", "loss": loss, "seed": 0}
    train_run(
        data, split, [run / n for n in MODEL_OUTPUTS], settings=settings, run_keys=info, device=device,
        precision=_gpu_policy(device), progress=False,
    )  # fmt: skip
    # the trunk really ran in the policy's dtype (bf16; float32 on a GPU older than Ampere),
    # the head in float32 from a float32 FE
    policy = precision.training(torch.device(device), _gpu_policy(device))
    assert seen["trunk"] == {policy.trunk, torch.float32}  # training / the kept one's eval
    assert seen["head_in"] == seen["head_out"] == {torch.float32}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["precision"] == policy.name

    files = {kind: run / f"{kind}.parquet" for kind in EMBEDDINGS}
    embedding_stages.extract_run(data, split, run / "model.pt", list(files.values()), device=device)
    clf = read_classifier(files["classifier"])
    for subset in ("train", "pool", "test"):
        emb = read_embeddings(files[subset])
        error = decomposition_error(
            emb["fe"], emb["logits"], clf["weight"], clf["bias"], clf["normed"]
        )
        assert error <= 1e-4, (subset, error)
    test = read_embeddings(files["test"])
    n_classes = len(metrics["classes"])
    assert metrics["bac"] == balanced_accuracy(test["label"], test["pred"], n_classes)
    recomputed = per_class_accuracy(test["label"], test["pred"], n_classes).tolist()
    assert metrics["per_class_accuracy"] == recomputed


def test_the_policy_chooses_bf16_only_on_ampere_or_later_gpus(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert precision.training(cpu).trunk == torch.float32  # auto on a CPU
    capability = {"value": (7, 5)}  # a T4
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability["value"])
    assert precision.training(gpu).trunk == torch.float32
    capability["value"] = (8, 0)  # an A100
    assert precision.training(gpu).trunk == torch.bfloat16
    capability["value"] = (9, 0)  # an H100
    assert precision.training(gpu).name == "bfloat16"
    assert precision.training(gpu, "float32").trunk == torch.float32  # the config decides
    assert precision.training(cpu, "bfloat16").trunk == torch.bfloat16
    injected = Precision("cpu", torch.bfloat16)
    assert precision.training(cpu, injected) is injected
    assert precision.exact(gpu) == Precision("cuda", torch.float32)
    with pytest.raises(ConfigError, match="precision must be one of"):
        precision.training(cpu, "float16")


def test_float32_means_float32_inside_an_autocast_and_without_tf32():
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16
        with precision.exact(torch.device("cpu")).head_context():
            assert torch.nn.functional.linear(x, w).dtype == torch.float32
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = True  # the flags can be set without a GPU
    try:
        with precision.full_float32("cuda"):
            assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, True)  # restored
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before


def test_evaluation_batches_follow_the_gpus_total_memory_and_the_image_size(monkeypatch):
    assert eval_batch_size(torch.device("cpu"), (224, 224)) == 256
    memory = {"bytes": 80 * 2**30}  # an H100

    class Properties:
        @property
        def total_memory(self):
            return memory["bytes"]

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d=None: Properties())
    gpu = torch.device("cuda", 0)
    # 0.25 * 80 GiB / (1024 B * 32 * 32) = 20,480 images: capped at 4096
    assert eval_batch_size(gpu, (32, 32)) == 4096
    # 0.25 * 80 GiB / (1024 B * 224 * 224) = 427.9: the power of two below it
    assert eval_batch_size(gpu, (224, 224)) == 256
    memory["bytes"] = 16 * 2**30  # a T4: 85.6 -> 64
    assert eval_batch_size(gpu, (224, 224)) == 64
    memory["bytes"] = 2**30  # a small MIG slice: 5.3 -> the floor of 16
    assert eval_batch_size(gpu, (224, 224)) == 16


def test_a_cuda_device_is_recorded_with_its_index(monkeypatch):
    assert str(resolve_device("cpu")) == "cpu"
    assert str(resolve_device("cuda")) == "cuda:0"  # what metrics.json records
    assert str(resolve_device("cuda:1")) == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert str(resolve_device("auto")) == "cuda:0"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_checkpoint_extracted_on_cuda_agrees_with_the_cpu_extraction(digits_split, tmp_path):
    """The same model.pt extracted on both devices: FE and logits agree to 1e-4 of their
    largest value, predictions wherever the top two logits are further apart than that."""
    data, split = digits_split
    run = tmp_path / "run"
    settings = {"arch": "resnet8", "epochs": 3, "batch_size": 32, "seed": 0}
    info = {"dataset": "digits", "imbalance": "exp10", "loss": "ce", "seed": 0}
    train_run(
        data, split, [run / n for n in MODEL_OUTPUTS], settings=settings, run_keys=info, device="cuda",
        progress=False,
    )  # fmt: skip
    out = {}
    for device in ("cpu", "cuda"):
        files = {kind: run / device / f"{kind}.parquet" for kind in EMBEDDINGS}
        embedding_stages.extract_run(
            data, split, run / "model.pt", list(files.values()), device=device
        )
        out[device] = {s: read_embeddings(files[s]) for s in ("train", "pool", "test")}
        assert pq.read_table(files["classifier"]).equals(
            pq.read_table(run / "cpu" / "classifier.parquet")
        )
    for subset, cpu in out["cpu"].items():
        gpu = out["cuda"][subset]
        for column in ("fe", "logits"):
            scale = np.abs(cpu[column]).max()
            assert np.abs(cpu[column] - gpu[column]).max() <= 1e-4 * scale, (subset, column)
        top2 = np.sort(cpu["logits"], axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4 * np.abs(cpu["logits"]).max()
        assert np.array_equal(cpu["pred"][clear], gpu["pred"][clear]), subset
