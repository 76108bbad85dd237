"""The default study's regime is what the README says it is: 40 epochs, the best test-BAC
epoch from the first lr decay on, per-epoch evaluation on 100 test images per class (so that
its models memorise their training sets, the paper's premise), and the presets that keep the
regime they were measured in keep it."""

import copy
import re

from snakemake.utils import validate
from snakemake_cli import REPO, run_snakemake

from fragility.training.settings import TrainConfig, selectable
from fragility.workflow.config import SCHEMA_PATH, Study, load_schema, study_config


def _resolved(*configfiles) -> list[dict]:
    """Every run's training settings, as the workflow resolves them: the preset (with the base
    it extends) or config.yaml, validated with the schema's defaults filled in."""
    config, _ = study_config([REPO / name for name in configfiles], default=REPO / "config.yaml")
    validate(config, str(SCHEMA_PATH))
    study = Study(config)
    return [study.train_settings(run) for run in study.runs]


def test_no_layer_of_the_training_settings_has_schema_defaults():
    # Snakemake's validate() fills defaults into every object it walks: a default in the
    # shared training definition would be written into each dataset's and loss's layer and
    # silently override the global `training:` of config.yaml
    training = load_schema()["$defs"]["training"]["properties"]
    assert [key for key, spec in training.items() if "default" in spec] == []


def test_the_default_study_trains_to_the_premise():
    settings = _resolved()
    assert settings and all(s["epochs"] == 40 for s in settings)
    assert {s["select_from"] for s in settings} == {0.8}
    assert {s["epoch_test_per_class"] for s in settings} == {100}
    assert sorted({s["loss"] for s in settings}) == ["ce", "focal", "ldam"]
    cfg = TrainConfig(**copy.deepcopy(settings[0]))
    # kept epochs come from the first lr decay on: 0-based 32..39, the 1-based epochs 33-40
    assert [e for e in range(40) if selectable(cfg, e)] == list(range(32, 40))


def test_the_presets_measured_in_the_20_epoch_regime_keep_it():
    for preset in ("presets/sweep.yaml", "presets/mfw.yaml"):
        for s in _resolved(preset):
            assert (s["epochs"], s["select_from"], s["epoch_test_per_class"]) == (20, 0, None)
    paper = _resolved("presets/paper.yaml")
    assert {(s["select_from"], s["epoch_test_per_class"]) for s in paper} == {(0, None)}


def _priorities(text: str, rule: str) -> dict[str, set[int]]:
    """The planned jobs' priorities of ``rule`` in a dry run's output, by imbalance."""
    found = re.findall(
        rf"rule {rule}:.*?wildcards: dataset=\w+, imbalance=(\w+),.*?priority: (\d+)",
        text,
        flags=re.S,
    )
    priority = {}
    for imbalance, value in found:
        priority.setdefault(imbalance, set()).add(int(value))
    return priority


def test_the_balanced_training_is_scheduled_first(tmp_path):
    # the balanced run trains on 3.7x the images of an exp100 run: started last it would
    # finish alone, so its priority (estimated minutes) is above every exp100 training's,
    # and every split (seconds each) comes before any training
    planned = run_snakemake(tmp_path, REPO / "config.yaml", "-n", cores=4)
    assert planned.returncode == 0, planned.stderr[-3000:]
    training = _priorities(planned.stdout, "train_model")
    assert set(training) == {"balanced", "exp100"}
    assert min(training["balanced"]) > max(training["exp100"])
    splits = _priorities(planned.stdout, "make_split")
    assert set(splits) == {"balanced", "exp100"}
    assert min(min(v) for v in splits.values()) > max(training["balanced"])
