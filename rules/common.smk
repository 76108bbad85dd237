# Config validation, the study's runs, and the input functions of every rule.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fragility.config import Study, load_schema, schema_error_line

# one line naming the key, instead of jsonschema's print-out of the whole schema
try:
    validate(config, schema="../config/schema.yaml")
except WorkflowError as error:
    sys.exit(f"config error: {schema_error_line(error)}")

from fragility.analysis.claims import CLAIM_TABLES
from fragility.analysis.crossrun import CROSS_RUN_TABLES, RunRef, balanced_partner
from fragility.analysis.curves import CURVE_SOURCES, REMEDY_SOURCE, curve_groups, curve_input
from fragility.analysis.tables import TABLES
from fragility.errors import FragilityError
from fragility.plotting import CROSS_RUN_FIGURES, FIGURES
from fragility.plotting_curves import CURVE_FIGURES

try:
    STUDY = Study(config, load_schema(Path(workflow.basedir) / "config" / "schema.yaml"))
except FragilityError as error:
    sys.exit(f"config error: {error}")

# Path templates of every output, in one place (the layout of SPEC section 6).
RESULTS = config["results"]
RUN_DIR = f"{RESULTS}/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}"
PATHS = {
    "dataset": f"{config['data_dir']}/{{dataset}}.npz",
    "split": f"{RESULTS}/{{dataset}}/{{imbalance}}/split_seed{{seed}}.parquet",
    "model": f"{RUN_DIR}/model.pt",
    "history": f"{RUN_DIR}/history.parquet",
    "metrics": f"{RUN_DIR}/metrics.json",
    "embeddings": f"{RUN_DIR}/embeddings/{{subset}}.parquet",
    "rq1": f"{RUN_DIR}/rq1/retrained.{{ext}}",
    "run_figure": f"{RUN_DIR}/{{rq}}/{{figure}}.png",
    "remedy": f"{RUN_DIR}/remedies/{{remedy}}/metrics.json",
    "remedy_embeddings": f"{RUN_DIR}/remedies/{{remedy}}/embeddings/{{subset}}.parquet",
    # the resume state is not a declared output, so a killed job keeps it
    "resume": f"{RUN_DIR}/.resume.pt",
}
# Logs and benchmarks live under the study's results root too (SPEC section 6), so two studies
# with different `results:` never write to the same log file.
LOG_ROOT = f"{RESULTS}/logs"
BENCHMARK_ROOT = f"{RESULTS}/benchmarks"


wildcard_constraints:
    dataset="|".join(sorted(STUDY.datasets)),
    imbalance=r"balanced|exp[0-9.]+|step[0-9.]+",
    loss="|".join(sorted(STUDY.losses)),
    seed=r"\d+",
    rq=r"rq[1-7]",
    ext="csv|parquet",
    figure="|".join([*FIGURES, *CROSS_RUN_FIGURES]),
    remedy="|".join(STUDY.remedy_methods()) or "no_remedy_configured",


def run_of(wildcards):
    return STUDY.runs_for(
        dataset=wildcards.dataset,
        imbalance=wildcards.imbalance,
        loss=wildcards.loss,
        seed=int(wildcards.seed),
    )[0]


def run_tables(run):
    return [
        f"{RESULTS}/{run.path}/{rq}/{table}.csv" for rq, tables in TABLES.items() for table in tables
    ]


def run_figures(run):
    return [f"{RESULTS}/{run.path}/{spec.rq}/{name}.png" for name, spec in FIGURES.items()]


def get_all_targets():
    targets = []
    for run in STUDY.runs:
        targets.append(f"{RESULTS}/{run.path}/metrics.json")
        targets += run_tables(run) + run_figures(run)
        if run.imbalance != "balanced":
            targets.append(f"{RESULTS}/{run.path}/rq1/retrained.csv")
    targets += [f"{RESULTS}/tables/{name}.csv" for name in CROSS_RUN_TABLES]
    targets += [f"{RESULTS}/tables/{name}" for name in ("claims.csv", "claims.txt", "summary.rst")]
    targets.append(f"{RESULTS}/tables/provenance.csv")
    targets += [f"{RESULTS}/figures/{name}.png" for name in CROSS_RUN_FIGURES]
    if STUDY.remedy_methods() and STUDY.remedy_base_runs():
        targets += [f"{RESULTS}/tables/remedies.csv", f"{RESULTS}/figures/remedies_bac_vs_cost.png"]
    for run in STUDY.remedy_base_runs():
        for name in STUDY.remedy_methods():
            folder = f"{RESULTS}/{run.path}/remedies/{name}"
            targets += [f"{folder}/{rq}/{table}.csv" for rq in REMEDY_RQS for table in TABLES[rq]]
    targets += get_curve_targets()
    return targets


# the research questions run on every remedied model by default (any other is a target too)
REMEDY_RQS = ("rq3", "rq4", "rq7")


def model_files(folder, history):
    """What the RQ analyses read from a model folder (a run, or a remedied model under it)."""
    files = {name: f"{folder}/embeddings/{name}.parquet" for name in ("train", "test", "classifier")}
    files["metrics"] = f"{folder}/metrics.json"
    if history:
        files["history"] = f"{folder}/history.parquet"
    return files


def run_dir_of(wildcards):
    return RUN_DIR.format(**{k: wildcards[k] for k in ("dataset", "imbalance", "loss", "seed")})


def get_figure_tables(wildcards):
    spec = FIGURES[wildcards.figure]
    if spec.rq != wildcards.rq:
        raise ValueError(f"figure {wildcards.figure} belongs under {spec.rq}/, not {wildcards.rq}/")
    run_dir = run_dir_of(wildcards)
    return {table: f"{run_dir}/{spec.rq}/{table}.parquet" for table in spec.tables}


def cross_run_refs():
    """Every run of the study, as the cross-run tables take them."""
    return [
        {
            "dataset": run.dataset,
            "imbalance": run.imbalance,
            "loss": run.loss,
            "seed": run.seed,
            "run_dir": f"{RESULTS}/{run.path}",
        }
        for run in STUDY.runs
    ]


def cross_run_inputs(spec):
    """The per-run files one cross-run table reads (Table 1 also needs balanced metrics)."""
    files = []
    for run in STUDY.runs:
        for relative in spec.inputs:
            balanced_reads = ("metrics.json", "uncertainty/bootstrap.parquet")
            if spec.imbalanced_only and run.imbalance == "balanced" and relative not in balanced_reads:
                continue
            files.append(f"{RESULTS}/{run.path}/{relative}")
    return files


def imbalanced_runs():
    return [run for run in STUDY.runs if run.imbalance != "balanced"]


def bootstrap_path(run):
    return f"{RESULTS}/{run.path}/uncertainty/bootstrap.parquet"


def balanced_partner_of(run):
    """The balanced run a run's RQ1 claim compares with (crossrun.balanced_partner)."""
    refs = [RunRef(**ref) for ref in cross_run_refs()]
    this = next(r for r in refs if r.run_dir == f"{RESULTS}/{run.path}")
    return balanced_partner(this, refs)


def get_bootstrap_inputs(wildcards):
    run_dir = run_dir_of(wildcards)
    files = model_files(run_dir, history=False)
    if wildcards.imbalance != "balanced":
        files["retrained"] = f"{run_dir}/rq1/retrained_predictions.parquet"
        partner = balanced_partner_of(run_of(wildcards))
        if partner is not None:
            files["balanced_test"] = f"{partner.run_dir}/embeddings/test.parquet"
    return files


def get_summary_inputs(wildcards):
    files = {"claims": f"{RESULTS}/tables/claims.parquet"}
    if imbalanced_runs():
        files["table1"] = f"{RESULTS}/tables/table1.parquet"
    if STUDY.remedy_methods() and STUDY.remedy_base_runs():
        files["remedies"] = f"{RESULTS}/tables/remedies.parquet"
    return files


def get_dataset_settings(wildcards):
    return STUDY.data_settings(wildcards.dataset)


def get_split_settings(wildcards):
    return STUDY.split_settings(wildcards.dataset)


def get_train_settings(wildcards):
    return STUDY.train_settings(run_of(wildcards))


def get_run_info(wildcards):
    run = run_of(wildcards)
    return {
        "dataset": run.dataset,
        "imbalance": run.imbalance,
        "loss": run.loss,
        "seed": run.seed,
        "run": run.path,
    }


# -- fragility curves (rules/curves.smk): runs that differ only in the imbalance ratio R ------
def curve_sources():
    """The by-seed tables curve tables are built from (remedy gains when remedies run)."""
    sources = list(CURVE_SOURCES)
    if STUDY.remedy_methods() and STUDY.remedy_base_runs():
        sources.append(REMEDY_SOURCE)
    return sources


def curve_figure_targets():
    """(dataset, loss, figure) of every curve figure: a (dataset, loss) with at least two
    ratios R > 1 in one family; the remedy gains where those runs are remedy bases."""
    runs = [(r.dataset, r.imbalance, r.loss) for r in STUDY.runs]
    treated = [(r.dataset, r.imbalance, r.loss) for r in STUDY.remedy_base_runs()]
    groups = dict.fromkeys((d, l) for d, l, _ in curve_groups(runs))
    treated_groups = {(d, l) for d, l, _ in curve_groups(treated)}
    has_remedies = REMEDY_SOURCE in curve_sources()
    return [
        (dataset, loss, name)
        for dataset, loss in groups
        for name, spec in CURVE_FIGURES.items()
        if spec.every_stat_of != REMEDY_SOURCE
        or (has_remedies and (dataset, loss) in treated_groups)
    ]


def get_curve_targets():
    """Curve tables, figures and the smallest-R table, when the study has a curve."""
    figures = curve_figure_targets()
    if not figures:
        return []
    targets = [f"{RESULTS}/tables/curves/{source}.csv" for source in curve_sources()]
    targets.append(f"{RESULTS}/tables/curves/all_statistics.csv")
    targets.append(f"{RESULTS}/tables/curves/claims_smallest_ratio.csv")
    targets += [f"{RESULTS}/figures/curves/{d}/{l}/{name}.png" for d, l, name in figures]
    return targets


def get_curve_figure_tables(wildcards):
    """The tables of one curve figure's statistics (by-seed tables, or the claims), and
    nothing else."""
    sources = CURVE_FIGURES[wildcards.curve].sources()
    return {source: f"{RESULTS}/tables/{curve_input(source)}" for source in sources}


def get_curve_caption(wildcards):
    return CURVE_FIGURES[wildcards.curve].caption
