# Config validation, the study's runs, and the input functions of every rule.
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../config/schema.yaml")

from fragility.config import Study
from fragility.errors import FragilityError

try:
    STUDY = Study(config)
except FragilityError as error:
    sys.exit(f"config error: {error}")

RESULTS = config["results"]
DATA = config["data_dir"]
RUN_DIR = RESULTS + "/{dataset}/{imbalance}/{loss}/seed{seed}"


wildcard_constraints:
    dataset="|".join(sorted(STUDY.datasets)),
    imbalance=r"balanced|exp[0-9.]+|step[0-9.]+",
    loss="|".join(sorted(STUDY.losses)),
    seed=r"\d+",


def run_of(wildcards):
    return STUDY.runs_for(
        dataset=wildcards.dataset,
        imbalance=wildcards.imbalance,
        loss=wildcards.loss,
        seed=int(wildcards.seed),
    )[0]


def get_all_targets():
    return [f"{RESULTS}/{run.path}/metrics.json" for run in STUDY.runs]


def get_dataset_settings(wildcards):
    return STUDY.dataset(wildcards.dataset)


def get_split_settings(wildcards):
    return STUDY.split_settings(wildcards.dataset)


def get_train_settings(wildcards):
    return STUDY.train_settings(run_of(wildcards))


def get_run_info(wildcards):
    run = run_of(wildcards)
    return {
        "dataset": run.dataset,
        "imbalance": run.imbalance,
        "loss": run.loss,
        "seed": run.seed,
        "run": run.path,
    }
