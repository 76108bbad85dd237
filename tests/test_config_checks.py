"""The config is checked before any job runs: what the schema cannot express, each error one
line naming the key and the fix (fragility.workflow.config.Study)."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate
from snakemake_cli import REPO, SMOKE, run_snakemake

from fragility.errors import ConfigError
from fragility.workflow.config import KNOWN_SIZES, SCHEMA_PATH, Study, load_schema, study_config

SMOKE_CONFIG = yaml.safe_load(SMOKE.read_text())


def study(edit=None) -> Study:
    """The smoke preset, edited, validated and completed from the schema as the workflow does."""
    config = copy.deepcopy(SMOKE_CONFIG)
    if edit:
        edit(config)
    validate(config, str(SCHEMA_PATH))
    return Study(config)


def error_of(edit) -> str:
    with pytest.raises(ConfigError) as info:
        study(edit)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_presets_pass(tmp_path, monkeypatch):
    study()
    monkeypatch.chdir(tmp_path)  # the external preset's checkpoint and data, as if made
    Path("checkpoints/fmnist_ldam").mkdir(parents=True)
    Path("checkpoints/fmnist_ldam/ckpt.pth.tar").touch()
    Path("data").mkdir()
    Path("data/fmnist_cifar.npz").touch()
    for path in [REPO / "config.yaml", *sorted((REPO / "presets").glob("*.yaml"))]:
        config, _ = study_config([path])
        validate(config, str(SCHEMA_PATH))
        Study(config)


# -- a study is what its config file says ---------------------------------------------------------


def _yaml(path, config: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_config_file_is_the_whole_study_unless_it_names_a_base(tmp_path):
    group = {"dataset": "digits", "imbalance": ["exp10"], "loss": ["ce"]}
    base = _yaml(
        tmp_path / "config.yaml",
        {
            "results": "results",
            "training": {"epochs": 40, "lr": 0.1},
            "runs": [group, {**group, "imbalance": ["balanced"]}],
            "remedies": {"base": {"loss": ["ce"]}, "methods": {"crt": {"method": "crt"}}},
        },
    )
    mine = _yaml(tmp_path / "mine.yaml", {"results": "mine", "models": {"m": {}}})
    assert study_config([mine]) == ({"results": "mine", "models": {"m": {}}}, [mine])
    assert study_config([], default=base) == (yaml.safe_load(base.read_text()), [base])

    seeds = _yaml(
        tmp_path / "presets/seeds.yaml",
        {"extends": "../config.yaml", "training": {"epochs": 20}, "runs": [group]},
    )
    config, files = study_config([seeds])
    assert files == [base, seeds]
    assert config["training"] == {"epochs": 20, "lr": 0.1}  # dicts merged key by key
    assert config["runs"] == [group]  # lists replaced whole
    assert config["remedies"]["methods"] == {"crt": {"method": "crt"}} and "extends" not in config
    more = _yaml(tmp_path / "more.yaml", {"extends": "presets/seeds.yaml", "results": "more"})
    config, files = study_config([more], {"training": {"lr": 0.05}})  # --config comes last
    assert files == [base, seeds, more] and config["results"] == "more"
    assert config["training"] == {"epochs": 20, "lr": 0.05}


@pytest.mark.parametrize(
    ("extends", "message"),
    [
        ("nowhere.yaml", "{p}: extends names nowhere.yaml, but there is no file {d}/nowhere.yaml"),
        ("a.yaml", "{p}: extends goes round in a circle ("),
        (3, "{p}: extends must be the path of a config file, not 3"),
    ],
    ids=["missing", "circle", "not a path"],
)
def test_a_base_that_cannot_be_read_is_one_line(tmp_path, extends, message):
    path = _yaml(tmp_path / "a.yaml", {"extends": extends, "results": "r"})
    with pytest.raises(ConfigError) as error:
        study_config([path])
    assert str(error.value).startswith(message.format(p=path, d=tmp_path))
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="extends: name the base in a config file"):
        study_config([], {"extends": "a.yaml"}, default=path)


def test_runs_may_be_empty_in_a_study_of_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ckpt.pth.tar").touch()
    model = {"checkpoint": "ckpt.pth.tar", "format": "ldam_drw", "dataset": "digits"}
    model.update(imbalance="exp10", normalization={"mean": [0.5], "std": [0.25]})

    def edit(config):  # the smoke preset extended by a model, its own runs switched off
        config["runs"] = []
        config["models"] = {"theirs": model}

    resolved = study(edit)
    assert resolved.trained_runs == [] and [r.loss for r in resolved.runs_for()] == ["theirs"]
    message = error_of(lambda c: c.update(runs=[]))
    assert (
        message == "the config lists no runs and no models: add an entry under 'runs' or 'models'"
    )


# -- each remedy's parameters against its own method's schema ----------------------------------


def test_a_misspelt_remedy_parameter_names_the_key_and_the_valid_ones():
    def edit(config):
        config["remedies"]["methods"]["eos"]["kk"] = 5

    assert error_of(edit) == (
        "remedies.methods.eos.kk: eos has no parameter 'kk'; valid: k, target, select, epochs, lr, "
        "momentum, weight_decay, batch_size, schedule, device (and method, enabled)"
    )


def test_a_parameter_of_another_method_is_refused():
    def edit(config):
        config["remedies"]["methods"]["crt"]["k"] = 5  # k belongs to eos and smote

    assert error_of(edit).startswith("remedies.methods.crt.k: crt has no parameter 'k'; valid: ")


def test_a_remedy_parameter_of_the_wrong_type_is_refused():
    def edit(config):
        config["remedies"]["methods"]["eos"]["k"] = "ten"

    assert error_of(edit) == (
        "remedies.methods.eos.k: 'ten' is not of type 'integer', 'null'; "
        "$defs.remedy_params.eos in config/schema.yaml says what it takes"
    )


def test_no_remedy_chooses_its_head_epoch_on_the_test_set():
    def edit(config):
        config["remedies"]["methods"]["eos"]["select"] = "test_bac"

    assert error_of(edit) == (
        "remedies.methods.eos.select: 'test_bac' is not one of ['val_bac', 'last']; "
        "$defs.remedy_params.eos in config/schema.yaml says what it takes"
    )


def test_a_remedy_parameter_out_of_range_is_refused():
    def edit(config):
        config["remedies"]["methods"]["logit_adjust"]["method"] = "tau_norm"
        config["remedies"]["methods"]["logit_adjust"]["taus"] = [-1.0]

    assert error_of(edit) == (
        "remedies.methods.logit_adjust.taus.0: -1.0 is less than the minimum of 0; "
        "$defs.remedy_params.tau_norm in config/schema.yaml says what it takes"
    )


def test_a_schema_that_names_other_than_the_registries_stops_the_study_in_one_line():
    """The schema lists the remedies, losses, architectures ... for the config's reader; the
    registries are the one list of each, and the study refuses a schema that drifted."""
    schema = load_schema()
    Study(copy.deepcopy(SMOKE_CONFIG), schema)  # as it is: the same names

    def drifted(change) -> str:
        edited = copy.deepcopy(schema)
        change(edited)
        with pytest.raises(ConfigError) as info:
            Study(copy.deepcopy(SMOKE_CONFIG), edited)
        assert "\n" not in str(info.value)
        return str(info.value)

    def drop_a_loss(s):
        s["$defs"]["training"]["properties"]["loss"]["enum"].remove("cdt")

    assert drifted(drop_a_loss).startswith(
        "config/schema.yaml $defs.training.loss.enum is ['ce', 'focal', 'ldam', "
        "'balanced_softmax', 'logit_adjusted'], but fragility.training.settings.LOSSES holds"
    )

    def another_default(s):
        s["$defs"]["remedy_params"]["smote"]["properties"]["k"]["default"] = 7

    message = drifted(another_default)
    assert message.startswith("config/schema.yaml $defs.remedy_params.smote describes {")
    assert "fragility.catalog.remedies.REMEDIES['smote'] has the parameters" in message

    def a_remedy_more(s):
        s["$defs"]["remedy_params"]["mixup"] = {"type": "object"}

    assert "$defs.remedy_params describes [" in drifted(a_remedy_more)


# -- val_bac and tau_norm need a validation split ----------------------------------------------


def test_val_bac_without_a_validation_split_is_refused():
    def edit(config):
        config["training"]["select"] = "val_bac"
        config["datasets"]["digits"]["split"]["n_val"] = 0
        del config["remedies"]

    assert error_of(edit) == (
        "select: val_bac (run digits/balanced/ce/seed0) needs a validation split, but "
        "datasets.digits.split.n_val is 0; set n_val > 0, or select: test_bac or last"
    )


def test_tau_norm_without_a_validation_split_is_refused_unless_tau_is_fixed():
    def edit(config):
        config["datasets"]["digits"]["split"]["n_val"] = 0

    assert error_of(edit) == (
        "remedies.methods.tau_norm chooses tau on the validation split, but "
        "datasets.digits.split.n_val is 0 (run digits/exp10/ce/seed0); set n_val > 0, or fix "
        "remedies.methods.tau_norm.tau"
    )

    def fixed(config):
        edit(config)
        config["remedies"]["methods"]["tau_norm"]["tau"] = 1.0

    study(fixed)


# -- the split against the dataset's known sizes -----------------------------------------------


def test_class_order_must_be_an_order_of_the_dataset_s_classes():
    def edit(config):
        config["datasets"]["digits"]["split"]["class_order"] = [1, 0, 2]

    assert error_of(edit) == (
        "datasets.digits.split.class_order [1, 0, 2] is not an order of the 10 classes of "
        "digits: list each of 0..9 exactly once"
    )


def test_class_order_of_an_image_folder_must_still_be_an_order():
    def edit(config):
        config["datasets"] = {
            "scans": {"loader": "image_folder", "root": "x", "split": {"class_order": [0, 0]}}
        }
        for group in config["runs"]:
            group["dataset"] = "scans"
        del config["remedies"]

    assert error_of(edit) == (
        "datasets.scans.split.class_order [0, 0] is not an order of the 2 classes of "
        "image_folder: list each of 0..1 exactly once"
    )


def test_n_max_and_n_val_must_fit_the_smallest_class():
    def edit(config):
        config["datasets"]["digits"]["split"]["n_max"] = 130

    assert error_of(edit) == (
        "datasets.digits.split.n_max: n_max=130 + n_val=20 = 150, but the smallest class of "
        "digits has 139 training images (the pool and validation set come from them); lower "
        "n_max or n_val"
    )


def test_n_test_must_fit_the_smallest_class():
    def edit(config):
        config["datasets"]["digits"]["split"]["n_test"] = 36

    assert error_of(edit) == (
        "datasets.digits.split.n_test: 36, but the smallest class of digits has 35 test "
        "images; lower n_test, or set it to null to keep them all"
    )


def test_the_known_sizes_of_digits_are_its_real_sizes():
    """The one dataset of KNOWN_SIZES that is on every machine: checked against its loader."""
    from fragility.data.datasets import load_raw

    digits = load_raw("digits")
    classes, n_train, n_test = KNOWN_SIZES["digits"]
    assert len(digits.classes) == classes
    assert np.bincount(digits.y_train).min() == n_train
    assert np.bincount(digits.y_test).min() == n_test


# -- in the workflow: one line on the console, before any job ----------------------------------


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (
            lambda c: c["remedies"]["methods"]["crt"].update(epoch=3),
            "config error: remedies.methods.crt.epoch: crt has no parameter 'epoch'; valid: ",
        ),
        (  # a schema error, too, is one line naming the key
            lambda c: c["training"].update(epoch=3),
            "config error: training: Additional properties are not allowed ('epoch' was "
            "unexpected); config/schema.yaml lists the valid keys and values",
        ),
    ],
)
def test_the_workflow_stops_with_one_line_before_any_job(tmp_path, edit, line):
    config = copy.deepcopy(SMOKE_CONFIG)
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, path)
    assert result.returncode != 0
    errors = [x for x in result.stderr.splitlines() if x.startswith("config error: ")]
    assert len(errors) == 1 and errors[0].startswith(line), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


# -- raw files where the config says, before any job (download: false) --------------------------

FMNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def _fashion_mnist_at(root, **entry):
    def edit(config):
        config["datasets"]["fmnist"] = {"loader": "fashion_mnist", "root": str(root), **entry}
        config["runs"].append({"dataset": "fmnist", "imbalance": ["balanced"], "loss": ["ce"]})

    return edit


def test_missing_raw_files_are_a_config_error_naming_the_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data_dir is relative to the working folder, as in a workflow
    raw = tmp_path / "raw"
    assert error_of(_fashion_mnist_at(raw)) == (
        "datasets.fmnist.root: fashion_mnist: dataset not found. Looked for "
        + ", ".join(f"{f}(.gz)" for f in FMNIST_FILES)
        + f" in: {raw}, {raw}/FashionMNIST/raw. To get it: install the Debian package "
        "(`apt-get install dataset-fashion-mnist`), or set `root:` to a folder holding these "
        "files, or set `download: true` (checked because download is false and "
        "data/fmnist.npz is not built)"
    )
    study(_fashion_mnist_at(raw, download=True))  # the data job may fetch them
    (raw / "FashionMNIST" / "raw").mkdir(parents=True)
    for name in FMNIST_FILES:  # only the names are looked for: nothing is read
        (raw / "FashionMNIST" / "raw" / f"{name}.gz").touch()
    study(_fashion_mnist_at(raw))


def test_a_built_canonical_file_needs_no_raw_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fmnist.npz").touch()
    study(_fashion_mnist_at(tmp_path / "gone"))


def test_an_image_folder_root_must_exist_and_hold_train_and_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def scans(root):
        def edit(config):
            config["datasets"]["scans"] = {"loader": "image_folder", "root": str(root)}
            config["runs"].append({"dataset": "scans", "imbalance": ["balanced"], "loss": ["ce"]})

        return edit

    message = error_of(scans(tmp_path / "nowhere"))
    assert message.startswith(
        f"datasets.scans.root: image_folder: dataset not found. Looked for train, test in: "
        f"{tmp_path / 'nowhere'}. To get it: arrange your images as root/train/<class>/"
    )
    (tmp_path / "images" / "train").mkdir(parents=True)
    assert "Looked for train, test in:" in error_of(scans(tmp_path / "images"))
    (tmp_path / "images" / "test").mkdir()
    study(scans(tmp_path / "images"))


def test_datasets_no_run_uses_are_not_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def edit(config):  # e.g. config.yaml's Fashion-MNIST under the smoke preset's digits runs
        config["datasets"]["fmnist"] = {"loader": "fashion_mnist", "root": str(tmp_path / "no")}

    study(edit)
