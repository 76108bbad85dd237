"""The documentation: the MkDocs site builds with ``--strict`` and the README points into it.

A strict build fails on a broken link or anchor, on a page left out of the navigation, and on
a marker that the hook (docs/hooks/markers.py) does not know or that no page uses. The tests
below also check that the hook filled its tables from the code, that the README stays short
and links every page, and that no page sends its reader to a document or an issue that a
clone of this repository does not have.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fragility.catalog.claims import CLAIMS
from fragility.catalog.outputs import CROSS_RUN_TABLES, RUN_FIGURES

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
# what a reader of this repository alone cannot open
ELSEWHERE = re.compile(r"\bSPEC\b|\.\./shared/|\b[Ii]ssues?\s+#?[0-9]+")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed under CI: the dev extras (setup.sh) include it")
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]'); CI runs these tests")
    out = tmp_path_factory.mktemp("site")
    build = [sys.executable, "-m", "mkdocs", "build", "--strict",
             "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(out)]  # fmt: skip
    result = subprocess.run(build, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def test_the_site_builds_strict_with_every_page(site):
    sources = {p.stem for p in (REPO / "docs").glob("*.md")} - {"index"}
    assert (site / "index.html").is_file()
    assert {p.parent.name for p in site.glob("*/index.html")} >= sources


def test_the_claims_page_lists_every_claim_of_the_catalog(site):
    html = page(site, "metrics-and-claims")
    assert f"{len(CLAIMS)} claims." in html
    for name, spec in CLAIMS.items():
        assert f'id="{name}"' in html, name
        assert spec.source in html, name
    assert "claims-table" not in html and "claims-summary" not in html  # markers replaced


def test_the_outputs_page_lists_every_cross_run_table_and_figure(site):
    html = page(site, "outputs")
    for name in CROSS_RUN_TABLES:
        assert f"<code>{name}</code>" in html, name
    for name, figure in RUN_FIGURES.items():
        assert f"<code>{{run}}/{figure.rq}/{name}.png</code>" in html, name


def test_the_configuration_page_lists_every_key_of_the_schema(site):
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    html = page(site, "configuration")
    for key in schema["properties"]:
        assert f"<code>{key}</code>" in html, key
    for key in schema["$defs"]["training"]["properties"]:
        assert f"<code>{key}</code>" in html, key
    # config.yaml itself, shown as it is
    assert "fashion_mnist" in html and "select_from" in html


def test_no_built_page_sends_the_reader_elsewhere(site):
    for html in site.glob("**/index.html"):
        text = re.sub(r"<[^>]+>", " ", html.read_text())
        found = ELSEWHERE.search(text)
        assert not found, f"{html.relative_to(site)}: {text[found.start() - 60 : found.end() + 60]}"


def test_no_source_page_or_readme_sends_the_reader_elsewhere():
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        found = ELSEWHERE.search(path.read_text())
        assert not found, f"{path.name}: {found.group(0)!r}"


def test_the_readme_is_short_and_links_every_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    links = {
        target.split("#")[0]
        for target in re.findall(r"\]\(([^)\s]+)\)", readme)
        if "://" not in target
    }
    missing = sorted(link for link in links if not (REPO / link).exists())
    assert not missing, f"README links to files that do not exist: {missing}"
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")}
    assert not pages - links, f"README does not link: {sorted(pages - links)}"


def test_the_docs_hook_is_linted_like_the_package():
    """tests/test_lint.py covers src, tests, bench and workflow_scripts; the hook lives in docs/."""
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.fail(f"ruff is not in {ruff.parent}: run setup.sh (pip install -e '.[dev]')")
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [str(ruff), *args, "--no-cache", "docs/hooks"], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
