# The study's config, its validation, the study's runs, and the input functions of every rule.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fragility.errors import ConfigError
from fragility.workflow.config import Study, load_schema, schema_error_line, study_config

# A study is what its config file says: the file given with --configfile is the whole study
# (one that adds to another names it with `extends:`), config.yaml when none is given, and
# --config values last. Snakemake alone would lay any --configfile over config.yaml, so a
# preset without `runs` would train the default study's.
try:
    _study, _study_files = study_config(
        workflow.overwrite_configfiles, workflow.config_settings.config, "config.yaml"
    )
except ConfigError as error:
    sys.exit(f"config error: {error}")
config.clear()
config.update(_study)
workflow.configfiles.extend(str(f) for f in _study_files if str(f) not in workflow.configfiles)

# one line naming the key, instead of jsonschema's print-out of the whole schema
try:
    validate(config, schema="../config/schema.yaml")
except WorkflowError as error:
    sys.exit(f"config error: {schema_error_line(error)}")

from fragility.catalog.claims import PREMISE_TABLE
from fragility.catalog.layout import EMBEDDINGS, IMBALANCE, REMEDY_FILES, Layout
from fragility.catalog.outputs import (
    CROSS_RUN_FIGURES,
    CROSS_RUN_TABLES,
    REMEDY_FIGURE,
    REMEDY_READS,
    REMEDY_RQS,
    REMEDY_TABLE,
    RETRAIN_READS,
    RUN_FIGURES,
    RUN_TABLES,
    bootstrap_reads,
    history_figure,
)
from fragility.training import gpus
from fragility.analysis.runs import RunFiles, balanced_partner
from fragility.analysis.paper import paper_loss
from fragility.analysis.curves import (
    CURVE_SOURCES,
    REMEDY_SOURCE,
    curve_groups,
    curve_input,
    figure_sources,
)
from fragility.errors import FragilityError
from fragility.workflow.resources import JobSizes, expected_device
from fragility.workflow.jobs import files_of_runs
from fragility.catalog.outputs import CURVE_FIGURES

try:
    STUDY = Study(config, load_schema(Path(workflow.basedir) / "config" / "schema.yaml"))
except FragilityError as error:
    sys.exit(f"config error: {error}")
for note in STUDY.notes:  # what a model trained elsewhere cannot have (config `models`)
    print(f"note: {note}", file=sys.stderr)

# The report's captions come from the catalog through the config, which the caption files
# (report/*.rst) read when Snakemake renders them: params would carry them too, but Snakemake
# compares params to decide what to rerun, and editing a caption must rerun nothing.
config["report_captions"] = {
    "run_figure": {name: spec.caption for name, spec in RUN_FIGURES.items()},
    "cross_run_figure": {name: spec.caption for name, spec in CROSS_RUN_FIGURES.items()},
    "cross_run_table": {name: spec.description for name, spec in CROSS_RUN_TABLES.items()},
    "curve_figure": {name: spec.caption for name, spec in CURVE_FIGURES.items()},
}

# Every path comes from the catalog (fragility.catalog.layout.Layout, docs/outputs.md), logs and
# benchmarks included, under the study's results root.
LAYOUT = Layout(results=config["results"], data_dir=config["data_dir"])
RUN_LOG = "{dataset}/{imbalance}/{loss}/seed{seed}"  # a run's part of a log path
# check_inputs: every job runs in a shadow folder holding only its declared inputs, so a stage
# reading an undeclared file fails (about 0.7 s more per job, hence off by default)
SHADOW = "minimal" if config.get("check_inputs") else None

# Torch's OpenMP threads spin between parallel regions by default, and a training beside the
# single-thread analysis jobs (--cores 4 on 2 cores) then ran 2.7-2.8x slower than with them
# asleep (bench/cpu_sharing.py); alone it costs 1.27x. Every job inherits this unless the
# environment sets its own policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Local GPU jobs claim a device each (fragility.training.gpus): the folder of their lock files and the
# config's `gpus:` reach the jobs' scripts through the environment, so that neither is a
# rerun trigger; absolute, because a shadow job runs in a folder of its own.
os.environ[gpus.SLOTS_ENV] = os.path.abspath(LAYOUT.gpu_slots())
if config.get("gpus"):
    os.environ[gpus.GPUS_ENV] = ",".join(map(str, config["gpus"]))


def asks_scheduler_for_gpu(rule):
    """Whether --set-resources (profiles/slurm's) asks SLURM for a GPU for this rule."""
    mapping = dict(workflow.resource_settings.overwrite_resources.get(rule, {}))
    raw = {name: getattr(value, "raw", value) for name, value in mapping.items()}
    return "gpu" in str(raw.get("gres") or "") or bool(raw.get("gpu"))


# A local run on a machine without a GPU: trainings and extractions count no `gpu` (the flag
# limits how many share a GPU) and use one torch thread each, so that --cores
# runs several side by side, and their weights do not depend on --cores. Two 1-thread
# trainings on 2 cores train 1.4x as fast as one 2-thread one (bench/cpu_sharing.py).
CPU_ONLY = not asks_scheduler_for_gpu("train_model") and (
    config["device"] == "cpu"
    or (config["device"] == "auto" and not gpus.visible_devices(config.get("gpus")))
)
GPU_JOB = 0 if CPU_ONLY else 1  # the `gpu` resource of a training or extraction job
MODEL_THREADS = 1 if CPU_ONLY else 2  # its threads (torch's, and Snakemake's count)

# What each job asks a cluster for (mem_mb, runtime: fragility.workflow.resources), from its dataset,
# model, epochs and device; more on a retry. Locally nothing reads these.
SIZES = JobSizes(
    STUDY,
    config["data_dir"],
    expected_device(config["device"], asks_scheduler_for_gpu("train_model")),
)


def training_priority(wildcards):
    """A training's estimated minutes: the longest trainings start first (a study's balanced
    runs train on several times the images of an imbalanced one and, started last, would
    finish alone)."""
    return SIZES.of("train", wildcards).runtime


# Splits take seconds and gate the trainings: all of them first, so that the trainings start
# in priority order instead of in the order their splits happen to finish.
SPLITS_FIRST = 1 + max((SIZES.train(run).runtime for run in STUDY.runs), default=0)


def sized(kind):
    """The resources of a job of this kind (fragility.workflow.resources.JobSizes.of)."""
    return {
        resource: lambda wildcards, attempt, resource=resource: getattr(
            SIZES.of(kind, wildcards, attempt), resource
        )
        for resource in ("mem_mb", "runtime")
    }


wildcard_constraints:
    dataset="|".join(sorted(STUDY.datasets)),
    imbalance=IMBALANCE,
    loss="|".join(STUDY.run_names()),
    seed=r"\d+",
    rq="|".join(sorted({spec.rq for spec in RUN_FIGURES.values()})),
    figure="|".join(RUN_FIGURES),
    remedy="|".join(STUDY.remedy_methods()) or "no_remedy_configured",


def run_of(wildcards):
    return STUDY.runs_for(
        dataset=wildcards.dataset,
        imbalance=wildcards.imbalance,
        loss=wildcards.loss,
        seed=int(wildcards.seed),
    )[0]


def imbalanced_runs():
    return [run for run in STUDY.runs if run.imbalance != "balanced"]


def has_remedies():
    return bool(STUDY.remedy_methods() and STUDY.remedy_base_runs())


def run_targets(run):
    """A run's metrics, its per-run tables and figures, and (imbalanced) its RQ1 table."""
    targets = [LAYOUT.file("metrics", run.path)]
    for rq, spec in RUN_TABLES.items():
        targets += [LAYOUT.run_table(rq, table, "csv", run.path) for table in spec.tables]
    external = STUDY.is_external(run)  # trained elsewhere: no figures of a training history
    figures = [n for n in RUN_FIGURES if not (external and history_figure(n))]
    targets += [LAYOUT.run_figure(name, run.path) for name in figures]
    return targets + test_only_targets(run)[1:]


def test_only_targets(run):
    """A run's metrics and (imbalanced) its RQ1 table: all a model trained elsewhere on an
    unknown training subset gets (STUDY.test_only_runs)."""
    targets = [LAYOUT.file("metrics", run.path)]
    if run.imbalance != "balanced":
        targets.append(LAYOUT.run_table("rq1", "retrained", "csv", run.path))
    return targets


def remedy_targets():
    """The remedies table and figure, and the default RQ tables of every remedied model."""
    if not has_remedies():
        return []
    targets = [LAYOUT.table(REMEDY_TABLE, "csv"), LAYOUT.figure(REMEDY_FIGURE)]
    for run in STUDY.remedy_base_runs():
        for name in STUDY.remedy_methods():
            targets += [
                LAYOUT.run_table(rq, table, "csv", run.path, name)
                for rq in REMEDY_RQS
                for table in RUN_TABLES[rq].tables
            ]
    return targets


def get_all_targets():
    targets = [path for run in STUDY.runs for path in run_targets(run)]
    targets += [path for run in STUDY.test_only_runs for path in test_only_targets(run)]
    targets += [LAYOUT.table(name, "csv") for name in CROSS_RUN_TABLES]
    targets += [LAYOUT.table("claims", ext) for ext in ("csv", "txt")]
    targets += [LAYOUT.table("summary", "rst"), LAYOUT.table("claims_matrix", "html")]
    targets += [LAYOUT.table("provenance", "csv")]
    targets += [LAYOUT.figure(name) for name in CROSS_RUN_FIGURES]
    return targets + remedy_targets() + get_curve_targets()


def run_files(run, kinds=(), remedies=None):
    """A run as the cross-run stages take it (fragility.analysis.runs.RunFiles): its keys and
    the files ``kinds`` of it (and, for a treated run, the files of each remedied model under
    it)."""
    entry = dict(dataset=run.dataset, imbalance=run.imbalance, loss=run.loss, seed=run.seed)
    entry["paper_loss"] = paper_loss(STUDY.loss_entry(run.loss))  # the paper's numbers beside ours
    entry["files"] = LAYOUT.files(kinds, run.path)
    if remedies:
        entry["remedies"] = {name: LAYOUT.files(kinds, run.path, name) for name in remedies}
    return entry


def cross_run_files(spec):
    """Every run a cross-run table covers, with the files the catalog says it reads."""
    runs = []
    for run in STUDY.runs:
        if run.imbalance != "balanced" or not spec.imbalanced_only:
            runs.append(run_files(run, spec.reads))
        elif spec.balanced_reads:
            runs.append(run_files(run, spec.balanced_reads))
    return runs


def balanced_partner_of(run):
    """The balanced run a run's RQ1 claim compares with (crossrun.balanced_partner)."""
    keys = {r: RunFiles(r.dataset, r.imbalance, r.loss, r.seed) for r in STUDY.runs}
    partner = balanced_partner(keys[run], list(keys.values()))
    return None if partner is None else next(r for r, key in keys.items() if key == partner)


def get_bootstrap_inputs(wildcards):
    """A run's files; for an imbalanced run also Table 1's balanced model's test embeddings
    and the files of its balanced partner (STUDY.claim_partner) that the claims read."""
    run = run_of(wildcards)
    files = LAYOUT.files(bootstrap_reads(run.imbalance != "balanced"), run.path)
    if run.imbalance == "balanced":
        return files
    balanced = balanced_partner_of(run)
    if balanced is not None:
        files["balanced_test"] = LAYOUT.file("test", balanced.path)
    partner = STUDY.claim_partner(run)[0]
    if partner is not None:
        for kind in ("train", "classifier", "metrics"):
            files[f"partner_{kind}"] = LAYOUT.file(kind, partner.path)
    return files


def get_bootstrap_partners(wildcards):
    """Who Table 1's balanced model and the claims' balanced partner are, in words, or why a
    run has none (the claims' n/a reasons)."""
    run = run_of(wildcards)
    if run.imbalance == "balanced":
        return {}
    balanced = balanced_partner_of(run)
    partner, missing = STUDY.claim_partner(run)
    return {
        "balanced_name": f"{balanced.loss} seed {balanced.seed}" if balanced else "",
        "partner_name": f"{partner.loss} seed {partner.seed}" if partner else "",
        "partner_missing": missing,
    }


def get_summary_inputs(wildcards):
    files = {"claims": LAYOUT.table("claims")}
    if imbalanced_runs():
        files["table1"] = LAYOUT.table("table1")
    if has_remedies():
        files["remedies"] = LAYOUT.table(REMEDY_TABLE)
    return files


def get_figure_tables(wildcards):
    spec = RUN_FIGURES[wildcards.figure]
    if spec.rq != wildcards.rq:
        raise ValueError(f"figure {wildcards.figure} belongs under {spec.rq}/, not {wildcards.rq}/")
    run = run_of(wildcards).path
    return {table: LAYOUT.run_table(spec.rq, table, "parquet", run) for table in spec.tables}


def get_dataset_settings(wildcards):
    return STUDY.data_settings(wildcards.dataset)


def get_split_settings(wildcards):
    return STUDY.split_settings(wildcards.dataset)


def get_train_settings(wildcards):
    return STUDY.train_settings(run_of(wildcards))


def get_run_keys(wildcards):
    """A run's keys and its folder name (``run``), recorded in every file of its training."""
    run = run_of(wildcards)
    return {
        "dataset": run.dataset,
        "imbalance": run.imbalance,
        "loss": run.loss,
        "seed": run.seed,
        "run": run.path,
    }


# -- models trained elsewhere (rules/external.smk): they enter the DAG at their checkpoint --
EXTERNAL_NAMES = "|".join(sorted(STUDY.models)) or "no_model_configured"


def get_external_split_inputs(wildcards):
    """The canonical dataset, and a model's index file when its training subset is one."""
    settings = STUDY.external_settings(run_of(wildcards))
    files = {"data": LAYOUT.dataset(wildcards.dataset)}
    if settings["training_subset"]["mode"] == "index_file":
        files["index"] = settings["training_subset"]["path"]
    return files


def get_external_split_settings(wildcards):
    return STUDY.external_split_settings(run_of(wildcards))


def get_external_inputs(wildcards):
    """The dataset, the model's split, its checkpoint (and an entry point's file)."""
    run = run_of(wildcards)
    settings = STUDY.external_settings(run)
    files = {
        "data": LAYOUT.dataset(run.dataset),
        "split": LAYOUT.file("split", run.path),
        "checkpoint": settings["checkpoint"],
    }
    source = (settings["arch"] or "").rpartition(":")[0]
    if settings["format"] == "entry_point" and source.endswith(".py"):
        files["entry_point"] = source
    return files


def get_external_settings(wildcards):
    return STUDY.external_settings(run_of(wildcards))


def get_checkpoint_stamp(wildcards):
    """Size and modification time of a checkpoint from outside the study: a replaced file
    reruns its model even when its copy kept an older time (cp -p, rsync -a); a model.pt of
    this study is tracked as the output it is."""
    path = Path(STUDY.external_settings(run_of(wildcards))["checkpoint"])
    if path.resolve().is_relative_to(Path(LAYOUT.results).resolve()):
        return None
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


# -- fragility curves (rules/curves.smk): runs that differ only in the imbalance ratio R ------
def curve_sources():
    """The by-seed tables curve tables are built from (remedy gains when remedies run)."""
    sources = list(CURVE_SOURCES)
    if has_remedies():
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
    targets = [LAYOUT.table(f"curves/{source}", "csv") for source in curve_sources()]
    targets.append(LAYOUT.table("curves/all_statistics", "csv"))
    targets.append(LAYOUT.table("curves/claims_smallest_ratio", "csv"))
    targets += [LAYOUT.figure(f"curves/{d}/{l}/{name}") for d, l, name in figures]
    return targets


def get_curve_figure_tables(wildcards):
    """The tables of one curve figure's statistics (by-seed tables, or the claims), and
    nothing else."""
    sources = figure_sources(CURVE_FIGURES[wildcards.curve])
    return {source: LAYOUT.table(curve_input(source)) for source in sources}
