"""The report's front page: the verdicts and the headline tables in plain words (RST).

Written as a file (``{results}/tables/summary.rst``) by the workflow's ``summary`` rule and
included by ``report/workflow.rst``, so the HTML report opens with what the study found, each
number with its 95 % interval and the kind of interval it is.
"""

from __future__ import annotations

import pyarrow as pa

from fragility.analysis.claims import CLAIM_LABELS, claim_groups, group_tally
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


def _verdict_cell(row: dict | None) -> str:
    if row is None:
        return "–"
    if row["difference"] is None:
        return f"**{row['verdict']}**"
    interval = _with_interval(
        {"d": row["difference"], "d_ci_low": row["ci_low"], "d_ci_high": row["ci_high"]},
        "d",
        "+.3f",
    )
    return f"**{row['verdict']}** {interval}"


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


def front_page(
    claims: pa.Table, table1: pa.Table | None = None, remedies: pa.Table | None = None
) -> str:
    """RST: per run group, the tally of verdicts and a table of claims with their
    differences and intervals; then Table 1 and the remedies with intervals."""
    lines = _heading("What this study found", "-")
    lines += [
        "Each claim of the paper is a difference that is positive when the claim holds. "
        "**holds**: its 95 % interval lies above 0; **fails**: below 0; **inconclusive**: "
        "the interval contains 0; **n/a**: not measurable. Intervals are t-intervals over "
        "seeds from three seeds on; with fewer seeds they are a stratified bootstrap over "
        "the images, which leaves training randomness out.",
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
            f"Intervals: {kinds}.",
        ]
    if groups:
        # one matrix, claims down and run groups across: the verdicts side by side
        names = list(dict.fromkeys(r["claim"] for g in groups.values() for r in g))
        cells = {(r["claim"], k): r for k, g in groups.items() for r in g}
        lines += [""]
        lines += _list_table(
            "Verdicts: difference [95 % interval] (claims.txt states each claim in full)",
            ["claim", *("/".join(k[1:]) if len(groups) > 1 else "verdict" for k in groups)],
            [
                [CLAIM_LABELS.get(n, n), *(_verdict_cell(cells.get((n, k))) for k in groups)]
                for n in names
            ],
        )
    if table1 is not None and table1.num_rows:
        lines += _heading("Table 1: test balanced accuracy", "~")
        lines += _list_table(
            "Balanced, imbalanced and re-trained-classifier BAC [95 % interval]",
            ["run group", "seeds", "balanced", "imbalanced", "re-trained"],
            [
                [" / ".join(r[k] for k in GROUP_KEYS), str(r["n_seeds"])]
                + [_with_interval(r, c) for c in ("balanced", "imbalanced", "retrained")]
                for r in table1.to_pylist()
            ],
        )
        lines += [f"Intervals: {_kinds_text(table1['interval'].to_pylist())}.", ""]
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
