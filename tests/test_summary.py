"""The report's front page (summary.rst): the verdicts with the paper's values and the
premise, and the headline tables, valid RST."""

import pyarrow as pa
from docutils.core import publish_parts

from fragility.analysis.summary import front_page


def _claim(claim, verdict, difference, low, high, interval="t over 3 seeds", premise=True):
    return {
        "claim": claim, "label": f"label of {claim}", "statement": f"statement of {claim}",
        "source": "§5.1", "dataset": "toy", "imbalance": "exp100", "loss": "ce",
        "verdict": verdict, "statistic": "d", "difference": difference, "ci_low": low,
        "ci_high": high, "n": 3, "interval": interval, "n_seeds": 3, "n_positive": 2,
        "premise_met": premise, "premise_share": 1.0 if premise else 1 / 3,
        "premise_detail": ("premise met (3 of 3 seeds meet it): lowest class train accuracy "
                           "0.95" if premise else "premise not met (1 of 3 seeds meet it): "
                           "lowest class train accuracy 0.72"),
        "paper_value": 0.06 if claim == "a" else None,
        "paper_model": "CIFAR-10 CE, other dataset" if claim in ("a", "b") else "",
        "paper_reported": "72.56 < 78.60 < 92.65" if claim == "a" else "no numbers (Fig 9)",
        "detail": "",
    }  # fmt: skip


TABLE1 = {
    "dataset": "toy", "imbalance": "exp100", "loss": "ce", "n_seeds": 3,
    "interval": "t over 3 seeds", "balanced_mean": 0.9, "balanced_ci_low": 0.88,
    "balanced_ci_high": 0.92,
    "balanced_interval": "bootstrap over test images (1 seed; training randomness not included)",
    "imbalanced_mean": 0.7, "imbalanced_ci_low": 0.66, "imbalanced_ci_high": 0.74,
    "retrained_mean": 0.8, "retrained_ci_low": None, "retrained_ci_high": None,
}  # fmt: skip


def _render(text: str) -> str:
    html = publish_parts(text, writer="html", settings_overrides={"report_level": 2})
    assert "System Message" not in html["html_body"]  # docutils found nothing to complain of
    return html["html_body"]


def test_front_page_leads_with_the_verdicts_and_renders():
    claims = pa.Table.from_pylist(
        [
            _claim("a", "holds", 0.12, 0.05, 0.19),
            _claim("b", "fails", -0.2, -0.3, -0.1),
            _claim("c", "inconclusive", 0.01, -0.02, 0.04),
            _claim("d", "n/a", None, None, None, "none"),
        ]
    )
    text = front_page(claims, pa.Table.from_pylist([TABLE1]))
    first = text.index("**toy / exp100 / ce** (3 seeds): 1 holds, 1 fails, 1 inconclusive, 1 n/a.")
    assert "Premise met (3 of 3 seeds meet it)" in text
    # one table: claim, the paper's value, ours with its interval, verdict, premise
    table = text.index(".. list-table:: The paper's claims on toy / exp100 / ce")
    assert first < table
    assert "     - +0.060 (CIFAR-10 CE, other dataset: 72.56 < 78.60 < 92.65)" in text
    assert "     - no number (CIFAR-10 CE, other dataset: no numbers (Fig 9))" in text
    assert "     - none\n" in text  # the paper prints nothing for claim c
    assert "+0.120 [+0.050, +0.190]" in text and "not measurable" in text
    assert "     - met (3/3 seeds)" in text
    # Table 1 with each column's interval kind; no interval: the mean alone
    assert "0.700 [0.660, 0.740]" in text
    assert "| 0.800 |" not in text and "     - 0.800" in text
    assert "the balanced model's: stratified bootstrap" not in text  # one kind, named as is
    assert "the balanced model's: bootstrap over test images (1 seed" in text
    body = _render(text)
    assert body.count("<table") == 2


def test_a_group_that_misses_the_premise_says_so_beside_each_verdict():
    claims = pa.Table.from_pylist(
        [_claim("a", "holds", 0.12, 0.05, 0.19, premise=False),
         _claim("b", "fails", -0.2, -0.3, -0.1, premise=False)]
    )  # fmt: skip
    text = front_page(claims)
    assert "Premise not met (1 of 3 seeds meet it): lowest class train accuracy 0.72" in text
    assert text.count("**holds** (premise not met)") == 1
    assert text.count("**fails** (premise not met)") == 1
    assert text.count("     - not met (1/3 seeds)") == 2
    _render(text)


def test_table1_prints_the_paper_beside_ours_on_the_paper_s_model():
    row = dict(TABLE1, dataset="cifar10", paper_model="CIFAR-10 CE", paper_balanced=0.9265,
               paper_imbalanced=0.7256, paper_retrained=0.786)  # fmt: skip
    empty = pa.Table.from_pylist([], schema=pa.schema([("dataset", pa.string())]))
    text = front_page(empty, pa.Table.from_pylist([row]))
    assert "the paper (bal. / imb. / re-trained)" in text
    assert "     - 0.926 / 0.726 / 0.786" in text
    _render(text)


def test_markup_characters_in_a_claim_are_plain_text():
    row = _claim("a", "holds", 0.12, 0.05, 0.19)
    row.update(label="RQ5: majority's top-10 |W| sum larger", paper_reported="7.54 * 2 `x`")
    text = front_page(pa.Table.from_pylist([row]))
    assert "top-10 \\|W\\| sum larger" in text
    assert "|W|" in _render(text)  # shown as typed, no substitution reference


def test_front_page_without_imbalanced_runs_says_so():
    empty = pa.Table.from_pylist([], schema=pa.schema([("dataset", pa.string())]))
    assert "No imbalanced runs" in front_page(empty)
