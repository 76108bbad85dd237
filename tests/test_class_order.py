"""A split's class order: drawn from the seed (``class_order: seeded``) or given, recorded in
the split file and metrics.json, followed by every per-run table, and one order per results
root (the preset of seeded orders runs under its own)."""

import copy
import json
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from snakemake.utils import update_config, validate
from snakemake_cli import REPO, SMOKE, run_snakemake

from fragility.analysis.inputs import GROUP_SHARE, RunInputs
from fragility.analysis.tables import rq_tables
from fragility.catalog.layout import EMBEDDINGS
from fragility.data.splits import (
    CLASS_ORDER_MODES,
    class_counts,
    seeded_class_order,
    subset_indices,
)
from fragility.errors import ConfigError
from fragility.io import read_parquet_metadata
from fragility.workflow.config import SCHEMA_PATH, Study, load_schema
from fragility.workflow.stages import data as data_stages
from fragility.workflow.stages import embeddings as embedding_stages
from fragility.workflow.stages.training import MODEL_OUTPUTS, train_run

SEED = 2
DRAW = {"imbalance": "exp10", "seed": SEED, "n_max": 60, "n_val": 10, "n_test": 20}
ORDER = seeded_class_order(10, SEED)  # [4, 2, 3, 7, 0, 9, 8, 5, 1, 6]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    data_stages.prepare_data("digits", {}, path)
    return path


@pytest.fixture(scope="module")
def seeded_run(digits, tmp_path_factory):
    """A one-epoch digits run on a seeded exp10 split: its folder, with embeddings."""
    run = tmp_path_factory.mktemp("run")
    data_stages.split_dataset(digits, run / "split.parquet", **DRAW, class_order="seeded")
    settings = {"arch": "resnet8", "epochs": 1, "batch_size": 64, "flip": False, "seed": SEED}
    info = {"dataset": "digits", "imbalance": "exp10", "loss": "ce", "seed": SEED}
    train_run(
        digits, run / "split.parquet", [run / n for n in MODEL_OUTPUTS],
        settings=settings, run_keys=info, device="cpu", progress=False,
    )  # fmt: skip
    files = {kind: run / f"{kind}.parquet" for kind in EMBEDDINGS}
    embedding_stages.extract_run(
        digits, run / "split.parquet", run / "model.pt", list(files.values()), device="cpu"
    )
    return run


def test_the_schema_offers_the_named_orders_the_splits_know():
    schema = load_schema()["properties"]["datasets"]["additionalProperties"]
    class_order = schema["properties"]["split"]["properties"]["class_order"]
    assert class_order["then"]["enum"] == list(CLASS_ORDER_MODES)
    assert class_order["default"] == "label"


def test_the_split_file_records_its_class_order(digits, tmp_path):
    for setting, order, mode in (
        ("seeded", ORDER, "seeded"),
        ("label", list(range(10)), "label"),
        (None, list(range(10)), "label"),
        ([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], list(range(9, -1, -1)), "explicit"),
    ):
        path = tmp_path / "split.parquet"
        split = data_stages.split_dataset(digits, path, **DRAW, class_order=setting)
        meta = read_parquet_metadata(path)
        assert json.loads(meta["class_order"]) == order and meta["class_order_mode"] == mode
        assert meta["seed"] == str(SEED) and meta["imbalance"] == "exp10"
        counts = np.bincount(subset_indices(split, "train")[1], minlength=10)
        assert [counts[c] for c in order] == class_counts("exp10", 60, 10)


def test_a_model_trained_elsewhere_on_the_study_s_split_gets_its_order(digits, seeded_run):
    # training_subset.mode study: the same seeded split, recorded the same way
    out = seeded_run.parent / "external_split.parquet"
    settings = {"mode": "study", "class_order": "seeded", **DRAW}
    table = data_stages.split_external(digits, out, settings=settings)
    assert table.equals(pq.read_table(seeded_run / "split.parquet"))
    meta = read_parquet_metadata(out)
    assert json.loads(meta["class_order"]) == ORDER and meta["class_order_mode"] == "seeded"


def test_metrics_json_records_the_class_order(seeded_run):
    metrics = json.loads((seeded_run / "metrics.json").read_text())
    assert metrics["class_order"] == ORDER and metrics["class_order_mode"] == "seeded"
    counts = class_counts("exp10", 60, 10)  # 60, 46, 35, 27, 21, 16, 12, 9, 7, 6
    assert [metrics["train_class_counts"][c] for c in ORDER] == counts


def test_the_per_run_tables_name_the_seeded_majority_minority_and_groups(seeded_run):
    files = {kind: seeded_run / f"{kind}.parquet" for kind in ("train", "test", "classifier")}
    files.update(metrics=seeded_run / "metrics.json", history=seeded_run / "history.parquet")
    inputs = RunInputs.from_files(files)
    rq2, rq3 = rq_tables("rq2", inputs), rq_tables("rq3", inputs)
    table2 = rq2["table2"].to_pylist()[0]
    assert (table2["majority_class"], table2["minority_class"]) == (ORDER[0], ORDER[-1])
    assert (table2["n_train_majority"], table2["n_train_minority"]) == (60, 6)
    size = int(GROUP_SHARE * 10)  # 4 classes per group
    group = rq3["group_coverage"].to_pylist()[0]
    assert group["majority_group"] == ",".join(map(str, sorted(ORDER[:size])))
    assert group["minority_group"] == ",".join(map(str, sorted(ORDER[-size:])))
    per_class = rq2["per_class_accuracy"].to_pydict()
    roles = dict(zip(per_class["class"], per_class["role"]))
    assert roles[ORDER[0]] == "majority" and roles[ORDER[-1]] == "minority"
    groups = dict(zip(per_class["class"], per_class["class_group"]))
    assert {c for c, g in groups.items() if g == "minority"} == set(ORDER[-size:])


def test_a_balanced_split_is_the_same_in_every_order(digits, tmp_path):
    # equal class sizes: the order changes nothing, so the seeded preset's balanced reference
    # is the label-order study's balanced run of the same seed
    draw = dict(DRAW, imbalance="balanced")
    label = data_stages.split_dataset(digits, tmp_path / "a.parquet", **draw)
    seeded = data_stages.split_dataset(digits, tmp_path / "b.parquet", **draw, class_order="seeded")
    assert label.equals(seeded)


# -- one class order per results root ---------------------------------------------------------


def _study(results, class_order) -> Study:
    config = copy.deepcopy(yaml.safe_load(SMOKE.read_text()))
    config["results"] = str(results)
    config["datasets"]["digits"]["split"]["class_order"] = class_order
    validate(config, str(SCHEMA_PATH))
    return Study(config)


def _label_split(digits, results, metadata=None):
    """A label-order split of the smoke preset's digits under ``results``."""
    path = results / "digits" / "exp10" / "split_seed0.parquet"
    path.parent.mkdir(parents=True)
    draw = {"imbalance": "exp10", "seed": 0, "n_max": 100, "n_val": 20, "n_test": 30}
    table = data_stages.split_dataset(digits, path, **draw)
    if metadata is not None:  # as an older version wrote it
        pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def test_another_class_order_over_existing_splits_is_refused_in_one_line(digits, tmp_path):
    results = tmp_path / "results"
    path = _label_split(digits, results)
    _study(results, "label")  # the same order: nothing to refuse
    _study(results, None)
    _study(results, list(range(10)))
    with pytest.raises(ConfigError) as info:
        _study(results, "seeded")
    assert str(info.value) == (
        f"datasets.digits.split.class_order is seeded, but {path} was drawn in label class "
        f"order [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; give this study a results root of its own, "
        f"or delete {results / 'digits'} to redraw every run of it"
    )
    with pytest.raises(ConfigError, match="class_order is \\[1, 0, 2,"):
        _study(results, [1, 0, *range(2, 10)])
    _study(tmp_path / "elsewhere", "seeded")  # its own root


def test_a_split_written_before_the_order_was_recorded_counts_as_label_order(digits, tmp_path):
    results = tmp_path / "results"
    old = {"seed": "0", "class_order": "None", "imbalance": "exp10"}
    path = _label_split(digits, results, metadata=old)
    _study(results, "label")
    with pytest.raises(ConfigError, match=f"{re.escape(str(path))} was drawn in label order;"):
        _study(results, "seeded")


def test_an_explicit_order_drawn_by_the_earlier_version_is_not_mixed_with_new_draws(
    digits, tmp_path
):
    # before the order had modes, an explicit order also changed which images a class got
    results = tmp_path / "results"
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    old = {"seed": "0", "class_order": str(order), "imbalance": "exp10"}
    path = _label_split(digits, results, metadata=old)
    with pytest.raises(ConfigError) as info:
        _study(results, order)
    assert str(info.value) == (
        f"{path} was drawn in class order {order} by an earlier version, which chose other "
        f"images for it than this one; delete {results / 'digits'} to redraw every run of it"
    )


def test_seeded_splits_are_kept_when_the_seeded_study_runs_again(digits, tmp_path):
    results = tmp_path / "results"
    path = results / "digits" / "exp10" / "split_seed3.parquet"
    path.parent.mkdir(parents=True)
    draw = {"imbalance": "exp10", "seed": 3, "n_max": 100, "n_val": 20, "n_test": 30}
    data_stages.split_dataset(digits, path, **draw, class_order="seeded")
    _study(results, "seeded")
    with pytest.raises(ConfigError, match="drawn in seeded class order"):
        _study(results, "label")


def test_the_workflow_stops_before_any_job_rather_than_redraw_another_order(digits, tmp_path):
    _label_split(digits, tmp_path / "results")
    config = yaml.safe_load(SMOKE.read_text())
    config["datasets"]["digits"]["split"]["class_order"] = "seeded"
    path = tmp_path / "seeded.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, path, "-n")
    assert result.returncode != 0
    errors = [x for x in result.stderr.splitlines() if x.startswith("config error: ")]
    assert len(errors) == 1 and "class_order is seeded, but results/digits/exp10" in errors[0]
    assert "Traceback" not in result.stderr


# -- the preset ---------------------------------------------------------------------------------


def test_the_seeded_order_preset_plans_only_its_own_runs_under_its_own_root(tmp_path):
    # as from the repository: Snakefile's `configfile: "config.yaml"`, then the preset
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    result = run_snakemake(tmp_path, REPO / "presets" / "seeded_order.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = re.findall(r"^\s*output: (.*)$", result.stdout, flags=re.M)
    paths = [p.strip() for line in outputs for p in line.split(",")]
    # the canonical dataset is shared by every study (data_dir); everything else is its own
    assert "data/fashion_mnist.npz" in paths
    paths.remove("data/fashion_mnist.npz")
    assert paths and all(p.startswith("results/seeded_order/") for p in paths), paths[:5]
    models = sorted(p for p in paths if p.endswith("/model.pt"))
    assert models == [
        "results/seeded_order/fashion_mnist/balanced/ce/seed0/model.pt",
        *(f"results/seeded_order/fashion_mnist/exp100/ce/seed{s}/model.pt" for s in range(5)),
    ]
    splits = sorted(p for p in paths if "/split_seed" in p)
    assert splits == [
        "results/seeded_order/fashion_mnist/balanced/split_seed0.parquet",
        *(f"results/seeded_order/fashion_mnist/exp100/split_seed{s}.parquet" for s in range(5)),
    ]


def test_the_seeded_order_preset_draws_config_yaml_s_splits_in_seeded_order():
    # Snakemake merges the preset into config.yaml key by key (update_config)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "presets" / "seeded_order.yaml").read_text()))
    validate(config, str(SCHEMA_PATH))
    study = Study(config)
    assert study.split_settings("fashion_mnist") == {
        "n_max": 1000, "n_val": 50, "n_test": 300, "class_order": "seeded",
    }  # fmt: skip
    label = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(label, str(SCHEMA_PATH))
    assert Study(label).split_settings("fashion_mnist")["class_order"] is None
