"""The catalog (fragility.catalog) is the one declaration of the study's outputs: the rules
make exactly what it declares, the config schema's enums name what it and the package know,
and the stages read only the files they are handed."""

import re

import numpy as np
import pyarrow as pa
import pytest
import toy_entries
import yaml
from snakemake_cli import REPO, SMOKE, run_snakemake

from fragility.catalog import claims, layout, outputs, remedies, resolve
from fragility.catalog.layout import Layout
from fragility.training.settings import LOSSES

RULES = REPO / "rules"


def test_the_layout_of_a_study():
    paths = Layout(results="res", data_dir="data")
    run = "digits/exp10/ce/seed0"
    assert paths.dataset("digits") == "data/digits.npz"
    assert paths.split() == "res/{dataset}/{imbalance}/split_seed{seed}.parquet"
    assert paths.file("metrics", run) == "res/digits/exp10/ce/seed0/metrics.json"
    assert paths.file("test", run) == "res/digits/exp10/ce/seed0/embeddings/test.parquet"
    assert paths.file("rq2/table2", run) == "res/digits/exp10/ce/seed0/rq2/table2.parquet"
    assert (
        paths.file("test") == "res/{dataset}/{imbalance}/{loss}/seed{seed}/embeddings/test.parquet"
    )
    assert (
        paths.file("metrics", run, remedy="eos")
        == "res/digits/exp10/ce/seed0/remedies/eos/metrics.json"
    )
    assert paths.run_figure("fig4_class_mean_ce", run) == f"res/{run}/rq4/fig4_class_mean_ce.png"
    assert paths.table("claims", "txt") == "res/tables/claims.txt"
    assert paths.figure("table1_bac") == "res/figures/table1_bac.png"
    assert paths.log("train", run) == f"res/logs/train/{run}.log"
    assert paths.benchmark("train", run) == f"res/benchmarks/train/{run}.tsv"
    with pytest.raises(KeyError, match="no model file of kind 'rq2/nothing'"):
        layout.model_file("rq2/nothing")


def test_declarations_refer_to_what_exists():
    per_run = {f"{rq}/{t}" for rq, spec in outputs.RUN_TABLES.items() for t in spec.tables}
    kinds = set(layout.MODEL_FILES) | per_run
    for name, spec in outputs.CROSS_RUN_TABLES.items():
        assert set(spec.reads) | set(spec.balanced_reads) <= kinds, name
    for spec in outputs.RUN_TABLES.values():
        assert set(spec.reads) <= set(layout.MODEL_FILES)
    assert claims.PREMISE_TABLE in outputs.CROSS_RUN_TABLES
    for name, figure in outputs.RUN_FIGURES.items():
        assert set(figure.tables) <= set(outputs.RUN_TABLES[figure.rq].tables), name
    for name, figure in outputs.CROSS_RUN_FIGURES.items():
        assert set(figure.tables) <= set(outputs.CROSS_RUN_TABLES), name
    assert set(outputs.REMEDY_RQS) <= set(outputs.RUN_TABLES)


def test_every_entry_names_a_function_that_exists():
    from fragility.analysis.bootstrap import statistic

    for spec in [*outputs.RUN_TABLES.values(), *outputs.CROSS_RUN_TABLES.values()]:
        assert callable(resolve(spec.build)), spec.build
    for figures in (outputs.RUN_FIGURES, outputs.CROSS_RUN_FIGURES, outputs.CURVE_FIGURES):
        for spec in figures.values():
            assert callable(resolve(spec.plot)), spec.plot
    for spec in remedies.REMEDIES.values():
        assert callable(resolve(spec.fit)), spec.fit
    for builder in LOSSES.values():
        assert callable(resolve(builder)), builder
    for name in claims.CLAIMS:
        assert callable(statistic(name)), name
    with pytest.raises(ValueError, match="names no function"):
        resolve("fragility.analysis.rq2:no_such_function")


def _planned_outputs(stdout: str) -> set[str]:
    outputs = set()
    for line in re.findall(r"^\s*output: (.+)$", stdout, re.MULTILINE):
        outputs.update(line.split(", "))
    return outputs


def test_the_rules_make_exactly_what_the_catalog_declares(tmp_path):
    """Every catalog entry of the smoke study (runs, remedies, cross-run tables, figures,
    claims) is an output of some job, and no job makes a file the catalog does not know."""
    result = run_snakemake(tmp_path, SMOKE, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    planned = _planned_outputs(result.stdout)
    config = yaml.safe_load(SMOKE.read_text())
    paths = Layout(results="results", data_dir=config.get("data_dir", "data"))
    runs = ["digits/balanced/ce/seed0", "digits/exp10/ce/seed0", "digits/exp10/ldam_drw/seed0"]
    methods = list(config["remedies"]["methods"])
    expected = {paths.dataset("digits")}
    expected |= {f"results/digits/{i}/split_seed0.parquet" for i in ("balanced", "exp10")}
    for run in runs:
        kinds = ["model", "history", "metrics", *layout.EMBEDDINGS]
        expected |= {paths.file(kind, run) for kind in kinds}
        expected |= {paths.bootstrap(ext, run) for ext in ("csv", "parquet")}
        for rq, spec in outputs.RUN_TABLES.items():
            expected |= {
                paths.run_table(rq, t, e, run) for t in spec.tables for e in ("csv", "parquet")
            }
        expected |= {paths.run_figure(name, run) for name in outputs.RUN_FIGURES}
        if "balanced" not in run:
            expected |= {paths.run_table("rq1", "retrained", e, run) for e in ("csv", "parquet")}
            expected.add(paths.file("retrained_predictions", run))
    treated = "digits/exp10/ce/seed0"
    for name in methods:
        expected |= {paths.file(kind, treated, name) for kind in layout.REMEDY_FILES}
        for rq in outputs.REMEDY_RQS:
            expected |= {
                paths.run_table(rq, t, e, treated, name)
                for t in outputs.RUN_TABLES[rq].tables
                for e in ("csv", "parquet")
            }
    for name in [*outputs.CROSS_RUN_TABLES, outputs.REMEDY_TABLE]:
        for table in (name, f"{name}_by_seed"):
            expected |= {paths.table(table, ext) for ext in ("csv", "parquet")}
    expected |= {paths.table("claims", ext) for ext in ("csv", "parquet", "txt")}
    expected |= {paths.table("summary", "rst"), paths.table("provenance", "csv")}
    expected.add(paths.table("claims_matrix", "html"))
    expected |= {paths.figure(name) for name in [*outputs.CROSS_RUN_FIGURES, outputs.REMEDY_FIGURE]}
    assert sorted(expected - planned) == []  # declared but made by no rule
    assert sorted(planned - expected) == []  # made but not declared


def _rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in sorted(RULES.glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^(\s*)rule( \w+)?:\n((?:\1    .*\n|\s*\n)+)", text, re.M):
            name = (match[2] or "").strip() or re.search(r'f?"([^"]+)"', match[3])[1]
            blocks[f"{path.name}:{name}"] = match[3]
    return blocks


def test_every_stage_runs_in_a_folder_holding_only_its_declared_inputs():
    """With ``check_inputs`` (on in the smoke preset every end-to-end test runs) Snakemake's
    minimal shadow links a job's declared inputs, and nothing else, into a fresh folder: a
    stage reading an undeclared file fails. Training keeps its resume state beside its
    outputs, and raw data comes from outside the study, so those two are the exceptions."""
    assert yaml.safe_load(SMOKE.read_text())["check_inputs"] is True
    blocks = _rule_blocks()
    assert len(blocks) > 15
    shadowed = re.compile(r"shadow:\s+SHADOW\n")
    unshadowed = {name for name, body in blocks.items() if not shadowed.search(body)}
    assert unshadowed == {
        "data.smk:prepare_dataset",
        "training.smk:train_model",
        "curves.smk:curves",
    }


# -- one declaration is enough: a toy claim, table and figure (tests/toy_entries.py) ------------


def test_a_table_and_a_figure_declared_once_get_their_rules_and_targets(tmp_path):
    """Registered in the catalog alone, a per-run table and its figure are planned for every
    trained run: a rule per research question makes the table, the figure rule draws it."""
    site = toy_entries.site_folder(tmp_path / "site")
    result = run_snakemake(tmp_path / "study", SMOKE, "-n", pythonpath=(site, REPO / "tests"))
    assert result.returncode == 0, result.stderr[-3000:]
    planned = _planned_outputs(result.stdout)
    assert "rule analyze_rq8:" in result.stdout
    for run in ["digits/balanced/ce/seed0", "digits/exp10/ce/seed0", "digits/exp10/ldam_drw/seed0"]:
        assert f"results/{run}/rq8/toy_means.csv" in planned, run
        assert f"results/{run}/rq8/toy_means.png" in planned, run


@pytest.fixture
def toy_catalog():
    """The toy entries in this process's catalog, for one test."""
    toy_entries.register()
    yield
    del outputs.RUN_TABLES[toy_entries.TOY_RQ], outputs.RUN_FIGURES[toy_entries.TOY_FIGURE]
    del claims.CLAIMS[toy_entries.TOY_CLAIM]


def test_a_claim_declared_once_is_measured_judged_and_shown(toy_catalog):
    """Registered in the catalog alone, a claim is bootstrapped with the others, gets its
    verdict row in the claims table and its row in the claims matrix."""
    from fragility.analysis.bootstrap import run_bootstrap
    from fragility.analysis.claims import measure_claims
    from fragility.analysis.inputs import RunInputs
    from fragility.analysis.summary import claims_matrix

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [30, 10, 5])
    fe = rng.gamma(2.0, 1.0, size=(len(labels), 4)) + labels[:, None]  # the minority's larger
    W, bias = rng.normal(size=(3, 4)), np.zeros(3)
    logits = fe @ W.T
    split = {"index": np.arange(len(labels)), "label": labels, "pred": logits.argmax(1),
             "fe": fe, "logits": logits}  # fmt: skip
    run = RunInputs(split, split, W, bias, False, np.bincount(labels))
    table = run_bootstrap(run, seed=0, n_boot=50, claims=True)
    row = next(r for r in table.to_pylist() if r["statistic"] == toy_entries.TOY_CLAIM)
    assert row["estimate"] > 0 and row["ci_low"] > 0
    key = ("toy", "exp10", "ce", 0)
    verdicts = measure_claims(pa.table({"dataset": pa.array([], pa.string())}), {key: table})
    toy = next(r for r in verdicts.to_pylist() if r["claim"] == toy_entries.TOY_CLAIM)
    assert toy["verdict"] == "holds" and toy["label"] == "Toy: minority FE larger"
    assert "Toy: minority FE larger" in claims_matrix(verdicts)
