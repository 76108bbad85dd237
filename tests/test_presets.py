"""A study is what its config file says: each preset's dry run plans its own runs and no
others, even with the default study's config.yaml in the working folder (where Snakemake
alone would lay the preset over it); presets/external.yaml trains nothing."""

import itertools
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake_cli import REPO, run_snakemake

PRESETS = sorted((REPO / "presets").glob("*.yaml"))
RUN_FOLDER = r"([^/\s,]+)/([^/\s,]+)/([^/\s,]+)/seed(\d+)/"


def own_runs(preset: Path) -> set[tuple[str, str, str, int]]:
    """The runs a preset's own text asks for: its `runs` groups (every combination) and its
    `models` (one per seed), read from the file alone."""
    config = yaml.safe_load(preset.read_text())
    runs = set()
    for group in config.get("runs", []):
        combos = itertools.product(group["imbalance"], group["loss"], group.get("seeds", [0]))
        runs |= {(group["dataset"], imb, loss, int(seed)) for imb, loss, seed in combos}
    for name, entry in config.get("models", {}).items():
        runs |= {(entry["dataset"], entry["imbalance"], name, s) for s in entry.get("seeds", [0])}
    return runs


def planned(result) -> tuple[dict[str, int], str]:
    """The dry run's job counts by rule, and every output path it lists."""
    counts = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    outputs = " ".join(re.findall(r"^\s*output: (.+)$", result.stdout, re.MULTILINE))
    return counts, outputs


def _workdir(tmp_path: Path) -> Path:
    """A working folder as a user's checkout is: the default study's config.yaml in it, the
    canonical files of every dataset a preset names built (tiny: a dry run reads only their
    shapes) and the external preset's checkpoint (empty: a dry run does not read it)."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "data").mkdir()
    for name in ("fashion_mnist", "fmnist_cifar", "digits", "cifar10", "svhn", "celeba"):
        images = np.zeros((10, 8, 8, 1), np.uint8)  # the job sizes read the array shapes
        labels = np.arange(10, dtype=np.int64)
        classes = np.array([str(c) for c in range(10)])
        np.savez(tmp_path / "data" / f"{name}.npz", x_train=images, y_train=labels,
                 x_test=images, y_test=labels, classes=classes, name=np.array(name))  # fmt: skip
    checkpoint = tmp_path / "checkpoints/fmnist_ldam/ckpt.pth.tar"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.touch()
    return tmp_path


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_a_preset_s_dry_run_plans_its_own_runs_only(tmp_path, preset):
    result = run_snakemake(_workdir(tmp_path), preset, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    counts, outputs = planned(result)
    results = yaml.safe_load(preset.read_text()).get("results")
    if results is None:  # a preset that extends config.yaml may keep its results folder
        results = yaml.safe_load((REPO / "config.yaml").read_text())["results"]
    folders = {
        (d, i, loss, int(s))
        for d, i, loss, s in re.findall(rf"(?:^|[ ,]){re.escape(results)}/{RUN_FOLDER}", outputs)
    }
    expected = own_runs(preset)
    assert folders == expected
    models = yaml.safe_load(preset.read_text()).get("models", {})
    assert counts.get("train_model", 0) == len([r for r in expected if r[2] not in models])
    if preset.stem == "external":  # the README's worked example: no training at all
        assert "train_model" not in counts and "make_split" not in counts
        assert counts["extract_external_embeddings"] == counts["make_external_split"] == 1
        assert "fashion_mnist" not in outputs  # nothing of config.yaml's study
