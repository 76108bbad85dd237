"""The report's front page: the verdicts and the headline tables in plain words (RST).

Written as a file (``{results}/tables/summary.rst``) by the workflow's ``summary`` rule and
included by ``report/workflow.rst``, so the HTML report opens with what the study found, each
number with its 95 % interval and the kind of interval it is.
"""

from __future__ import annotations

import html

import pyarrow as pa

from fragility.analysis.claims import (
    AS_LARGE,
    PREMISE_NOT_MET,
    SMALLER,
    claim_groups,
    group_tally,
    paper_text,
)
from fragility.analysis.runs import GROUP_KEYS


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
    """RST: per run group, the tally of verdicts with the premise and where the claims matrix
    is (:func:`claims_matrix`, a report item of its own, full width); then Table 1 and the
    remedies with intervals."""
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
    lines += [
        "",
        "**Every claim at a glance:** open *Claims* → ``claims_matrix.html`` in this report "
        "(claims down, run groups across, each cell coloured by its verdict with the "
        "difference and its interval, the paper's value beside it; a claim's name opens its "
        "sentence and every seed's numbers). ``claims.txt`` has the same in plain text.",
        "",
    ]
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


# -- the claims at a glance: one matrix, claims down, run groups across (an HTML report item) --

# the colour of each verdict; text on the dark ones is white
_VERDICT_STYLE = {
    AS_LARGE: ("as-large", "holds, as large as the paper's"),
    "holds": ("holds", "holds (no comparable number of the paper's)"),
    SMALLER: ("smaller", "holds, smaller than the paper's"),
    "inconclusive": ("inconclusive", "inconclusive: the 95 % interval contains 0"),
    "fails": ("fails", "fails: the 95 % interval lies below 0"),
    "n/a": ("na", "n/a: not measurable here (hover or open the claim for why)"),
}
_CSS = """
body { font: 13px/1.3 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 10px 14px;
       color: #222; }
h1 { font-size: 16px; margin: 0 0 3px; }
p.lead { margin: 0 0 6px; color: #444; }
.legend { margin: 0 0 6px; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.legend i { width: 20px; height: 12px; display: inline-block; border: 1px solid #999; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #c8c8c8; padding: 1px 5px; vertical-align: top; }
thead th { background: #f3f3f3; font-weight: 600; text-align: center; font-size: 12px; }
thead th small { display: block; font-weight: 400; }
thead th.missed small { color: #8a4b00; font-weight: 600; }
th.claim-head { width: 29%; text-align: left; }
th.paper-head { width: 12%; }
td.claim summary { cursor: pointer; white-space: nowrap; overflow: hidden;
                   text-overflow: ellipsis; }
td.claim .more { margin: 3px 0 3px 14px; color: #333; font-size: 12px; white-space: normal; }
td.claim .more p { margin: 2px 0; }
td.claim .more ul { margin: 2px 0; padding-left: 16px; }
td.paper, td.v { text-align: center; white-space: nowrap; overflow: hidden;
                 text-overflow: ellipsis; }
td.paper small, td.v small { font-size: 11px; }
td.v b { font-weight: 600; }
.as-large { background: #1a7f37; color: #fff; }
.holds { background: #57ab5a; color: #fff; }
.smaller { background: #b7e1a1; color: #16361c; }
.inconclusive { background: #ececec; color: #333; }
.fails { background: #c9302c; color: #fff; }
.na { background: repeating-linear-gradient(45deg, #fff, #fff 5px, #f1f1f1 5px, #f1f1f1 10px);
      color: #777; }
tr.rq td { border-top: 2px solid #999; }
"""


def _escape(text) -> str:
    return html.escape("" if text is None else str(text))


def _number(value, spec: str = "+.3f") -> str:
    return "–" if value is None else format(value, spec)


def _cell(row: dict | None) -> str:
    """One run group's verdict on one claim: its colour, difference and interval; hovering
    shows the verdict in words, the interval's kind and, for an n/a, why."""
    if row is None:
        return '<td class="v na">–</td>'
    css, _ = _VERDICT_STYLE.get(row["verdict"], ("na", ""))
    tip = f"{row['verdict']}; {row['interval']}"
    if row.get("size_compared_with"):
        tip += f"; sized against {row['size_compared_with']}"
    if row.get("reason"):
        tip += f"; {row['reason']}"
    if row.get("premise_met") is False:
        tip += f"; {PREMISE_NOT_MET}: not a test of the paper"
    if row["difference"] is None:
        body = f"n/a <small>{_escape(row.get('reason') or 'not measurable')}</small>"
    elif row["ci_low"] is None:
        body = f"<b>{_number(row['difference'])}</b> <small>no interval</small>"
    else:
        interval = f"[{_number(row['ci_low'])}, {_number(row['ci_high'])}]"
        body = f"<b>{_number(row['difference'])}</b> <small>{interval}</small>"
    return f'<td class="v {css}" title="{_escape(tip)}">{body}</td>'


def _paper_cell(rows: list[dict]) -> str:
    """The paper's value of a claim for each distinct model the run groups are read against
    (one line each: a focal group is read against the paper's focal model, not its CE one);
    * marks a value no size is read against."""
    lines, tips = [], []
    for r in rows:
        if not r.get("paper_model"):
            continue
        value = r.get("paper_value")
        number = _number(value) if value is not None else "no number"
        if value is not None and not r.get("paper_comparable"):
            number += "*"
        line = f"{_escape(number)} <small>{_escape(r['paper_model'].split(',')[0])}</small>"
        if line not in lines:
            lines.append(line)
            tips.append(f"{r['paper_model']}: {r['paper_reported']}")
    if not lines:
        return '<td class="paper">–</td>'
    return f'<td class="paper" title="{_escape(" | ".join(tips))}">{"<br>".join(lines)}</td>'


def _claim_cell(rows: list[dict | None], groups: list[tuple]) -> str:
    first = next(r for r in rows if r is not None)
    details = "".join(
        f"<li><b>{_escape(' / '.join(key))}</b>: {_escape(r['verdict'])}"
        + (f" ({_escape(r['reason'])})" if r.get("reason") else "")
        + f". {_escape(r['detail'])}</li>"
        for key, r in zip(groups, rows)
        if r is not None
    )
    return (
        f'<td class="claim"><details><summary title="{_escape(first["source"])}">'
        f"{_escape(first['label'])}</summary>"
        f'<div class="more"><p><b>{_escape(first["source"])}.</b> The paper: '
        f"“{_escape(first['statement'])}”</p>"
        f"<p>Statistic: {_escape(first['statistic'])}; holds when {_escape(first['threshold'])}."
        f"</p><p>The paper's numbers: {_escape(paper_text(first))}.</p>"
        f"<ul>{details}</ul></div></details></td>"
    )


def claims_matrix(claims: pa.Table) -> str:
    """A self-contained HTML page: every claim (rows) against every run group (columns), each
    cell coloured by its verdict with the difference and its 95 % interval; the paper's value
    beside each claim; the claim's sentence, statistic and each group's per-seed detail one
    click away (the claim's name opens them)."""
    rows = claims.to_pylist()
    groups = list(claim_groups(rows))
    by_claim: dict[str, dict[tuple, dict]] = {}
    for r in rows:
        by_claim.setdefault(r["claim"], {})[tuple(r[k] for k in GROUP_KEYS)] = r
    head = ['<th class="claim-head">claim of the paper (open for its sentence and details)</th>',
            '<th class="paper-head">the paper</th>']  # fmt: skip
    for key in groups:
        group = [r for r in rows if tuple(r[k] for k in GROUP_KEYS) == key]
        n_seeds, _ = group_tally(group)
        missed = group[0].get("premise_met") is False
        premise = group[0]["premise_detail"].split(":")[0]
        head.append(
            f'<th class="{"missed" if missed else ""}" title="{_escape(group[0]["premise_detail"])}">'
            f"{_escape(' / '.join(key))}<small>{n_seeds} seed{'s' if n_seeds != 1 else ''} · "
            f"{_escape(premise)}</small></th>"
        )
    body, previous = [], None
    for cells in by_claim.values():
        ordered = [cells.get(key) for key in groups]
        present = [r for r in ordered if r is not None]
        section = present[0]["source"].split(",")[0]  # "§5.3": a line between the sections
        css = ' class="rq"' if previous is not None and section != previous else ""
        previous = section
        body.append(
            f"<tr{css}>{_claim_cell(ordered, groups)}{_paper_cell(present)}"
            + "".join(_cell(r) for r in ordered)
            + "</tr>"
        )
    legend = "".join(
        f'<span><i class="{css}"></i>{_escape(text)}</span>'
        for css, text in _VERDICT_STYLE.values()
    )
    lead = (
        "Each claim is a signed difference, positive when it holds, with its 95 % interval: "
        "over seeds (a t-interval) from three seeds on, else a stratified bootstrap over the "
        "images, which leaves training randomness out (hover a cell for its interval). Over "
        "three or more seeds a claim that holds says whether it reaches the paper's value; "
        "* marks a paper value that is a bound, an estimate, negative or not the same "
        "statistic, which no size is read against. A run group whose seeds did not all "
        "memorise their training set (the paper's premise) says so in its heading: its "
        "verdicts are shown, not a test of the paper. Open a claim for its sentence and every "
        "seed's numbers."
    )
    if not rows:
        lead = "No imbalanced runs: the claims compare imbalanced models."
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>The paper's claims</title>"
        f"<style>{_CSS}</style></head><body><h1>The paper's claims on this study</h1>"
        f'<p class="lead">{_escape(lead)}</p><div class="legend">{legend}</div>'
        f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody>"
        "</table></body></html>\n"
    )
