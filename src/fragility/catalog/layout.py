"""Where every file of a study lives: the results root, a run's folder, the files of a model
folder by *kind*, and the logs and benchmarks.

Files of a model folder are named by kind: ``metrics``, ``history``, ``train`` (the train
embeddings), ``bootstrap``, ... (:data:`MODEL_FILES`), or ``{rq}/{table}`` for a per-run table
(its Parquet file). Stages receive a mapping kind -> path from the rule, never a folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fragility.catalog.outputs import RUN_FIGURES, RUN_TABLES

RUN = "{dataset}/{imbalance}/{loss}/seed{seed}"  # a run's folder under the results root
# the imbalance of a split (docs/data-and-splits.md): balanced, exp<R> or step<R>; the schema's
# pattern and the workflow's wildcard are this one (fragility.data.splits.Imbalance parses it)
IMBALANCE = r"balanced|exp[0-9]+(?:\.[0-9]+)?|step[0-9]+(?:\.[0-9]+)?"
REMEDY = "remedies/{remedy}"  # a remedied model's folder under its run's folder
EMBEDDINGS = ("train", "pool", "val", "test", "classifier")
REMEDY_EMBEDDINGS = ("train", "test", "classifier")  # a remedy writes a new head, no pool/val
REMEDY_FILES = (*REMEDY_EMBEDDINGS, "metrics")  # a remedied model's folder (no history)

MODEL_FILES: dict[str, str] = {
    "model": "model.pt",
    "history": "history.parquet",
    "metrics": "metrics.json",
    **{subset: f"embeddings/{subset}.parquet" for subset in EMBEDDINGS},
    "bootstrap": "uncertainty/bootstrap.parquet",
    "retrained": "rq1/retrained.parquet",
    "retrained_predictions": "rq1/retrained_predictions.parquet",
    "split": "split.parquet",  # a model trained elsewhere's own split (its training subset)
    # not a declared output of training, so that a killed job keeps it
    "resume": ".resume.pt",
}


def model_file(kind: str) -> str:
    """The path of file ``kind`` relative to a model folder."""
    if kind in MODEL_FILES:
        return MODEL_FILES[kind]
    rq, _, table = kind.partition("/")
    if rq in RUN_TABLES and table in RUN_TABLES[rq].tables:
        return f"{kind}.parquet"
    raise KeyError(f"no model file of kind {kind!r}")


@dataclass(frozen=True)
class Layout:
    """Paths of one study. Every method returns a Snakemake template (``{dataset}`` ...)
    unless given a concrete ``run`` (``dataset/imbalance/loss/seedN``)."""

    results: str
    data_dir: str

    def dataset(self, dataset: str = "{dataset}") -> str:
        return f"{self.data_dir}/{dataset}.npz"

    def split(self) -> str:
        return f"{self.results}/{{dataset}}/{{imbalance}}/split_seed{{seed}}.parquet"

    def folder(self, run: str = RUN, remedy: str | None = None) -> str:
        """A model folder: the run's, or the remedied model ``remedy`` under it."""
        base = f"{self.results}/{run}"
        return base if remedy is None else f"{base}/{REMEDY.format(remedy=remedy)}"

    def file(self, kind: str, run: str = RUN, remedy: str | None = None) -> str:
        return f"{self.folder(run, remedy)}/{model_file(kind)}"

    def files(self, kinds: Iterable[str], run: str = RUN, remedy: str | None = None) -> dict:
        return {kind: self.file(kind, run, remedy) for kind in kinds}

    def run_table(self, rq: str, table: str, ext: str, run: str = RUN, remedy=None) -> str:
        return f"{self.folder(run, remedy)}/{rq}/{table}.{ext}"

    def run_figure(self, name: str, run: str = RUN) -> str:
        return f"{self.folder(run)}/{RUN_FIGURES[name].rq}/{name}.png"

    def bootstrap(self, ext: str, run: str = RUN) -> str:
        return f"{self.folder(run)}/uncertainty/bootstrap.{ext}"

    def table(self, name: str, ext: str = "parquet") -> str:
        """A cross-run output under ``tables/`` (``curves/...`` for curve tables)."""
        return f"{self.results}/tables/{name}.{ext}"

    def figure(self, name: str) -> str:
        return f"{self.results}/figures/{name}.png"

    def log(self, *parts: str) -> str:
        """Logs and benchmarks live under the results root too, so two studies with
        different ``results:`` never share a log file."""
        return f"{self.results}/logs/{'/'.join(parts)}.log"

    def benchmark(self, *parts: str) -> str:
        return f"{self.results}/benchmarks/{'/'.join(parts)}.tsv"

    def gpu_slots(self) -> str:
        """The lock files by which local GPU jobs claim a device each (fragility.training.gpus)."""
        return f"{self.results}/.gpu_slots"
