"""The report's front page (summary.rst): the verdicts and headline tables, valid RST."""

import pyarrow as pa
from docutils.core import publish_parts

from fragility.analysis.summary import front_page


def _claim(claim, verdict, difference, low, high, interval="t over 3 seeds"):
    return {
        "claim": claim, "statement": f"statement of {claim}", "dataset": "toy",
        "imbalance": "exp100", "loss": "ce", "verdict": verdict, "statistic": "d",
        "difference": difference, "ci_low": low, "ci_high": high, "n": 3,
        "interval": interval, "n_seeds": 3, "n_positive": 2, "detail": "",
    }  # fmt: skip


def test_front_page_leads_with_the_verdicts_and_renders():
    claims = pa.Table.from_pylist(
        [
            _claim("a", "holds", 0.12, 0.05, 0.19),
            _claim("b", "fails", -0.2, -0.3, -0.1),
            _claim("c", "inconclusive", 0.01, -0.02, 0.04),
            _claim("d", "n/a", None, None, None, "none"),
        ]
    )
    table1 = pa.Table.from_pylist(
        [
            {
                "dataset": "toy",
                "imbalance": "exp100",
                "loss": "ce",
                "n_seeds": 3,
                "interval": "t over 3 seeds",
                "balanced_mean": 0.9,
                "balanced_ci_low": 0.88,
                "balanced_ci_high": 0.92,
                "imbalanced_mean": 0.7,
                "imbalanced_ci_low": 0.66,
                "imbalanced_ci_high": 0.74,
                "retrained_mean": 0.8,
                "retrained_ci_low": None,
                "retrained_ci_high": None,
            }
        ]  # fmt: skip
    )
    text = front_page(claims, table1)
    assert "**toy / exp100 / ce** (3 seeds): 1 holds, 1 fails, 1 inconclusive, 1 n/a." in text
    assert "+0.120 [+0.050, +0.190]" in text and "not measurable" in text
    assert "0.700 [0.660, 0.740]" in text
    assert "| 0.800 |" not in text and "     - 0.800" in text  # no interval: the mean alone
    html = publish_parts(text, writer="html", settings_overrides={"report_level": 2})
    assert "System Message" not in html["html_body"]  # docutils found nothing to complain of
    assert "<table" in html["html_body"]


def test_front_page_without_imbalanced_runs_says_so():
    empty = pa.Table.from_pylist([], schema=pa.schema([("dataset", pa.string())]))
    assert "No imbalanced runs" in front_page(empty)
