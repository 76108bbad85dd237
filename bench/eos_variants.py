"""Both EOS variants, SMOTE and ROS side by side on one trained run, through the package API
(no workflow): prepare the dataset, draw the split, train, extract the embeddings (each step
skipped when its file is already in the work folder), then apply each over-sampling remedy
with the registry's defaults and print one row per model.

    python bench/eos_variants.py --config presets/smoke.yaml --dataset digits \\
        --imbalance exp10 --loss ce --seed 0 --work /tmp/eos_variants

Columns: test BAC, the accuracy of the majority class (the largest training class) and of
the minority class (the smallest), the mean accuracy of the minority group (the smallest
40 % of the classes), the head's epoch and how it was chosen, EOS's k, and for EOS the share
of synthetic points whose partner is the base itself / of the base's class; then EOS's bases
per class and the classes that had none (the fallback). One run, one seed: a small
measurement, not an estimate with an interval.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml
from snakemake.utils import validate

from fragility.analysis.inputs import class_groups, majority_minority
from fragility.embeddings.files import read_classifier, read_embeddings
from fragility.metrics import per_class_accuracy
from fragility.remedies.registry import apply_remedy
from fragility.workflow.config import SCHEMA_PATH, Run, Study
from fragility.workflow.stages.data import prepare_data, split_dataset
from fragility.workflow.stages.embeddings import extract_run
from fragility.workflow.stages.training import train_run

# (row label, remedy, parameters): the registry's defaults, then the previous default of
# eos and its authors' variant (k = 10, the last of the head's epochs) to separate the effect
# of the epoch choice and k from that of the variant
METHODS = (
    ("eos", "eos", {}),
    ("eos_authors", "eos_authors", {}),
    ("smote", "smote", {}),
    ("ros", "ros", {}),
    ("eos k10 last", "eos", {"k": 10, "select": "last"}),
    ("eos_auth k10 last", "eos_authors", {"k": 10, "select": "last"}),
)
SUBSETS = ("train", "pool", "val", "test")


def trained_run(config_path: Path, run: Run, work: Path) -> Path:
    """The embeddings folder of ``run`` under ``work``, built if missing."""
    config = yaml.safe_load(config_path.read_text())
    validate(config, str(SCHEMA_PATH))  # completes the config from the schema's defaults
    study = Study(config)
    work.mkdir(parents=True, exist_ok=True)
    canonical = work / f"{run.dataset}.npz"
    if not canonical.exists():
        prepare_data(run.dataset, study.datasets[run.dataset], canonical)
    folder = work / run.imbalance / run.loss / f"seed{run.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    split = folder / "split.parquet"
    if not split.exists():
        split_dataset(
            canonical,
            split,
            imbalance=run.imbalance,
            seed=run.seed,
            **study.split_settings(run.dataset),
        )
    model = folder / "model.pt"
    if not model.exists():
        train_run(
            canonical,
            split,
            [model, folder / "history.parquet", folder / "metrics.json"],
            settings=study.train_settings(run),
            run_keys={"run": str(run.path)},
            device="cpu",
            progress=False,
        )
    embeddings = folder / "embeddings"
    outputs = {name: embeddings / f"{name}.parquet" for name in (*SUBSETS, "classifier")}
    if not all(path.exists() for path in outputs.values()):
        embeddings.mkdir(exist_ok=True)
        extract_run(canonical, split, model, list(outputs.values()), device="cpu")
    return embeddings


def row(name: str, labels, preds, counts, info: dict, seconds: float) -> dict:
    n_classes = len(counts)
    acc = per_class_accuracy(labels, preds, n_classes)
    majority, minority = majority_minority(counts)
    _, minority_group = class_groups(counts)
    n_syn = info.get("n_synthetic") or 0
    return {
        "model": name,
        "bac": float(np.nanmean(acc)),
        "majority_acc": float(acc[majority]),
        "minority_acc": float(acc[minority]),
        "minority_group_acc": float(np.nanmean(acc[minority_group])),
        "epoch": info.get("epoch"),
        "epoch_selection": info.get("epoch_selection"),
        "k": info.get("k"),
        "partner_is_base": info["partner_is_base"] / n_syn if "partner_is_base" in info else None,
        "partner_same_class": (
            info["partner_same_class"] / n_syn if "partner_same_class" in info else None
        ),
        "bases": info.get("bases"),  # EOS: bases per class
        "fallback_classes": info.get("fallback_classes"),  # EOS: classes with no base
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("presets/smoke.yaml"))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--imbalance", default="exp10")
    parser.add_argument("--loss", default="ce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/eos_variants"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    run = Run(args.dataset, args.imbalance, args.loss, args.seed)
    folder = trained_run(args.config, run, args.work)
    train = read_embeddings(folder / "train.parquet")
    val = read_embeddings(folder / "val.parquet")
    test = read_embeddings(folder / "test.parquet")
    classifier = read_classifier(folder / "classifier.parquet")
    n_classes = int(np.asarray(classifier["weight"]).shape[0])
    counts = np.bincount(train["label"], minlength=n_classes)
    rows = [row("untreated", test["label"], test["logits"].argmax(1), counts, {}, 0.0)]
    for label, method, params in METHODS:
        start = time.perf_counter()
        result = apply_remedy(
            method, train, test, classifier, val=val, seed=args.seed, params=params
        )
        seconds = time.perf_counter() - start
        rows.append(row(label, test["label"], result.test_pred, counts, result.info, seconds))
    print(f"{run.path}: training counts {counts.tolist()}, test {len(test['label'])} images")
    header = "model               BAC    maj    min    min-grp  epoch (how)                    k   base  same"
    print(header)
    for r in rows:
        share = (
            f"{r['partner_is_base']:5.2f} {r['partner_same_class']:5.2f}"
            if r["partner_is_base"] is not None
            else ""
        )
        how = f"{r['epoch']} ({r['epoch_selection']})" if r["epoch"] else "-"
        print(
            f"{r['model']:<18} {r['bac']:.3f}  {r['majority_acc']:.3f}  {r['minority_acc']:.3f}"
            f"  {r['minority_group_acc']:.3f}    {how:<30} {r['k'] or '-':<3} {share}"
        )
    for r in rows:
        if r["bases"] is not None:
            print(f"{r['model']}: bases per class {r['bases']}, no base: {r['fallback_classes']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
