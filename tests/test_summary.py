"""The report's front page (summary.rst): the tally of verdicts with the premise, where the
claims matrix is, and the headline tables, valid RST; and the claims matrix itself: every
claim against every run group in one table, valid HTML."""

from html.parser import HTMLParser

import pyarrow as pa
from docutils.core import publish_parts

from fragility.analysis.summary import claims_matrix, front_page


def _claim(claim, verdict, difference, low, high, interval="t over 3 seeds", premise=True):
    return {
        "claim": claim, "label": f"label of {claim}", "statement": f"statement of {claim}",
        "source": "§5.1", "dataset": "toy", "imbalance": "exp100", "loss": "ce",
        "verdict": verdict, "statistic": "d", "threshold": "> 0", "difference": difference, "ci_low": low,
        "ci_high": high, "n": 3, "interval": interval, "n_seeds": 3, "n_positive": 2,
        "premise_met": premise, "premise_share": 1.0 if premise else 1 / 3,
        "premise_detail": ("premise met (3 of 3 seeds meet it): lowest class train accuracy "
                           "0.95" if premise else "premise not met (1 of 3 seeds meet it): "
                           "lowest class train accuracy 0.72"),
        "paper_value": 0.06 if claim == "a" else None,
        "paper_model": "CIFAR-10 CE, other dataset" if claim in ("a", "b") else "",
        "paper_reported": "72.56 < 78.60 < 92.65" if claim == "a" else "no numbers (Fig 9)",
        "paper_comparable": claim == "a", "size_compared_with": None,
        "reason": "no balanced partner" if verdict == "n/a" else None,
        "detail": f"seed 0: detail of {claim}",
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
    # every claim's verdict lives in the matrix, a report item of its own, full width
    matrix = text.index("``claims_matrix.html``")
    assert first < matrix < text.index("Table 1: test balanced accuracy")
    # Table 1 with each column's interval kind; no interval: the mean alone
    assert "0.700 [0.660, 0.740]" in text
    assert "| 0.800 |" not in text and "     - 0.800" in text
    assert "the balanced model's: stratified bootstrap" not in text  # one kind, named as is
    assert "the balanced model's: bootstrap over test images (1 seed" in text
    body = _render(text)
    assert body.count("<table") == 1


def test_a_group_that_misses_the_premise_says_so():
    claims = pa.Table.from_pylist(
        [_claim("a", "holds", 0.12, 0.05, 0.19, premise=False),
         _claim("b", "fails", -0.2, -0.3, -0.1, premise=False)]
    )  # fmt: skip
    text = front_page(claims)
    assert "Premise not met (1 of 3 seeds meet it): lowest class train accuracy 0.72" in text
    _render(text)
    page = claims_matrix(claims)
    assert 'class="missed"' in page and "premise not met (1 of 3 seeds meet it)" in page


class _Cells(HTMLParser):
    """The matrix's structure: the cells of each body row, with their classes and text."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[tuple[str, str]]] = []
        self.stack: list[str] = []
        self.in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.in_body = True
        if self.in_body and tag == "tr":
            self.rows.append([])
        if self.in_body and tag == "td":
            self.rows[-1].append([dict(attrs).get("class", ""), ""])
        self.stack.append(tag)

    def handle_endtag(self, tag):
        self.stack.pop()

    def handle_data(self, data):
        if self.in_body and self.rows and self.rows[-1] and "td" in self.stack:
            self.rows[-1][-1][1] += data


def test_the_claims_matrix_holds_every_claim_of_every_group_coloured_by_its_verdict():
    rows = [_claim(c, v, d, lo, hi) for c, v, d, lo, hi in
            [("a", "holds, as large as the paper's", 0.12, 0.05, 0.19),
             ("b", "fails", -0.2, -0.3, -0.1), ("d", "n/a", None, None, None)]]  # fmt: skip
    other = [dict(r, loss="focal", verdict="inconclusive", difference=0.0, ci_low=-1.0,
                  ci_high=1.0, reason=None) for r in rows]  # fmt: skip
    page = claims_matrix(pa.Table.from_pylist(rows + other))
    parser = _Cells()
    parser.feed(page)
    assert len(parser.rows) == 3  # one row a claim
    for row, (claim, colour) in zip(parser.rows, [("a", "as-large"), ("b", "fails"), ("d", "na")]):
        label, paper, ce, focal = row  # claim, the paper, then one cell a run group
        assert f"label of {claim}" in label[1] and f"statement of {claim}" in label[1]
        assert f"detail of {claim}" in label[1]  # every seed's numbers, one click away
        assert ce[0] == f"v {colour}" and focal[0] == "v inconclusive"
    assert "+0.120 [+0.050, +0.190]" in parser.rows[0][2][1]
    assert parser.rows[0][1][1].startswith("+0.060 ")  # the paper's value, comparable
    assert "no balanced partner" in parser.rows[2][2][1]  # an n/a says why
    assert "toy / exp100 / ce" in page and "toy / exp100 / focal" in page
    assert "<script" not in page  # self-contained and static


def test_the_matrix_gives_the_paper_s_value_of_every_model_a_group_is_read_against():
    ce = _claim("a", "fails", -0.2, -0.3, -0.1)
    focal = dict(ce, loss="focal", paper_value=0.4, paper_model="CIFAR-10 Focal, other dataset",
                 paper_reported="0.9 vs 0.5")  # fmt: skip
    again = dict(ce, loss="ldam")  # read against the same model as ce: one line, not two
    parser = _Cells()
    parser.feed(claims_matrix(pa.Table.from_pylist([ce, focal, again])))
    paper = parser.rows[0][1][1]
    assert paper.count("+0.060") == 1 and "CIFAR-10 CE" in paper
    assert "+0.400" in paper and "CIFAR-10 Focal" in paper


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
    row.update(label="RQ5: majority's top-10 |W| sum < <b>", paper_reported="7.54 * 2 `x`")
    page = claims_matrix(pa.Table.from_pylist([row]))
    assert "top-10 |W| sum &lt; &lt;b&gt;" in page  # shown as typed, never markup


def test_front_page_without_imbalanced_runs_says_so():
    empty = pa.Table.from_pylist([], schema=pa.schema([("dataset", pa.string())]))
    assert "No imbalanced runs" in front_page(empty)
