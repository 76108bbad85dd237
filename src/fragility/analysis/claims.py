"""The paper's claims, measured with uncertainty over a study's runs, beside the paper's own
numbers and with the paper's premise checked.

Each claim (:data:`fragility.catalog.claims.CLAIMS`) is a signed difference that is positive when the
claim holds, measured per imbalanced run into its ``uncertainty/bootstrap.parquet``
(:mod:`fragility.analysis.bootstrap`). For a (dataset, imbalance, loss) group:

- **The verdict** is *holds* when the 95 % interval of the difference lies above 0, *fails*
  when it lies below, *inconclusive* otherwise, and *n/a* when no seed could measure it (the
  ``reason`` column says why: no balanced partner, a head the statistic means nothing on, a
  class never predicted). The interval is a t-interval over the seeds that measured it when
  there are at least three; with fewer it is the stratified bootstrap over images (the mean
  of the seeds' replicates), which leaves training randomness out, and the interval column
  says so.
- **Its size against the paper's.** A claim that holds over three or more seeds reads
  *holds, as large as the paper's* when the interval's upper limit reaches the paper's value
  and *holds, smaller than the paper's* when the whole interval lies below it, wherever the
  paper's value can be compared with ours (:meth:`fragility.catalog.claims.ClaimSpec.comparable`);
  otherwise plain *holds*. ``size_compared_with`` names the paper's model.
- **The premise.** The paper's mechanism presumes models that "almost perfectly memorize the
  training data" (§5.2). A seed meets it when every class's train accuracy at the kept
  checkpoint is >= 0.90 (``rq2/table2``); each claim row reports the share of its group's
  seeds that do, and a verdict on a group where some seed does not is labelled "premise not
  met": shown, but not read as a test of the paper.
- **The paper beside us.** Each row carries the paper's value of the same statistic, from
  the paper's model that matches the group best (same dataset and loss, else the same loss
  or the same dataset, else CIFAR-10 CE) and says which, and how it differs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import string
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from fragility.analysis.paper import closest_paper_value, paper_loss
from fragility.analysis.runs import GROUP_KEYS
from fragility.analysis.uncertainty import MIN_SEEDS_FOR_VERDICT, combine_seeds, verdict
from fragility.catalog.claims import CLAIMS, PREMISE_TRAIN_ACC, ClaimSpec

READ_AS_TEST = "test of the paper"
PREMISE_NOT_MET = "premise not met"
AS_LARGE = "holds, as large as the paper's"
SMALLER = "holds, smaller than the paper's"
# every verdict a claim can get, in the order tallies list them
VERDICTS = (AS_LARGE, SMALLER, "holds", "fails", "inconclusive", "n/a")


def holds(verdict_text: str) -> bool:
    """Whether a verdict is one of the three kinds of *holds*."""
    return verdict_text.startswith("holds")


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x, spec: str = ".3f") -> str:
    x = _num(x)
    return "n/a" if x is None else format(x, spec)


class _Detail(string.Formatter):
    """Formats a claim's detail template; a value that was not measured reads "n/a"."""

    def get_value(self, key, args, kwargs):
        return kwargs.get(key)

    def format_field(self, value, format_spec):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return super().format_field(value, format_spec)


def render_detail(template: str, parts: Mapping) -> str:
    """A claim's ``detail`` template filled with one seed's ``parts``."""
    return _Detail().format(template, **parts)


# -- the premise -------------------------------------------------------------------------------


def group_premise(rows: list[dict]) -> dict:
    """The premise of a group from its seeds' ``table2`` rows: ``premise_met`` (every seed
    meets it), ``premise_share`` (the share that does) and ``premise_detail`` in words, naming
    the lowest class train accuracy of any seed."""
    known = [r for r in rows if r.get("premise_met") is not None]
    if not known:
        return {"premise_met": None, "premise_share": None,
                "premise_detail": "not measured (no per-class train accuracy)"}  # fmt: skip
    met = sum(bool(r["premise_met"]) for r in known)
    worst = min(known, key=lambda r: (r["lowest_train_acc"], r["seed"]))
    name = worst.get("lowest_train_acc_name")
    cls = f"class {worst['lowest_train_acc_class']}" + (
        f" '{name}'" if name not in (None, str(worst["lowest_train_acc_class"])) else ""
    )
    lowest = (
        f"lowest class train accuracy {worst['lowest_train_acc']:.2f} ({cls}, seed "
        f"{worst['seed']}; needs >= {PREMISE_TRAIN_ACC:.2f} in every class)"
    )
    all_met = met == len(known)
    head = "premise met" if all_met else PREMISE_NOT_MET
    return {
        "premise_met": all_met,
        "premise_share": met / len(known),
        "premise_detail": f"{head} ({met} of {len(known)} seeds meet it): {lowest}",
    }


# -- one row per claim and run group -------------------------------------------------------------


CLAIMS_SCHEMA = pa.schema(
    [
        ("claim", pa.string()),
        ("label", pa.string()),
        ("statement", pa.string()),
        ("source", pa.string()),
        *[(k, pa.string()) for k in GROUP_KEYS],
        ("verdict", pa.string()),
        ("reason", pa.string()),
        ("reading", pa.string()),
        ("statistic", pa.string()),
        ("threshold", pa.string()),
        ("difference", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int64()),
        ("interval", pa.string()),
        ("n_seeds", pa.int64()),
        ("n_positive", pa.int64()),
        ("premise_met", pa.bool_()),
        ("premise_share", pa.float64()),
        ("premise_detail", pa.string()),
        ("paper_value", pa.float64()),
        ("paper_model", pa.string()),
        ("paper_reported", pa.string()),
        ("paper_comparable", pa.bool_()),
        ("size_compared_with", pa.string()),
        ("detail", pa.string()),
    ]
)


def _replicates(row: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row["replicates"]], dtype=np.float64)


def _parts(row: dict) -> dict:
    return json.loads(row.get("parts") or "{}")


def sized_verdict(spec: ClaimSpec, base: str, interval, paper) -> str:
    """A claim that holds over three or more seeds says whether it is as large as the
    paper's, where the paper's value compares with ours; any other verdict stays as it is."""
    over_seeds = interval.n >= MIN_SEEDS_FOR_VERDICT and interval.kind.startswith("t over")
    if base != "holds" or not over_seeds or not spec.comparable(paper):
        return base
    return AS_LARGE if interval.high >= paper.value else SMALLER


def _seed_detail(spec: ClaimSpec, seed: int, stat: dict) -> str:
    if stat["estimate"] is None:
        return f"seed {seed}: n/a ({stat.get('reason') or 'not measurable'})"
    reading = render_detail(spec.detail, _parts(stat))
    return f"seed {seed}: {reading} (difference {_fmt(stat['estimate'], '+.3f')})"


def _claim_row(name: str, key: tuple, measured: list, premise: dict, loss: str | None) -> dict:
    """One row of ``claims``: ``measured`` = (seed, bootstrap row) per seed of the group."""
    spec = CLAIMS[name]
    stats = [s for _, s in measured]
    estimates = [_num(s["estimate"]) for s in stats]
    interval = combine_seeds(estimates, [_replicates(s) for s in stats], stats[0]["interval"])
    # one balanced model serving every seed is not resampled by a t over seeds: say so
    partners = {_parts(s).get("partner") for s, e in zip(stats, estimates) if e is not None}
    partners.discard("none")
    if len(partners) == 1 and None not in partners and interval.kind.startswith("t over"):
        kind = f"{interval.kind} (the balanced partner {partners.pop()} held fixed)"
        interval = dataclasses.replace(interval, kind=kind)
    paper, model = closest_paper_value(spec.paper, *key[:2], loss)
    base = verdict(interval.low, interval.high, interval.estimate)
    final = sized_verdict(spec, base, interval, paper)
    reasons = list(dict.fromkeys(s["reason"] for s in stats if s.get("reason")))
    return {
        "claim": name,
        "label": spec.label,
        "statement": spec.statement,
        "source": spec.source,
        **dict(zip(GROUP_KEYS, key)),
        "verdict": final,
        "reason": "; ".join(reasons) if final == "n/a" else None,
        "reading": READ_AS_TEST if premise["premise_met"] else PREMISE_NOT_MET,
        "statistic": spec.statistic,
        "threshold": spec.threshold,
        "difference": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n": interval.n,
        "interval": interval.kind,
        "n_seeds": len(measured),
        "n_positive": sum(e is not None and e > 0 for e in estimates),
        **premise,
        "paper_value": None if paper is None else paper.value,
        "paper_model": model,
        "paper_reported": "" if paper is None else paper.reported,
        "paper_comparable": spec.comparable(paper),
        "size_compared_with": model if final in (AS_LARGE, SMALLER) else None,
        "detail": "; ".join(_seed_detail(spec, seed, s) for seed, s in measured),
    }


def measure_claims(
    premise_rows: pa.Table,
    bootstraps: Mapping[tuple, pa.Table],
    losses: Mapping[str, Mapping] | None = None,
) -> pa.Table:
    """One row per (claim, dataset, imbalance, loss) over the imbalanced runs.

    ``premise_rows``: ``table2_by_seed`` (each seed's lowest class train accuracy);
    ``bootstraps``: each imbalanced run's ``bootstrap.parquet`` keyed by ``(dataset,
    imbalance, loss, seed)`` (every claim's difference, replicates and detail values);
    ``losses``: the study's loss entries by name (which of the paper's models a group
    compares with, :func:`fragility.analysis.paper.paper_loss`)."""
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for (*key, seed), table in sorted(bootstraps.items()):
        stats = {r["statistic"]: r for r in table.to_pylist()}
        groups.setdefault(tuple(key), []).append((int(seed), stats))
    premises: dict[tuple, list[dict]] = {}
    for row in premise_rows.to_pylist():
        premises.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    out = []
    for name in CLAIMS:
        for key, runs in groups.items():
            measured = []
            for seed, stats in runs:
                if name not in stats:
                    raise KeyError(f"no bootstrap of {name} for run {(*key, seed)}")
                measured.append((seed, stats[name]))
            premise = group_premise(premises.get(key, []))
            loss = paper_loss((losses or {}).get(key[2]))
            out.append(_claim_row(name, key, measured, premise, loss))
    return pa.Table.from_pylist(out, schema=CLAIMS_SCHEMA)


# -- in words ------------------------------------------------------------------------------------


def interval_text(row: dict) -> str:
    """A claim's difference with its interval, in words where there is none."""
    if row["difference"] is None:
        return "not measurable"
    if row["ci_low"] is None:
        return f"{row['difference']:+.3f}, no interval"
    return f"{row['difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def paper_text(row: dict) -> str:
    """The paper's value of a claim row and which model it is ("none" where it prints none)."""
    if not row.get("paper_model"):
        return "none"
    value = row.get("paper_value")
    number = f"{value:+.3f}" if value is not None else "no number"
    return f"{number} ({row['paper_model']}: {row['paper_reported']})"


def verdict_text(row: dict) -> str:
    """The verdict, with the paper's model it was sized against, the reason of an n/a, and
    that the premise was not met where it was not."""
    text = row["verdict"]
    if row.get("size_compared_with"):
        text += f" ({row['size_compared_with']})"
    if row.get("reason"):
        text += f": {row['reason']}"
    if row.get("premise_met") is False:
        text += f" ({PREMISE_NOT_MET})"
    return text


def claim_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """``claims`` rows by (dataset, imbalance, loss), in order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in GROUP_KEYS), []).append(row)
    return groups


def group_tally(group: list[dict]) -> tuple[int, str]:
    """``(seeds, "4 holds, 1 fails, ...")`` of one run group's claims."""
    tally = ", ".join(
        f"{sum(r['verdict'] == v for r in group)} {v}"
        for v in VERDICTS
        if any(r["verdict"] == v for r in group)
    )
    return max(r["n_seeds"] for r in group), tally


def claims_summary(claims: pa.Table) -> str:
    """:func:`measure_claims` in words, one block per run group: the tally of verdicts, the
    premise, the interval each rests on, then every claim with its difference, 95 % interval,
    the paper's value and each seed's detail."""
    rows = claims.to_pylist()
    lines = [
        "The paper's claims on this study's runs. Each claim is a difference that is positive",
        "when it holds: 'holds' = its 95 % interval lies above 0, 'fails' = below 0,",
        "'inconclusive' = the interval contains 0, 'n/a' = not measurable (the reason follows).",
        "Over three or more seeds a claim that holds says whether it is as large as the",
        "paper's value (the interval reaches it) or smaller (the interval lies below it), where",
        "the paper prints a comparable number. Where the paper's premise (every class's",
        "training images memorised: train accuracy >= 0.90) is not met, a verdict is shown but",
        "is not a test of the paper.",
        "",
    ]
    groups = claim_groups(rows)
    for key, group in groups.items():
        n_seeds, tally = group_tally(group)
        kinds = sorted({r["interval"] for r in group if r["interval"] != "none"})
        lines.append(f"{'/'.join(key)} ({n_seeds} seed{'s' if n_seeds != 1 else ''}): {tally}")
        lines.append(f"  {group[0]['premise_detail']}")
        lines.append(f"  intervals: {'; '.join(kinds) or 'none'}")
        for r in group:
            lines.append(f"  [{verdict_text(r)}] {r['label']} ({r['source']})")
            lines.append(f"      the paper: {r['statement']}")
            lines.append(f"      {r['statistic']} ({r['threshold']}): {interval_text(r)}")
            lines.append(f"      paper's value: {paper_text(r)}")
            lines.append(f"      {r['detail']}")
        lines.append("")
    if not groups:
        lines.append("(no imbalanced runs: the claims compare imbalanced models)")
    return "\n".join(lines).rstrip() + "\n"
