"""Lint in CI (the README's test command, run by .ci/run): ruff's linter and formatter over the
Python code, `snakemake --lint` over the workflow with the default config and the smoke preset,
and import-linter over the package's layers (the contracts in pyproject.toml).

Fix what they report, or give the reason in pyproject.toml ([tool.ruff]) or the README
("Development"): these tests allow no finding that is not explained there.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake_cli import REPO, SMOKE

PYTHON_CODE = ["src", "tests", "bench", "workflow_scripts"]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if not (BIN / tool).exists():
        pytest.fail(f"{tool} is not in {BIN}: run setup.sh (pip install -e '.[dev]')")
    cmd = [str(BIN / tool), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean():
    result = run("ruff", "check", "--no-cache", *PYTHON_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    result = run("ruff", "format", "--check", "--no-cache", *PYTHON_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("configfile", [REPO / "config.yaml", SMOKE], ids=["default", "smoke"])
def test_snakemake_lint_finds_nothing(configfile):
    result = run(
        "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"),
        "--configfile", str(configfile), "--directory", str(REPO),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_the_package_imports_run_one_way_down_its_layers():
    """Each sub-package imports only those below it in the order data flows (catalog, data,
    training, embeddings, analysis, remedies, plotting, workflow), with no cycle."""
    if not (BIN / "lint-imports").exists():
        if os.environ.get("CI"):
            pytest.fail(
                "lint-imports is not installed under CI: the dev extras (setup.sh) include it"
            )
        pytest.skip("import-linter is not installed (pip install -e '.[dev]'); CI runs this test")
    result = run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


MAX_FUNCTION_LINES = 80


def test_no_function_in_the_package_is_longer_than_80_lines():
    """A long function hides steps that tests, the bench and the reference loop want to call
    one by one: split it into named pieces instead."""
    import ast

    long = []
    for path in sorted((REPO / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert not long, "functions over 80 lines: " + ", ".join(long)
