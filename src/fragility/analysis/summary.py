"""The report's front page: the verdicts and the headline tables in plain words (RST).

Written as a file (``{results}/tables/summary.rst``) by the workflow's ``summary`` rule and
included by ``report/workflow.rst``, so the HTML report opens with what the study found, each
number with its 95 % interval and the kind of interval it is.
"""

from __future__ import annotations

import pyarrow as pa

from fragility.analysis.claims import (
    PREMISE_NOT_MET,
    claim_groups,
    group_tally,
    interval_text,
    paper_text,
)
from fragility.analysis.crossrun import GROUP_KEYS


def _num(value, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _with_interval(row: dict, column: str, spec: str = ".3f") -> str:
    mean = row.get(f"{column}_mean", row.get(column))
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if mean is None:
        return "–"
    if low is None or high is None:
        return _num(mean, spec)
    return f"{_num(mean, spec)} [{_num(low, spec)}, {_num(high, spec)}]"


def _text(value: str) -> str:
    """Plain text in an RST table cell: ``|``, ``*`` and backquotes are markup there."""
    for char in ("\\", "|", "*", "`"):
        value = value.replace(char, "\\" + char)
    return value


def _verdict_cell(row: dict) -> str:
    if row.get("premise_met") is False:
        return f"**{row['verdict']}** ({PREMISE_NOT_MET})"
    return f"**{row['verdict']}**"


def _premise_cell(row: dict) -> str:
    share = row.get("premise_share")
    if share is None:
        return "not measured"
    met = round(share * row["n_seeds"])
    return f"{'met' if row['premise_met'] else 'not met'} ({met}/{row['n_seeds']} seeds)"


def _kinds_text(kinds) -> str:
    """The distinct interval kinds in a few words: bootstrap kinds over test and training
    images are named once."""
    kinds = sorted({k for k in kinds if k and not k.startswith("none")})
    if not kinds:
        return "none (one seed, no bootstrap)"
    boot = [k for k in kinds if k.startswith("bootstrap")]
    other = [k for k in kinds if not k.startswith("bootstrap")]
    if len(boot) > 1:
        note = boot[0][boot[0].find("(") :] if "(" in boot[0] else ""
        boot = [f"stratified bootstrap over test or training images {note}".strip()]
    return "; ".join(other + boot)


def _list_table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return [*lines, ""]


def _heading(text: str, char: str) -> list[str]:
    return [text, char * len(text), ""]


def _claims_table(key: tuple, group: list[dict]) -> list[str]:
    """One run group's claims: the paper's value beside ours, the verdict and the premise."""
    return _list_table(
        f"The paper's claims on {' / '.join(key)}: difference [95 % interval]",
        ["claim", "the paper", "ours", "verdict", "premise"],
        [
            [
                _text(f"{r['label']} ({r['source']})"),
                _text(paper_text(r)),
                interval_text(r),
                _verdict_cell(r),
                _premise_cell(r),
            ]
            for r in group
        ],  # fmt: skip
    )


def _table1(table1: pa.Table) -> list[str]:
    rows = table1.to_pylist()
    paper = any(r.get("paper_model") for r in rows)
    header = ["run group", "seeds", "balanced", "imbalanced", "re-trained"]
    body = []
    for r in rows:
        cells = [" / ".join(r[k] for k in GROUP_KEYS), str(r["n_seeds"])]
        cells += [_with_interval(r, c) for c in ("balanced", "imbalanced", "retrained")]
        if paper:
            cells.append(
                " / ".join(_num(r.get(f"paper_{c}")) for c in ("balanced", "imbalanced",
                                                              "retrained"))
                if r.get("paper_model") else "–"
            )  # fmt: skip
        body.append(cells)
    lines = _heading("Table 1: test balanced accuracy", "~")
    lines += _list_table(
        "Balanced, imbalanced and re-trained-classifier BAC [95 % interval]",
        header + (["the paper (bal. / imb. / re-trained)"] if paper else []),
        body,
    )
    kinds = table1["interval"].to_pylist()
    if "balanced_interval" in table1.column_names:
        balanced = _kinds_text(table1["balanced_interval"].to_pylist())
        lines += [f"Intervals: {_kinds_text(kinds)}; the balanced model's: {balanced}.", ""]
    else:
        lines += [f"Intervals: {_kinds_text(kinds)}.", ""]
    return lines


def front_page(
    claims: pa.Table, table1: pa.Table | None = None, remedies: pa.Table | None = None
) -> str:
    """RST: per run group, the tally of verdicts with the premise, then one table of claims
    with the paper's value, our difference and interval, the verdict and the premise; then
    Table 1 and the remedies with intervals."""
    lines = _heading("What this study found", "-")
    lines += [
        "Each claim of the paper is a difference that is positive when the claim holds. "
        "**holds**: its 95 % interval lies above 0; **fails**: below 0; **inconclusive**: "
        "the interval contains 0; **n/a**: not measurable. Intervals are t-intervals over "
        "seeds from three seeds on; with fewer seeds they are a stratified bootstrap over "
        "the images, which leaves training randomness out. The paper's mechanism presumes "
        "a memorised training set: where some seed's class train accuracy is below 0.90 "
        "the verdict is marked *premise not met* and is not a test of the paper. The "
        "paper's value is the same statistic computed from the paper's printed numbers, "
        "of the paper's model named beside it (claims.txt states each claim in full).",
        "",
    ]
    groups = claim_groups(claims.to_pylist())
    if not groups:
        lines += ["No imbalanced runs: the claims compare imbalanced models.", ""]
    for key, group in groups.items():
        n_seeds, tally = group_tally(group)
        kinds = _kinds_text(r["interval"] for r in group)
        lines += [
            f"- **{' / '.join(key)}** ({n_seeds} seed{'s' if n_seeds != 1 else ''}): {tally}. "
            f"{group[0]['premise_detail'][:1].upper()}{group[0]['premise_detail'][1:]}. "
            f"Intervals: {kinds}.",
        ]
    lines += [""]
    for key, group in groups.items():
        lines += _claims_table(key, group)
    if table1 is not None and table1.num_rows:
        lines += _table1(table1)
    if remedies is not None and remedies.num_rows:
        lines += _heading("Remedies against the untreated model", "~")
        lines += _list_table(
            "Test BAC and its paired gain over the untreated model [95 % interval]",
            ["treated run", "method", "kind", "BAC", "gain", "verdict", "cost (s)"],
            [
                [
                    " / ".join((r["dataset"], r["imbalance"], r["base_loss"])),
                    r["remedy"],
                    r["kind"],
                    _with_interval(r, "bac"),
                    _with_interval(r, "bac_gain", "+.3f"),
                    r.get("verdict") or "",
                    _num(r["total_seconds_mean"], ".1f"),
                ]
                for r in remedies.to_pylist()
            ],
        )
        lines += [f"Intervals: {_kinds_text(remedies['interval'].to_pylist())}.", ""]
    return "\n".join(lines).rstrip() + "\n"
