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

# Path templates of every output, in one place (the layout of SPEC section 6).
RESULTS = config["results"]
RUN_DIR = f"{RESULTS}/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}"
PATHS = {
    "dataset": f"{config['data_dir']}/{{dataset}}.npz",
    "split": f"{RESULTS}/{{dataset}}/{{imbalance}}/split_seed{{seed}}.parquet",
    "model": f"{RUN_DIR}/model.pt",
    "history": f"{RUN_DIR}/history.parquet",
    "metrics": f"{RUN_DIR}/metrics.json",
    "embeddings": f"{RUN_DIR}/embeddings/{{subset}}.parquet",
    # the resume state is not a declared output, so a killed job keeps it
    "resume": f"{RUN_DIR}/.resume.pt",
}


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
    return STUDY.data_settings(wildcards.dataset)


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
