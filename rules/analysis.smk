# The seven research questions (SPEC section 4): per-run tables and figures under
# {run}/rq{N}/, cross-run tables under results/tables/, figures under results/figures/.
# Every table and figure is a target of its own. These jobs take seconds and no GPU, so on a
# cluster they run beside Snakemake (localrule) instead of paying a batch job's start-up each.


rule retrain_classifier:
    input:
        pool=PATHS["embeddings"].replace("{subset}", "pool"),
        test=PATHS["embeddings"].replace("{subset}", "test"),
        classifier=PATHS["embeddings"].replace("{subset}", "classifier"),
    output:
        expand(PATHS["rq1"], ext=["csv", "parquet"], allow_missing=True),
        predictions=f"{RUN_DIR}/rq1/retrained_predictions.parquet",
    log:
        f"{LOG_ROOT}/analysis/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}/rq1.log",
    params:
        epochs=config["analysis"]["retrain_epochs"],
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/retrain_classifier.py"


# Every headline number and claim difference of one run with a stratified bootstrap over
# images (SPEC section 4): the intervals of single-seed findings and the replicates that the
# claims combine over seeds.
rule bootstrap_run:
    input:
        unpack(get_bootstrap_inputs),
    output:
        csv=f"{RUN_DIR}/uncertainty/bootstrap.csv",
        parquet=f"{RUN_DIR}/uncertainty/bootstrap.parquet",
    log:
        f"{LOG_ROOT}/analysis/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}/bootstrap.log",
    params:
        claims=lambda wildcards: wildcards.imbalance != "balanced",
        n_boot=config["analysis"]["bootstrap"],
        ks=config["analysis"]["ks"],
        k_fe=config["analysis"]["k_fe"],
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/bootstrap_run.py"


# One rule per research question and kind of model folder, each writing a fixed set of tables:
# a trained run, and a remedied model under it (SPEC section 5: does a remedy change the
# minority's top-K, ce and FB signature?). A remedied model has no training history.
LOGS = f"{LOG_ROOT}/analysis/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}"
MODEL_FOLDERS = (
    ("analyze", RUN_DIR, LOGS, True),
    ("analyze_remedy", f"{RUN_DIR}/remedies/{{remedy}}", f"{LOGS}/{{remedy}}", False),
)
for rule_prefix, folder, log_dir, has_history in MODEL_FOLDERS:
    for rq, tables in TABLES.items():

        rule:
            name:
                f"{rule_prefix}_{rq}"
            input:
                **model_files(folder, has_history),
            output:
                expand(
                    f"{folder}/{rq}/{{table}}.{{ext}}",
                    table=tables,
                    ext=["csv", "parquet"],
                    allow_missing=True,
                ),
            log:
                f"{log_dir}/{rq}.log",
            params:
                rq=rq,
                ks=config["analysis"]["ks"],
                k_fe=config["analysis"]["k_fe"],
            conda:
                "../envs/fragility.yaml"
            threads: 1
            localrule: True
            script:
                "../workflow_scripts/analyze_run.py"


rule plot_run_figure:
    input:
        unpack(get_figure_tables),
    output:
        report(
            PATHS["run_figure"],
            caption="../report/figure.rst",
            category="{dataset} {imbalance} {loss} seed{seed}",
            subcategory="{rq}",
            labels={"figure": "{figure}", "run": "{dataset}/{imbalance}/{loss}/seed{seed}"},
        ),
    log:
        f"{LOG_ROOT}/figures/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}/{{rq}}/{{figure}}.log",
    params:
        caption=lambda wildcards: FIGURES[wildcards.figure].caption,
        what=lambda wildcards: f"Run: {run_dir_of(wildcards)} (kept checkpoint).",
        title=lambda wildcards: f"{wildcards.dataset} {wildcards.imbalance} {wildcards.loss} seed {wildcards.seed}",
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/plot_run_figure.py"


# One rule per cross-run table: each reads only the per-run files it needs.
for name, spec in CROSS_RUN_TABLES.items():

    rule:
        name:
            f"cross_run_{name}"
        input:
            cross_run_inputs(spec),
        output:
            report(
                f"{RESULTS}/tables/{name}.csv",
                caption="../report/table.rst",
                category="Cross-run tables",
            ),
            f"{RESULTS}/tables/{name}.parquet",
            f"{RESULTS}/tables/{name}_by_seed.csv",
            f"{RESULTS}/tables/{name}_by_seed.parquet",
        log:
            f"{LOG_ROOT}/tables/{name}.log",
        params:
            name=name,
            runs=cross_run_refs(),
            caption=spec.description,
        conda:
            "../envs/fragility.yaml"
        threads: 1
        localrule: True
        script:
            "../workflow_scripts/cross_run_table.py"


# The lecture's training progress of every run side by side (majority, minority, mean over
# classes per epoch; mean over seeds), read by the cross-run training_dynamics figure.
rule cross_run_training_dynamics:
    input:
        [f"{RESULTS}/{run.path}/rq2/training_dynamics.parquet" for run in STUDY.runs],
    output:
        f"{RESULTS}/tables/training_dynamics.csv",
        f"{RESULTS}/tables/training_dynamics.parquet",
        f"{RESULTS}/tables/training_dynamics_by_seed.csv",
        f"{RESULTS}/tables/training_dynamics_by_seed.parquet",
    log:
        f"{LOG_ROOT}/tables/training_dynamics.log",
    params:
        runs=cross_run_refs(),
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/cross_run_dynamics.py"


rule claims:
    input:
        **{name: f"{RESULTS}/tables/{name}_by_seed.parquet" for name in CLAIM_TABLES},
        bootstraps=[bootstrap_path(run) for run in imbalanced_runs()],
    output:
        csv=report(
            f"{RESULTS}/tables/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        txt=report(
            f"{RESULTS}/tables/claims.txt",
            caption="../report/claims.rst",
            category="Claims",
        ),
        parquet=f"{RESULTS}/tables/claims.parquet",
    log:
        f"{LOG_ROOT}/tables/claims.log",
    params:
        runs=[[run.dataset, run.imbalance, run.loss, run.seed] for run in imbalanced_runs()],
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/check_claims.py"


# The report's front page: the verdicts and headline tables in words (report/workflow.rst
# includes it).
rule summary:
    input:
        unpack(get_summary_inputs),
    output:
        f"{RESULTS}/tables/summary.rst",
    log:
        f"{LOG_ROOT}/tables/summary.log",
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/write_summary.py"


rule plot_cross_run_figure:
    input:
        lambda wildcards: f"{RESULTS}/tables/{CROSS_RUN_FIGURES[wildcards.figure].tables[0]}.parquet",
    output:
        report(
            f"{RESULTS}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Cross-run figures",
        ),
    log:
        f"{LOG_ROOT}/figures/{{figure}}.log",
    params:
        caption=lambda wildcards: CROSS_RUN_FIGURES[wildcards.figure].caption,
        what="All runs of the study, means over seeds; the figure names the intervals it draws.",
    wildcard_constraints:
        figure="|".join(CROSS_RUN_FIGURES),
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/plot_cross_run_figure.py"


rule provenance:
    input:
        [f"{RESULTS}/{run.path}/metrics.json" for run in STUDY.runs],
    output:
        report(
            f"{RESULTS}/tables/provenance.csv",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        f"{LOG_ROOT}/tables/provenance.log",
    params:
        runs=cross_run_refs(),
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/provenance.py"
