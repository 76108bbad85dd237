"""The paper beside us: which of the paper's five models a run group compares with, and the
paper's numbers printed next to ours.

The numbers themselves are declared once, in :data:`fragility.catalog.claims.PAPER_NUMBERS` (tables)
and each :data:`fragility.catalog.claims.CLAIMS` entry (the claims' statistics).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from fragility.catalog.claims import PAPER_MODELS, PAPER_NUMBERS, PaperValue

PAPER_LOSSES = ("ce", "focal", "ldam")  # the paper's losses, plain (no DRW, no re-weighting)
MODIFIERS = ("drw", "reweight", "oversample", "mfw")  # training options that make another loss
# the paper's numbers of each cross-run table (PAPER_NUMBERS' key per table)
PAPER_TABLES = {
    "table1": "table1",
    "table2": "table2",
    "table3": "table3",
    "table4": "table4",
    "rq5_weight_sums": "rq5",
    "rq7_generalization": "rq7",
}


def paper_loss(settings: Mapping | None) -> str | None:
    """The paper's loss a study's loss entry trains (``ce``, ``focal``, ``ldam``), or None
    for any other (another loss, or one of the paper's with DRW, re-weighting, ...)."""
    if not settings:
        return None
    loss = settings.get("loss")
    if loss not in PAPER_LOSSES or any(settings.get(m) for m in MODIFIERS):
        return None
    return loss


def same_model(dataset: str, imbalance: str, loss: str | None) -> str | None:
    """The key of the paper's model trained on exactly this dataset, imbalance and loss."""
    for key, model in PAPER_MODELS.items():
        if (model.dataset, model.imbalance, model.loss) == (dataset, imbalance, loss):
            return key
    return None


def closest_paper_value(
    values: Mapping[str, PaperValue], dataset: str, imbalance: str, loss: str | None
) -> tuple[PaperValue | None, str]:
    """The paper's value among ``values`` (by model key) for a run group, and which model of
    the paper it is with how it differs: ``"CIFAR-10 CE"`` (the same model), ``"SVHN CE,
    other dataset"``, ... Preference: the same loss, then the same dataset, then CIFAR-10
    CE; ``(None, "")`` where the paper prints no value."""
    if not values:
        return None, ""

    def score(key: str) -> tuple:
        model = PAPER_MODELS[key]
        return (model.loss == loss, model.dataset == dataset, key == "cifar10/ce")

    key = max(values, key=score)  # dict order breaks the remaining ties
    model = PAPER_MODELS[key]
    differs = [
        what
        for what, same in (
            ("dataset", model.dataset == dataset),
            ("loss", model.loss == loss),
            ("imbalance", model.imbalance == imbalance),
        )
        if not same
    ]
    if not differs:
        return values[key], model.label
    return values[key], f"{model.label}, other {' and '.join(differs)}"


def with_paper_columns(name: str, summary: pa.Table, losses: Mapping[str, str | None]) -> pa.Table:
    """Cross-run summary table ``name`` with ``paper_{column}`` beside our columns, filled on
    the rows whose dataset, imbalance and loss (``losses``: run loss -> the paper's loss it
    trains) are one of the paper's models; the table unchanged where the paper prints none."""
    if name not in PAPER_TABLES:
        return summary
    rows = summary.to_pylist()
    keys = [same_model(r["dataset"], r["imbalance"], losses.get(r["loss"])) for r in rows]
    if not any(keys):
        return summary
    columns = dict.fromkeys(
        c for key in keys if key for c in PAPER_NUMBERS[key].get(PAPER_TABLES[name], {})
    )
    if not columns:  # the paper prints this table for none of the study's models
        return summary
    for column in columns:
        values = [
            PAPER_NUMBERS[key].get(PAPER_TABLES[name], {}).get(column) if key else None
            for key in keys
        ]
        summary = summary.append_column(f"paper_{column}", pa.array(values, pa.float64()))
    model = [PAPER_MODELS[key].label if key else None for key in keys]
    return summary.append_column("paper_model", pa.array(model, pa.string()))
