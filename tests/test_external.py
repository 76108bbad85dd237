"""Models trained elsewhere (config ``models``): each checkpoint format loaded on a
constructed checkpoint, one error naming the keys that do not fit, LDAM-DRW's sampling
against its reference algorithm on a CIFAR-10-format file, our own model.pt giving the same
embeddings and tables as our pipeline's run, and an external model through the workflow."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn as nn
import yaml
from ldam_drw import LdamResNet, save_checkpoint, train_ldam_checkpoint, write_cifar10
from snakemake.utils import validate
from snakemake_cli import REPO, run_snakemake
from test_workflow import planned_jobs

from fragility.data.splits import ldam_drw_indices, make_split, subset_indices
from fragility.embeddings.external import (
    CosineHead,
    ExternalModel,
    file_sha256,
    load_external,
    preprocessing,
    probe,
)
from fragility.embeddings.files import prepare_fe, read_classifier, read_embeddings
from fragility.errors import ConfigError, FragilityError
from fragility.workflow.config import SCHEMA_PATH, Study
from fragility.workflow.stages import data as data_stages
from fragility.workflow.stages import embeddings as embedding_stages
from fragility.workflow.stages.training import MODEL_OUTPUTS, train_run

torch.set_num_threads(1)


def _randomise_batch_norm(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from their initial values, so that a
    loader that dropped or misplaced a BatchNorm changes the logits."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def _images(n=6, size=32, channels=3, seed=1) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_ce_invariant(model, x: torch.Tensor) -> None:
    """The embeddings' identity sum_h fe'[n,h] W[c,h] + bias[c] = logits[n,c] (1e-4 relative), from the
    weights the classifier file would hold."""
    with torch.no_grad():
        fe = model.features(x)
        logits = model.classifier(fe).double().numpy()
        weight, bias = model.classifier_weights()
    weight, bias = weight.detach().double().numpy(), bias.detach().double().numpy()
    rebuilt = prepare_fe(fe.numpy(), model.normed) @ weight.T + bias
    assert np.max(np.abs(rebuilt - logits)) <= 1e-4 * max(1.0, np.abs(logits).max())


# -- each loader on a constructed checkpoint --------------------------------------------------


@pytest.mark.parametrize("use_norm", [False, True], ids=["linear", "normed"])
@pytest.mark.parametrize("data_parallel", [False, True], ids=["plain", "module."])
def test_an_ldam_drw_checkpoint_loads_into_the_same_function(tmp_path, use_norm, data_parallel):
    torch.manual_seed(0)
    reference = LdamResNet(5, n_classes=7, use_norm=use_norm).eval()
    _randomise_batch_norm(reference)
    path = tmp_path / "ckpt.pth.tar"
    save_checkpoint(reference, path, epoch=160, data_parallel=data_parallel)
    saved = torch.load(path, weights_only=True)
    # LDAM-DRW's names and count: conv1, bn1 (5), 15 blocks of 12 tensors, then linear
    keys = list(saved["state_dict"])
    assert len(keys) == 187 + (not use_norm)
    assert all(k.startswith("module.") for k in keys) == data_parallel
    assert keys[-1].endswith("linear.bias" if not use_norm else "linear.weight")
    assert any(k.endswith("layer3.4.bn2.running_var") for k in keys)
    assert saved["state_dict"][keys[-1]].shape == ((7,) if not use_norm else (64, 7))

    loaded = load_external(path, "ldam_drw", "resnet32")
    x = _images()
    with torch.no_grad():
        expected, got = reference(x), loaded.model(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert loaded.model.normed == use_norm and loaded.epoch == 160 and loaded.in_channels == 3
    assert isinstance(loaded.model.classifier, CosineHead if use_norm else nn.Linear)
    if use_norm:  # cosine logits with no scale
        assert got.abs().max() <= 1.0 + 1e-6
    _assert_ce_invariant(loaded.model, x)


def test_a_torchvision_resnet18_loads_with_fe_the_input_of_fc(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=5).eval()
    _randomise_batch_norm(reference)
    path = tmp_path / "resnet18.pt"
    torch.save({"model": reference.state_dict(), "epoch": 90}, path)  # torchvision's recipe
    loaded = load_external(path, "torchvision", "resnet18")
    x = _images(n=3)
    with torch.no_grad():
        expected, got = reference(x), loaded.model(x)
        fe = loaded.model.features(x)
        pooled = torch.flatten(reference.avgpool(_trunk(reference, x)), 1)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert fe.shape == (3, 512) and torch.equal(fe, pooled)  # what fc reads
    assert loaded.epoch == 90 and not loaded.model.normed
    _assert_ce_invariant(loaded.model, x)


def _trunk(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


ENTRY_POINT = """
import torch
import torch.nn as nn


def build(width):
    extractor = nn.Sequential(
        nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return extractor, nn.Linear(width, 3)


def load(checkpoint, width=4):
    extractor, head = build(width)
    state = torch.load(checkpoint, weights_only=True)
    extractor.load_state_dict(state["extractor"])
    head.load_state_dict(state["head"])
    return extractor, head


def not_a_pair(checkpoint):
    return nn.Linear(2, 2)
"""


def test_an_entry_point_returns_the_extractor_and_the_head(tmp_path):
    source = tmp_path / "my_model.py"
    source.write_text(ENTRY_POINT)
    namespace: dict = {}
    exec(ENTRY_POINT, namespace)
    torch.manual_seed(0)
    extractor, head = namespace["build"](6)
    path = tmp_path / "mine.pt"
    torch.save({"extractor": extractor.state_dict(), "head": head.state_dict()}, path)
    loaded = load_external(path, "entry_point", f"{source}:load", {"width": 6})
    x = _images(n=4, size=8, channels=1)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), head(extractor(x)))
    assert loaded.in_channels == 1
    _assert_ce_invariant(loaded.model, x)
    with pytest.raises(FragilityError, match="must return \\(feature extractor, linear head\\)"):
        load_external(path, "entry_point", f"{source}:not_a_pair")
    with pytest.raises(FragilityError, match="has no function 'missing'"):
        load_external(path, "entry_point", f"{source}:missing")


def test_our_model_pt_gives_the_runs_embeddings_and_tables_bit_for_bit(tmp_path):
    """The same weights through our pipeline's extraction and as an external model (format
    fragility, the study's split): equal embeddings and per-run tables."""
    from fragility.catalog.layout import EMBEDDINGS
    from fragility.catalog.outputs import RUN_TABLES
    from fragility.workflow.stages.analysis import analyze_run

    data, split = tmp_path / "digits.npz", tmp_path / "split.parquet"
    data_stages.prepare_data("digits", {}, data)
    draw = {"imbalance": "exp10", "seed": 0, "n_max": 60, "n_val": 10, "n_test": 20}
    data_stages.split_dataset(data, split, **draw)
    settings = {"arch": "resnet8", "epochs": 1, "batch_size": 64, "flip": False, "seed": 0}
    run = {"dataset": "digits", "imbalance": "exp10", "loss": "ce", "seed": 0}
    ours, theirs = tmp_path / "run", tmp_path / "external"
    train_run(
        data, split, [ours / n for n in MODEL_OUTPUTS], settings=settings, run_keys=run, progress=False,
    )  # fmt: skip
    files = {kind: ours / f"{kind}.parquet" for kind in EMBEDDINGS}
    embedding_stages.extract_run(data, split, ours / "model.pt", list(files.values()), device="cpu")

    model = _resolved_entry("mine", "fragility", {"mode": "study"})
    split_settings = {"mode": "study", "class_order": None, **draw}
    data_stages.split_external(data, theirs / "split.parquet", settings=split_settings)
    assert pq.read_table(theirs / "split.parquet").equals(pq.read_table(split))
    outputs = {kind: theirs / f"{kind}.parquet" for kind in (*EMBEDDINGS, "history")}
    outputs["metrics"] = theirs / "metrics.json"
    embedding_stages.extract_external(
        data, theirs / "split.parquet", ours / "model.pt", list(outputs.values()), model=model,
        run_keys=dict(run, loss="mine"), device="cpu",
    )  # fmt: skip
    for kind in EMBEDDINGS:
        a, b = pq.read_table(files[kind]), pq.read_table(outputs[kind])
        assert a.replace_schema_metadata(None).equals(b.replace_schema_metadata(None)), kind
    metrics = json.loads((theirs / "metrics.json").read_text())
    trained = json.loads((ours / "metrics.json").read_text())
    assert metrics["source"] == "external"
    assert metrics["checkpoint"]["sha256"] == file_sha256(ours / "model.pt")
    assert metrics["bac"] == trained["bac"]
    assert metrics["train_class_counts"] == trained["train_class_counts"]
    assert pq.read_table(outputs["history"]).num_rows == 0
    # every RQ3-RQ7 table agrees (RQ2's read the training history, which no checkpoint has)
    for rq in ("rq3", "rq4", "rq5", "rq6", "rq7"):
        tables = RUN_TABLES[rq].tables
        for folder, metrics_file in ((ours, ours / "metrics.json"), (theirs, outputs["metrics"])):
            inputs = {k: folder / f"{k}.parquet" for k in ("train", "test", "classifier")}
            out = [folder / rq / f"{t}.{ext}" for t in tables for ext in ("csv", "parquet")]
            analyze_run({**inputs, "metrics": metrics_file}, rq, out, ks=[2, 3], k_fe=7)
        for table in tables:
            assert (ours / rq / f"{table}.csv").read_bytes() == (
                theirs / rq / f"{table}.csv"
            ).read_bytes(), table


def _resolved_entry(name: str, fmt: str, subset: dict, **keys) -> dict:
    """A models entry for seed 0, resolved as the workflow hands it to the stages."""
    from fragility.workflow.config import _for_seed, _model_settings

    entry = {"checkpoint": "x", "format": fmt, "dataset": "digits", "imbalance": "exp10"}
    return _for_seed(_model_settings(name, dict(entry, training_subset=subset, **keys)), 0)


# -- what does not fit is one error, naming it -----------------------------------------------


def test_a_state_dict_that_does_not_fit_names_the_missing_and_unexpected_keys(tmp_path):
    model = LdamResNet(5, n_classes=10, use_norm=False)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state.pop("module.layer3.4.conv2.weight")
    state["module.layer4.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth.tar"
    torch.save({"state_dict": state, "epoch": 3}, path)
    with pytest.raises(FragilityError) as info:
        load_external(path, "ldam_drw", "resnet32")
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "missing keys layer3.4.conv2.weight" in message
    assert "unexpected keys layer4.0.conv1.weight" in message

    small = tmp_path / "resnet20.pth.tar"  # another depth than declared
    save_checkpoint(LdamResNet(3, 10), small)
    with pytest.raises(FragilityError, match=r"missing keys layer1\.3\.conv1\.weight, "):
        load_external(small, "ldam_drw", "resnet32")
    wide = LdamResNet(5, 10).state_dict()
    wide["linear.weight"] = torch.zeros(10, 32)
    torch.save({"state_dict": wide}, tmp_path / "wide.pth.tar")
    with pytest.raises(FragilityError, match=r"shapes differ at \['linear.weight \(10, 32\)"):
        load_external(tmp_path / "wide.pth.tar", "ldam_drw", "resnet32")


def test_unknown_architectures_and_formats_are_one_clear_error(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ConfigError, match="unknown torchvision classification model 'resnet19'"):
        load_external(path, "torchvision", "resnet19")
    with pytest.raises(ConfigError, match="unknown LDAM-DRW arch 'resnet8'"):
        load_external(path, "ldam_drw", "resnet8")
    with pytest.raises(FragilityError, match="not a fragility model.pt: it lacks arch"):
        load_external(path, "fragility")
    with pytest.raises(FragilityError, match="does not exist"):
        load_external(tmp_path / "none.pt", "fragility")


def test_images_of_another_shape_than_the_model_takes_are_one_error(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    save_checkpoint(LdamResNet(5, 10), path)
    loaded = load_external(path, "ldam_drw")
    settings = _resolved_entry("cifar_model", "ldam_drw", {"mode": "none"})
    with pytest.raises(FragilityError) as info:
        preprocessing(loaded, settings, (8, 8, 1))
    assert str(info.value) == (
        "models.cifar_model: the model's first convolution takes 3-channel images, but "
        "dataset digits has 8x8x1 images"
    )
    sized = dict(settings, input_size=[32, 32])
    with pytest.raises(FragilityError, match="input_size is 32x32, but dataset digits has 8x8x3"):
        preprocessing(loaded, sized, (8, 8, 3))
    gray = dict(settings, normalization={"mean": [0.5], "std": [0.2]})
    with pytest.raises(FragilityError, match="1 means and 1 stds, but dataset digits has 32x32x3"):
        preprocessing(loaded, gray, (32, 32, 3))
    # LDAM-DRW's own constants by default
    assert preprocessing(loaded, settings, (32, 32, 3))["std"] == [0.2023, 0.1994, 0.2010]
    # a model whose layers do not chain on these images fails on one blank image, in a line
    flat = ExternalModel(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    probe(flat, (32, 32, 3), "flat")
    with pytest.raises(FragilityError, match=r"^models.flat: the model rejects 8x8x3 images \("):
        probe(flat, (8, 8, 3), "flat")


# -- the training subset -------------------------------------------------------------------------


def reference_imbalance_cifar(targets: list[int], cls_num: int, imb_type, imb_factor, rand_number):
    """LDAM-DRW's IMBALANCECIFAR10/100 sampling as its imbalance_cifar.py runs it (global
    numpy state, float img_max): the selected rows in its order, and its per-class counts."""
    np.random.seed(rand_number)
    img_max = len(targets) / cls_num
    if imb_type == "exp":
        nums = [int(img_max * (imb_factor ** (i / (cls_num - 1.0)))) for i in range(cls_num)]
    elif imb_type == "step":
        nums = [int(img_max)] * (cls_num // 2) + [int(img_max * imb_factor)] * (cls_num // 2)
    else:
        nums = [int(img_max)] * cls_num
    targets_np = np.array(targets, dtype=np.int64)
    selected = []
    for the_class, the_img_num in zip(np.unique(targets_np), nums):
        idx = np.where(targets_np == the_class)[0]
        np.random.shuffle(idx)
        selected.append(idx[:the_img_num])
    return np.concatenate(selected), nums


def test_ldam_drw_sampling_is_reproduced_exactly_from_a_cifar10_file(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.permutation(np.repeat(np.arange(10), 5000))  # CIFAR-10's 5,000 per class, shuffled
    x = np.zeros((50000, 32, 32, 3), np.uint8)
    classes = [f"class{c}" for c in range(10)]
    write_cifar10(tmp_path / "raw", x, y, x[:50], np.arange(50) % 10, classes)
    with open(tmp_path / "raw/cifar-10-batches-py/data_batch_3", "rb") as f:
        batch = pickle.load(f, encoding="latin1")  # as torchvision (and LDAM-DRW) read it
    assert batch["labels"] == y[20000:30000].tolist() and batch["data"].shape == (10000, 3072)

    data = tmp_path / "cifar10.npz"
    data_stages.prepare_data("cifar10", {"root": str(tmp_path / "raw")}, data)
    settings = {"mode": "ldam_drw", "imb_type": "exp", "imb_factor": 0.01, "rand_number": 0}
    settings.update(seed=0, n_test=None, class_order=None)
    split = data_stages.split_external(data, tmp_path / "split.parquet", settings=settings)
    rows, labels = subset_indices(split, "train")
    expected, nums = reference_imbalance_cifar(y.tolist(), 10, "exp", 0.01, 0)
    assert nums == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert np.bincount(labels).tolist() == nums
    assert np.array_equal(rows, np.sort(expected))
    assert np.array_equal(ldam_drw_indices(y, 10, "exp", 0.01, 0), expected)  # its order too
    # the rest of the training array is the pool (RQ1's balanced full set); all test images
    pool = subset_indices(split, "pool")[0]
    assert len(pool) == 50000 - 12406 and not set(pool) & set(rows)
    assert len(subset_indices(split, "test")[0]) == 50 and not len(subset_indices(split, "val")[0])

    for imb_type, factor, number in (("step", 0.1, 3), ("none", 1.0, 1), ("exp", 0.02, 7)):
        got = ldam_drw_indices(y, 10, imb_type, factor, number)
        assert np.array_equal(got, reference_imbalance_cifar(y, 10, imb_type, factor, number)[0])
    y100 = rng.permutation(np.repeat(np.arange(100), 500))  # CIFAR-100: 500 per class
    got = ldam_drw_indices(y100, 100, "exp", 0.01, 0)
    expected, nums = reference_imbalance_cifar(y100, 100, "exp", 0.01, 0)
    assert np.array_equal(got, expected) and nums[0] == 500 and nums[-1] == 5


def test_an_index_file_gives_the_training_subset_and_the_studys_test_images(tmp_path):
    data = tmp_path / "digits.npz"
    data_stages.prepare_data("digits", {}, data)
    y_train, y_test = np.load(data)["y_train"], np.load(data)["y_test"]
    study = make_split(y_train, y_test, "exp10", 100, 4, n_test=20)
    rows = np.flatnonzero(y_train < 5)[::3]
    np.save(tmp_path / "rows.npy", rows)
    pq.write_table(pa.table({"index": rows[::-1]}), tmp_path / "rows.parquet")
    pq.write_table(study, tmp_path / "split.parquet")  # a split file: its train rows
    settings = {"mode": "index_file", "seed": 4, "n_test": 20, "class_order": None}

    def split_of(index_file: str):
        out = tmp_path / "out.parquet"
        return data_stages.split_external(
            data, out, settings=settings, index_path=tmp_path / index_file
        )

    for index_file, expected in (
        ("rows.npy", rows),
        ("rows.parquet", rows),
        ("split.parquet", subset_indices(study, "train")[0]),
    ):
        split = split_of(index_file)
        assert np.array_equal(subset_indices(split, "train")[0], np.sort(expected))
        assert len(subset_indices(split, "pool")[0]) == len(y_train) - len(expected)
        # the test images of the study's own runs of that seed
        assert np.array_equal(subset_indices(split, "test")[0], subset_indices(study, "test")[0])
    np.save(tmp_path / "bad.npy", np.array([3, 5000]))
    with pytest.raises(FragilityError, match="row 5000 lies outside the training array"):
        split_of("bad.npy")
    np.save(tmp_path / "twice.npy", np.array([3, 3]))
    with pytest.raises(FragilityError, match="lists some training rows twice"):
        split_of("twice.npy")


# -- the config ----------------------------------------------------------------------------------


def _study(models: dict, **extra) -> Study:
    """A config with digits and ``models`` (plus ``extra`` sections), validated as the
    workflow validates it, then resolved."""
    config = {"datasets": {"digits": {"split": {"n_max": 100, "n_test": 30}}}, "models": models}
    config.update(extra)
    validate(config, str(SCHEMA_PATH))
    return Study(config)


def _entry(**keys) -> dict:
    base = {"checkpoint": "ckpt.pth.tar", "format": "ldam_drw", "dataset": "digits"}
    base.update(imbalance="exp10", normalization={"mean": [0.5], "std": [0.25]})
    return {**base, **keys}


def _config_error(models: dict, **extra) -> str:
    with pytest.raises(ConfigError) as info:
        _study(models, **extra)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_study_of_models_alone_resolves_each_seed_and_says_what_cannot_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for seed in (0, 1, 2):
        Path(f"ckpt{seed}.pth.tar").touch()
    study = _study(
        {
            "ldam": _entry(checkpoint="ckpt{seed}.pth.tar", seeds=[0, 1, 2],
                           training_subset={"mode": "ldam_drw"}),
            "blind": _entry(checkpoint="ckpt0.pth.tar"),
        }
    )  # fmt: skip
    assert [r.path for r in study.runs] == [f"digits/exp10/ldam/seed{s}" for s in (0, 1, 2)]
    assert [r.path for r in study.test_only_runs] == ["digits/exp10/blind/seed0"]
    seed2 = study.external_settings(study.runs[2])
    assert seed2["checkpoint"] == "ckpt2.pth.tar" and seed2["arch"] == "resnet32"
    assert study.external_split_settings(study.runs[2]) == {
        "mode": "ldam_drw", "imb_type": "exp", "imb_factor": 0.1, "rand_number": 2,
        "seed": 2, "n_test": 30, "class_order": None,
    }  # fmt: skip
    assert study.run_names() == ["blind", "ldam"] and study.runs_for(loss="blind")
    assert study.remedy_base_runs() == study.runs  # the blind model gets no remedies
    (note,) = study.notes
    assert note.startswith("models.blind: its training subset is unknown") and "RQ2-RQ7" in note
    with pytest.raises(ConfigError, match="trained elsewhere"):
        study.train_settings(study.runs[0])


def test_model_config_errors_name_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ckpt.pth.tar").touch()
    assert "no file ckpt/none.pt (relative paths start at the working directory)" in _config_error(
        {"m": _entry(checkpoint="ckpt/none.pt")}
    )
    assert _config_error({"m": _entry(seeds=[0, 1])}).startswith(
        "models.m.checkpoint: 2 seeds need one checkpoint each; write '{seed}'"
    )
    runs = [{"dataset": "digits", "imbalance": ["exp10"], "loss": ["ce"]}]
    assert _config_error({"ce": _entry()}, losses={"ce": {"loss": "ce"}}, runs=runs).startswith(
        "models.ce: 'ce' is also the name of a loss under 'losses'"
    )
    assert _config_error(
        {"m": _entry(format="entry_point", arch="mine.py:load", normalization=None)}
    ) == ("models.m.normalization: give the mean and std the model was trained with")
    assert "does not match imbalance 'exp10'" in _config_error(
        {"m": _entry(training_subset={"mode": "ldam_drw", "imb_factor": 0.02})}
    )
    assert _config_error({"m": _entry(training_subset={"mode": "index_file"})}) == (
        "models.m.training_subset.path: mode index_file needs the file"
    )
    assert _config_error({"m": _entry(imbalance="exp")}).startswith(
        "models.m.imbalance: malformed imbalance 'exp'"
    )
    tau = {"methods": {"tau": {"method": "tau_norm"}}}
    assert "model 'm' has none" in _config_error(
        {"m": _entry(training_subset={"mode": "ldam_drw"})}, remedies=tau
    )
    from snakemake.exceptions import WorkflowError

    with pytest.raises(
        WorkflowError, match=r"Additional properties are not allowed \('checkpiont'"
    ):
        _study({"m": _entry(checkpiont="x")})  # every key of a model entry is in the schema


def test_trust_checkpoint_is_an_explicit_opt_in_of_one_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ckpt.pth.tar").touch()
    study = _study({"trusted": _entry(trust_checkpoint=True), "plain": _entry()})
    settings = {run.loss: study.external_settings(run) for run in study.runs_for()}
    assert settings["trusted"]["trust_checkpoint"] is True
    assert "trust_checkpoint" not in settings["plain"]  # unchanged settings: no rerun
    assert _config_error(
        {"m": _entry(format="entry_point", arch="mine.py:load", trust_checkpoint=True)}
    ).startswith("models.m.trust_checkpoint: an entry point reads its checkpoint itself")
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="'yes' is not of type 'boolean'"):
        _study({"m": _entry(trust_checkpoint="yes")})


def test_a_checkpoint_this_study_trains_needs_not_exist_yet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [{"dataset": "digits", "imbalance": ["exp10"], "loss": ["ce"]}]
    ours = _entry(checkpoint="results/digits/exp10/ce/seed0/model.pt", format="fragility")
    ours.update(trained_with={"loss": "focal", "epochs": 20}, training_subset={"mode": "study"})
    study = _study({"ours": ours}, losses={"ce": {"loss": "ce"}}, runs=runs)
    assert [r.loss for r in study.trained_runs] == ["ce"]
    assert [r.loss for r in study.runs] == ["ce", "ours"]
    # what the claims compare a model with: its loss entry, or what trained_with says
    assert study.loss_entry("ours")["loss"] == "focal" and study.loss_entry("ce")["loss"] == "ce"


def test_the_external_preset_is_a_valid_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / "presets/external.yaml").read_text())
    for entry in config["models"].values():
        Path(entry["checkpoint"]).parent.mkdir(parents=True, exist_ok=True)
        Path(entry["checkpoint"]).touch()
    Path("data").mkdir()
    Path("data/fmnist_cifar.npz").touch()  # built: its raw files are not looked for
    validate(config, str(SCHEMA_PATH))
    study = Study(config)
    assert study.runs and all(study.is_external(r) for r in study.runs)


# -- through the workflow ------------------------------------------------------------------------

GRAY = {"mean": [0.3], "std": [0.4]}  # digits have one channel (LDAM-DRW's constants three)
LDAM = "digits/exp10/ldam/seed0"
BLIND = "digits/exp10/blind/seed0"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An LDAM-DRW-format ResNet-32 (NormedLinear, DataParallel keys) trained one epoch on its
    IMBALANCECIFAR10-style exp10 subset of the digits, and a copy for a second model."""
    folder = tmp_path_factory.mktemp("checkpoints")
    train_ldam_checkpoint(
        None, str(folder / "ldam.pth.tar"), dataset="digits", imbalance="exp10", epochs=1,
        normalization=GRAY,
    )  # fmt: skip
    (folder / "blind.pth.tar").write_bytes((folder / "ldam.pth.tar").read_bytes())
    return folder


def external_config(checkpoints: Path) -> dict:
    return {
        "device": "cpu",
        "check_inputs": True,
        "analysis": {"bootstrap": 100, "retrain_epochs": 5},
        "datasets": {"digits": {"split": {"n_max": 100, "n_test": 30}}},
        "models": {
            "ldam": {
                "checkpoint": str(checkpoints / "ldam.pth.tar"), "format": "ldam_drw",
                "dataset": "digits", "imbalance": "exp10", "normalization": GRAY,
                "trained_with": {"loss": "ldam", "epochs": 1},
                "training_subset": {"mode": "ldam_drw"},
            },
            "blind": {
                "checkpoint": str(checkpoints / "blind.pth.tar"), "format": "ldam_drw",
                "dataset": "digits", "imbalance": "exp10", "normalization": GRAY,
            },
        },
        "remedies": {"methods": {"crt": {"method": "crt", "epochs": 2}}},
    }  # fmt: skip


def external_targets() -> list[str]:
    from fragility.catalog.outputs import RUN_TABLES

    targets = [f"results/{LDAM}/{rq}/{t}.csv" for rq, s in RUN_TABLES.items() for t in s.tables]
    targets += [f"results/{LDAM}/rq4/fig4_class_mean_ce.png"]
    targets += [f"results/{LDAM}/remedies/crt/metrics.json"]
    targets += [f"results/{BLIND}/metrics.json", f"results/{BLIND}/rq1/retrained.csv"]
    return targets + ["results/tables/claims.csv", "results/tables/summary.rst"]


def _write_config(folder: Path, config: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def external_run(tmp_path_factory, checkpoints):
    workdir = tmp_path_factory.mktemp("external")
    configfile = _write_config(workdir, external_config(checkpoints))
    result = run_snakemake(workdir, configfile, *external_targets())
    assert result.returncode == 0, result.stderr[-4000:]
    assert "note: models.blind: its training subset is unknown" in result.stderr
    return workdir, configfile


@pytest.mark.slow
def test_an_external_model_goes_through_every_analysis_claim_and_the_report(
    external_run, checkpoints
):
    workdir, configfile = external_run
    results = workdir / "results"
    metrics = json.loads((results / LDAM / "metrics.json").read_text())
    assert metrics["source"] == "external" and metrics["select"] == "external"
    assert metrics["checkpoint"]["sha256"] == file_sha256(checkpoints / "ldam.pth.tar")
    assert metrics["kept_epoch"] == 1 and metrics["analyses_not_run"] == []
    # LDAM-DRW's exp10 counts on the 1,433 training digits: int(143.3 * 0.1 ** (i / 9)),
    # and all 142 of class 0, which has fewer than 143
    y_train = np.load(workdir / "data/digits.npz")["y_train"]
    assert len(y_train) == 1433 and np.bincount(y_train)[0] == 142
    assert metrics["train_class_counts"] == [142, 110, 85, 66, 51, 39, 30, 23, 18, 14]
    for kind in ("train", "test", "pool"):
        emb = read_embeddings(results / LDAM / f"embeddings/{kind}.parquet")
        classifier = read_classifier(results / LDAM / "embeddings/classifier.parquet")
        assert classifier["normed"]  # the NormedLinear head: cosines, the CE invariant
        rebuilt = prepare_fe(emb["fe"], True) @ classifier["weight"].astype(np.float64).T
        assert np.abs(rebuilt + classifier["bias"] - emb["logits"]).max() <= 1e-4
    assert len(read_embeddings(results / LDAM / "embeddings/pool.parquet")["index"]) == 1433
    claims = pq.read_table(results / "tables/claims.parquet").to_pylist()
    assert {row["loss"] for row in claims} == {"ldam"}  # the blind model has no training set
    assert all(row["verdict"] in ("holds", "fails", "inconclusive", "n/a") for row in claims)
    assert "digits / exp10 / ldam" in (results / "tables/summary.rst").read_text()
    crt = json.loads((results / LDAM / "remedies/crt/metrics.json").read_text())
    assert crt["method"] == "crt" and 0 <= crt["bac"] <= 1
    blind = json.loads((results / BLIND / "metrics.json").read_text())
    assert blind["train_class_counts"] is None and "rq3" in blind["analyses_not_run"]
    assert not (results / BLIND / "rq3").exists()
    assert pq.read_table(results / BLIND / "embeddings/train.parquet").num_rows == 0

    report = run_snakemake(workdir, configfile, "--report", "report.html", *external_targets())
    assert report.returncode == 0, report.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert "digits exp10 ldam seed0" in html and "fig4_class_mean_ce" in html


@pytest.mark.slow
def test_a_changed_checkpoint_reruns_only_its_own_analyses(external_run, checkpoints):
    workdir, configfile = external_run
    again = run_snakemake(workdir, configfile, "-n", *external_targets())
    assert "Nothing to be done" in again.stdout + again.stderr
    state = torch.load(checkpoints / "ldam.pth.tar", weights_only=True)
    state["state_dict"]["module.linear.weight"] += 0.01
    torch.save(state, checkpoints / "ldam.pth.tar")
    result = run_snakemake(workdir, configfile, "-n", *external_targets())
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_jobs(result)
    for rule in (
        "extract_external_embeddings",
        "retrain_classifier",
        "bootstrap_run",
        "apply_remedy",
    ):
        assert planned.pop(rule) == 1, rule
    assert all(planned.pop(f"analyze_rq{n}") == 1 for n in range(2, 8))
    assert not {"make_external_split", "prepare_dataset", "train_model"} & set(planned)
    outputs = re.findall(r"^\s*output: (.+)$", result.stdout, re.MULTILINE)
    assert outputs and not any("/blind/" in line for line in outputs)


def test_the_dag_enters_at_the_checkpoint_and_skips_what_needs_the_training_set(
    tmp_path, checkpoints
):
    """A model.pt this study trains is a checkpoint too: the DAG trains it, then analyses it
    as the external model; a model of unknown training subset gets no train-set job."""
    config = external_config(checkpoints)
    config["losses"] = {"ce": {"loss": "ce"}}
    config["runs"] = [{"dataset": "digits", "imbalance": ["exp10"], "loss": ["ce"]}]
    config["models"]["ours"] = {
        "checkpoint": "results/digits/exp10/ce/seed0/model.pt", "format": "fragility",
        "dataset": "digits", "imbalance": "exp10", "training_subset": {"mode": "study"},
    }  # fmt: skip
    result = run_snakemake(tmp_path, _write_config(tmp_path, config), "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_jobs(result)
    assert planned["train_model"] == 1 and planned["extract_embeddings"] == 1
    assert planned["extract_external_embeddings"] == 3 and planned["make_external_split"] == 3
    assert planned["analyze_rq3"] == 3 and planned["retrain_classifier"] == 4  # blind: RQ1 only
    outputs = " ".join(re.findall(r"^\s*output: (.+)$", result.stdout, re.MULTILINE))
    assert f"results/{BLIND}/rq1/retrained.csv" in outputs
    assert not re.search(rf"results/{BLIND}/(rq[2-7]|uncertainty|remedies)/", outputs)
    assert "results/digits/exp10/ours/seed0/rq2/fig2_class_accuracy.png" in outputs
    assert "results/digits/exp10/ours/seed0/rq2/training_dynamics.png" not in outputs
