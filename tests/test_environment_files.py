"""envs/fragility.yaml (the rules' conda environment) and pyproject.toml must not drift apart."""

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
# conda-forge/pytorch names that differ from the PyPI name of the same package
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch"}


def normalise(name: str) -> str:
    """PEP 503: case-insensitive, runs of '-', '_' and '.' are equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str | None:
    """The package name of a PEP 508 requirement or a conda match spec; None for pip options."""
    spec = spec.strip()
    if not spec or spec.startswith("-"):  # -e ../, -r file: not a package name
        return None
    if "#egg=" in spec:  # git+https://...#egg=name
        return normalise(spec.split("#egg=", 1)[1].split("&")[0])
    spec = spec.split("::", 1)[-1]  # conda channel prefix, conda-forge::numpy
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
    return normalise(match.group(0)) if match else None


def pyproject_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {requirement_name(dep) for dep in project["dependencies"]}


def conda_env_packages(path: Path) -> set[str]:
    names = set()
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        specs = entry["pip"] if isinstance(entry, dict) else [entry]
        for spec in specs:
            name = requirement_name(str(spec))
            if name:
                names.add(CONDA_TO_PYPI.get(name, name))
    return names


def test_requirement_names():
    assert requirement_name("scikit-learn>=1.3") == "scikit-learn"
    assert requirement_name("conda-forge::PyArrow >=14") == "pyarrow"
    assert requirement_name("snakemake[reports] >=8; python_version>'3'") == "snakemake"
    assert requirement_name("Foo_Bar.baz==1") == "foo-bar-baz"
    assert requirement_name("-e ../") is None
    assert requirement_name("git+https://x/y.git#egg=tqdm") == "tqdm"


def test_conda_env_lists_every_runtime_dependency_of_the_package():
    required = pyproject_dependencies()
    assert "numpy" in required and "torch" in required  # the parser found the list
    listed = conda_env_packages(REPO / "envs" / "fragility.yaml")
    missing = sorted(required - listed)
    assert not missing, f"envs/fragility.yaml lacks pyproject.toml dependencies: {missing}"
