"""Bad files, as a family, in a tiny study run through the workflow: each damaged or wrong file
a stage reads stops its job with one line naming the file and what is wrong (no traceback),
every output that does not depend on it stays byte for byte what it was, and once the file is
fixed a rerun rebuilds only what depends on it.

The study (built once per module, then copied for each case): an image folder of 8x8 digits
in three classes, one trained run (exp4, cross-entropy, one epoch) with its embeddings and
RQ2 tables, and one LDAM-DRW-format model trained elsewhere with its embeddings.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from ldam_drw import LdamResNet, save_checkpoint
from PIL import Image
from snakemake_cli import run_snakemake

from fragility.data.splits import read_split
from fragility.embeddings.files import read_classifier, read_embeddings
from fragility.errors import FragilityError

RUN = "results/tiny/exp4/ce/seed0"
THEIRS = "results/tiny/exp4/theirs/seed0"
SPLIT = "results/tiny/exp4/split_seed0.parquet"
TARGETS = [f"{RUN}/rq2/table2.csv", f"{THEIRS}/metrics.json"]
NOT_COMPARED = ("results/logs/", "results/benchmarks/", "results/.gpu_slots/")


class WritesAMarker:
    """What a tampered checkpoint may hold: unpickling it calls ``os.system``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def study_config(trust: bool = False) -> dict:
    theirs = {
        "checkpoint": "theirs.pth.tar", "format": "ldam_drw", "arch": "resnet20",
        "dataset": "tiny", "imbalance": "exp4", "normalization": {"mean": [0.5], "std": [0.25]},
    }  # fmt: skip
    if trust:
        theirs["trust_checkpoint"] = True
    return {
        "device": "cpu",
        "training": {"arch": "resnet8", "epochs": 1, "batch_size": 16, "augment": False},
        "datasets": {
            "tiny": {
                "loader": "image_folder",
                "root": "images",
                "options": {"image_size": 8, "grayscale": True},
                "split": {"n_max": 20, "n_test": 8},
            }
        },
        "losses": {"ce": {"loss": "ce"}},
        "runs": [{"dataset": "tiny", "imbalance": ["exp4"], "loss": ["ce"]}],
        "models": {"theirs": theirs},
    }


def _write_images(root: Path) -> None:
    """Digits 0, 1 and 2 of scikit-learn's 8x8 set: 25 training and 8 test images each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)
    for label in range(3):
        rows = np.flatnonzero(digits.target == label)
        for split, chosen in (("train", rows[:25]), ("test", rows[25:33])):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i, row in enumerate(chosen):
                Image.fromarray(images[row], "L").save(folder / f"img{i:03d}.png")


def _checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under data/ and results/ (logs and benchmarks aside)."""
    out = {}
    for folder in ("data", "results"):
        for path in sorted((root / folder).rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_file() and not name.startswith(NOT_COMPARED):
                out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _file_dag(dry_run: str) -> dict[str, set[str]]:
    """file -> the files made from it directly, from a dry run's job listing."""
    edges: dict[str, set[str]] = {}
    inputs: list[str] = []
    for line in dry_run.splitlines():
        if re.match(r"^(local)?rule \w+:", line):
            inputs = []
        match = re.match(r"^\s+(input|output): (.+)$", line)
        if match and match.group(1) == "input":
            inputs = [p.strip() for p in match.group(2).split(",")]
        elif match:
            for source in inputs:
                edges.setdefault(source, set()).update(p.strip() for p in match.group(2).split(","))
    return edges


def _depending_on(edges: dict[str, set[str]], start: str) -> set[str]:
    """``start`` and every file made from it, directly or not."""
    seen, todo = {start}, [start]
    while todo:
        for child in edges.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@dataclass
class Study:
    root: Path
    checksums: dict[str, str]
    edges: dict[str, set[str]]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Study:
    root = tmp_path_factory.mktemp("tiny_study")
    _write_images(root / "images")
    torch.manual_seed(0)
    save_checkpoint(LdamResNet(3, n_classes=3, in_channels=1).eval(), root / "theirs.pth.tar")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(study_config()))
    built = run_snakemake(root, config, *TARGETS)
    assert built.returncode == 0, built.stderr[-4000:]
    plan = run_snakemake(root, config, "-n", "--forceall", *TARGETS)
    assert plan.returncode == 0, plan.stderr[-3000:]
    return Study(root, _checksums(root), _file_dag(plan.stdout))


# -- how each file is damaged -----------------------------------------------------------------


def _cut(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _npz_label(path: Path) -> None:
    with np.load(path) as z:
        arrays = dict(z)
    arrays["y_train"][0] = 5
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _split_label(path: Path) -> None:
    table = pq.read_table(path)
    labels = table.column("label").to_numpy().copy()
    labels[0] = 7
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels))
    pq.write_table(table, path)


def _nan_weight(key: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        payload = torch.load(path, weights_only=True)
        payload["state_dict"][key].view(-1)[0] = float("nan")
        torch.save(payload, path)

    return damage


def _marker(where: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        payload = torch.load(path, weights_only=True)
        payload[where] = WritesAMarker(str(path.parent.resolve() / "MARKER"))
        torch.save(payload, path)

    return damage


def _nan_fe(path: Path) -> None:
    table = pq.read_table(path)
    fe = table.column("fe").combine_chunks()
    values = fe.values.to_numpy().copy()
    values[3] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(values), fe.type.list_size)
    pq.write_table(table.set_column(table.schema.get_field_index("fe"), "fe", column), path)


def _empty_class(folder: Path) -> None:
    for image in folder.glob("*.png"):
        image.unlink()


@dataclass
class Case:
    file: str  # the damaged file (a folder for an empty class)
    damage: Callable[[Path], None]
    message: str  # the error line, a regular expression
    source: str | None = None  # what the damage reaches first in the DAG (default: file)
    args: tuple[str, ...] = ()
    rerun: bool = False  # also check the rerun after the fix


PNG = "images/train/1/img012.png"
CASES = {
    "corrupt image": Case(
        PNG, _cut, rf"cannot read image {PNG}: ", "data/tiny.npz", ("-R", "prepare_dataset"), True
    ),
    "empty class folder": Case(
        "images/test/2", _empty_class, r"image_folder: no images in images/test/2 \(",
        "data/tiny.npz", ("-R", "prepare_dataset"),
    ),
    "truncated canonical npz": Case(
        "data/tiny.npz", _cut,
        r"data/tiny\.npz is not a readable canonical dataset file \(truncated or damaged\?\): ",
    ),
    "npz labels outside the class range": Case(
        "data/tiny.npz", _npz_label,
        r"data/tiny\.npz: image_folder: y_train has 1 labels outside the class range 0\.\.2 "
        r"\(e\.g\. 5\); delete it to have it built again$",
    ),
    "truncated split": Case(
        SPLIT, _cut, rf"{SPLIT} is not a readable Parquet file \(truncated or damaged\?\): ", rerun=True
    ),
    "split labels outside the class range": Case(
        SPLIT, _split_label,
        rf"{SPLIT}: 1 labels lie outside the class range 0\.\.2 of image_folder \(e\.g\. 7\)$",
    ),
    "truncated model.pt": Case(
        f"{RUN}/model.pt", _cut,
        rf"cannot read checkpoint {RUN}/model\.pt \(truncated or damaged\?\): ", rerun=True,
    ),
    "NaN weight in model.pt": Case(
        f"{RUN}/model.pt", _nan_weight("conv1.weight"),
        rf"{RUN}/model\.pt: conv1\.weight holds 1 NaN or infinite value; the checkpoint is "
        r"damaged or its training diverged$",
    ),
    "model.pt that would run code": Case(
        f"{RUN}/model.pt", _marker("metadata"),
        rf"{RUN}/model\.pt is refused: besides weights it names posix\.system, .*convert-model",
    ),
    "truncated embeddings": Case(
        f"{RUN}/embeddings/test.parquet", _cut,
        rf"{RUN}/embeddings/test\.parquet is not a readable Parquet file \(truncated or damaged\?\)",
    ),
    "NaN FE in embeddings": Case(
        f"{RUN}/embeddings/test.parquet", _nan_fe,
        rf"{RUN}/embeddings/test\.parquet: column 'fe' holds 1 NaN or infinite values; delete "
        r"the file to have it rebuilt$",
    ),
    "truncated metrics.json": Case(
        f"{RUN}/metrics.json", _cut,
        rf"{RUN}/metrics\.json is not a readable JSON file \(truncated or damaged\?\): ",
    ),
    "truncated foreign checkpoint": Case(
        "theirs.pth.tar", _cut,
        r"cannot read checkpoint theirs\.pth\.tar \(truncated or damaged\?\): ", rerun=True,
    ),
    "NaN weight in a foreign checkpoint": Case(
        "theirs.pth.tar", _nan_weight("module.layer1.0.conv1.weight"),
        r"theirs\.pth\.tar: layer1\.0\.conv1\.weight holds 1 NaN or infinite value; ",
    ),
    "foreign checkpoint that would run code": Case(
        "theirs.pth.tar", _marker("note"),
        r"theirs\.pth\.tar is refused: besides weights it names posix\.system, which loading "
        r"would run or build \(code of the file's choosing\); if you trust whoever made it, set "
        r"trust_checkpoint: true on models\.theirs to load it in full$",
    ),
}  # fmt: skip


def _copy(study: Study, tmp_path: Path) -> Path:
    root = tmp_path / "study"
    shutil.copytree(study.root, root, symlinks=True)  # copy2: the files keep their times
    return root


def _planned_outputs(result) -> set[str]:
    found = re.findall(r"^\s*output: (.+)$", result.stdout, re.MULTILINE)
    return {p.strip() for line in found for p in line.split(",")}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_file_is_one_line_and_touches_nothing_else(tiny_study, tmp_path, case):
    root = _copy(tiny_study, tmp_path)
    original = (root / case.file).read_bytes() if (root / case.file).is_file() else None
    case.damage(root / case.file)
    config = root / "config.yaml"
    result = run_snakemake(root, config, *TARGETS, *case.args)  # -R takes every value after it
    console = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in console.splitlines() if line.startswith("error: ")]
    assert errors and re.search(f"^error: {case.message}", errors[0]), console[-3000:]
    assert all(line == errors[0] for line in errors)  # the log, shown again: the same line
    assert "Traceback" not in console
    assert not list(root.rglob("MARKER"))  # nothing the file asked for ran

    # what does not depend on the bad file is byte for byte what it was; what does is the old
    # file or gone (a failed job's outputs are removed), never something half-written
    depending = _depending_on(tiny_study.edges, case.source or case.file)
    after = _checksums(root)
    for name, digest in tiny_study.checksums.items():
        if name not in depending:
            assert after.get(name) == digest, f"{name} changed"
        elif name != case.file:
            assert after.get(name) in (digest, None), f"{name} was rewritten"
    assert set(after) <= set(tiny_study.checksums), "new files"
    assert not [p for p in root.rglob("*.tmp") if ".snakemake" not in p.parts]

    if case.rerun:  # fixed (a new copy: a new time), only what depends on it is rebuilt
        if original is None:
            shutil.copytree(tiny_study.root / case.file, root / case.file, dirs_exist_ok=True)
        else:
            (root / case.file).write_bytes(original)
        again = run_snakemake(root, config, "-n", *TARGETS, *case.args)
        assert again.returncode == 0, again.stderr[-3000:]
        rebuilt = _planned_outputs(again)
        assert rebuilt and rebuilt <= depending, rebuilt - depending


def test_a_trusted_foreign_checkpoint_loads_in_full_and_says_so(tiny_study, tmp_path):
    root = _copy(tiny_study, tmp_path)
    _marker("note")(root / "theirs.pth.tar")
    config = root / "trusted.yaml"
    config.write_text(yaml.safe_dump(study_config(trust=True)))
    result = run_snakemake(root, config, *TARGETS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "MARKER").exists()  # what the user accepted: the pickle ran
    import json

    metrics = json.loads((root / THEIRS / "metrics.json").read_text())
    assert metrics["trusted"] is True and metrics["model"]["trust_checkpoint"] is True
    plain = json.loads((tiny_study.root / THEIRS / "metrics.json").read_text())
    assert plain["trusted"] is False


# -- the readers themselves ---------------------------------------------------------------------


def test_a_split_of_another_dataset_version_is_refused(tiny_study, tmp_path):
    from fragility.data.datasets import load_canonical

    canonical = load_canonical(tiny_study.root / "data/tiny.npz")
    split = tmp_path / "split.parquet"
    table = pq.read_table(tiny_study.root / SPLIT)
    read_split(tiny_study.root / SPLIT, canonical)  # the real one passes
    labels = table.column("label").to_numpy().copy()
    labels[0] = (labels[0] + 1) % 3  # a valid class, but not this image's
    pq.write_table(table.set_column(1, "label", pa.array(labels)), split)
    with pytest.raises(FragilityError, match="1 labels differ from those of .*another version"):
        read_split(split, canonical)
    index = table.column("index").to_numpy().copy()
    index[0] = 10_000
    pq.write_table(table.set_column(0, "index", pa.array(index)), split)
    with pytest.raises(FragilityError, match="row 10000 lies outside the training array"):
        read_split(split, canonical)
    pq.write_table(table.drop_columns(["subset"]), split)
    with pytest.raises(FragilityError, match="is not a split file: it has no column 'subset'"):
        read_split(split, canonical)


def test_embeddings_and_classifier_files_are_checked_when_read(tiny_study, tmp_path):
    test = tiny_study.root / RUN / "embeddings/test.parquet"
    classifier = tiny_study.root / RUN / "embeddings/classifier.parquet"
    read_embeddings(test), read_classifier(classifier)  # the real ones pass
    bad = tmp_path / "test.parquet"
    table = pq.read_table(test)
    pq.write_table(table.drop_columns(["logits"]), bad)
    with pytest.raises(FragilityError, match="is not an embeddings file: it has no column 'log"):
        read_embeddings(bad)
    labels = table.column("label").to_numpy().copy()
    labels[2] = 3
    pq.write_table(table.set_column(1, "label", pa.array(labels)), bad)
    with pytest.raises(FragilityError, match=r"1 labels lie outside the class range 0\.\.2"):
        read_embeddings(bad)
    weights = pq.read_table(classifier)
    bias = weights.column("bias").to_numpy().copy()
    bias[1] = np.inf
    pq.write_table(weights.set_column(2, "bias", pa.array(bias)), bad)
    with pytest.raises(FragilityError, match="column 'bias' holds 1 NaN or infinite values"):
        read_classifier(bad)


def test_a_model_giving_non_finite_fe_or_logits_writes_nothing(tmp_path, monkeypatch):
    from fragility.embeddings import extraction as embeddings
    from fragility.training.models import build_model

    real_embed = embeddings.embed

    def overflowing_on_test(model, images, *args, **kwargs):
        fe, logits = real_embed(model, images, *args, **kwargs)
        if len(images) == 4:  # the test subset: as if its images made the model overflow
            logits[2, 1] = np.inf
        return fe, logits

    monkeypatch.setattr(embeddings, "embed", overflowing_on_test)
    model = build_model("resnet8", 3, 1, False).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    subsets = {"train": (np.arange(6), images, np.zeros(6, np.int64))}
    subsets["test"] = (np.arange(10, 14), images[:4], np.zeros(4, np.int64))
    outputs = {name: tmp_path / f"{name}.parquet" for name in ("train", "test", "classifier")}
    norm = {"mean": [0.5], "std": [0.25]}
    with pytest.raises(FragilityError) as error:
        embeddings.write_embeddings(model, norm, subsets, outputs, {}, "cpu", source="model.pt")
    assert str(error.value) == (
        "model.pt gives NaN or infinite FE or logits for 1 of 4 test images (the first: row "
        "12); its weights are damaged or overflow on these images"
    )
    assert list(tmp_path.iterdir()) == []  # not even the train subset, embedded before it
