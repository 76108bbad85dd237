# The seven research questions (docs/metrics-and-claims.md): per-run tables and figures under
# {run}/rq{N}/, cross-run tables under results/tables/, figures under results/figures/.
# Every rule here is generated from fragility.catalog; with check_inputs every job runs in a
# shadow folder holding only its declared inputs, so a stage reading an undeclared file fails.
# These jobs take seconds and no GPU. Under profiles/slurm a run's per-run jobs (its tables,
# RQ1 re-training, bootstrap and figures, and its remedies') form one CPU batch job per run
# (the profile's `groups:`; a localrule in a group is submitted with it); the cross-run ones
# stay localrules and run beside Snakemake instead of waiting for a batch slot each.


rule retrain_classifier:
    input:
        **LAYOUT.files(RETRAIN_READS),
    output:
        *[LAYOUT.run_table("rq1", "retrained", ext) for ext in ("csv", "parquet")],
        LAYOUT.file("retrained_predictions"),
    log:
        LAYOUT.log("analysis", RUN_LOG, "rq1"),
    params:
        epochs=config["analysis"]["retrain_epochs"],
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    resources:
        **sized("retrain"),
    script:
        "../workflow_scripts/retrain_classifier.py"


# Every headline number and claim difference of one run with a stratified bootstrap over
# images: the intervals of single-seed findings and the replicates that the
# claims combine over seeds.
rule bootstrap_run:
    input:
        unpack(get_bootstrap_inputs),
    output:
        csv=LAYOUT.bootstrap("csv"),
        parquet=LAYOUT.bootstrap("parquet"),
    log:
        LAYOUT.log("analysis", RUN_LOG, "bootstrap"),
    params:
        claims=lambda wildcards: wildcards.imbalance != "balanced",
        n_boot=config["analysis"]["bootstrap"],
        ks=config["analysis"]["ks"],
        k_fe=config["analysis"]["k_fe"],
        partners=get_bootstrap_partners,
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    resources:
        **sized("bootstrap"),
    script:
        "../workflow_scripts/bootstrap_run.py"


# One rule per research question and kind of model folder (RUN_TABLES), each writing
# the tables the catalog names: a trained run, and a remedied model under it (does a remedy
# change the minority's top-K, ce and FB signature?). A remedied model has no training history.
for rule_prefix, remedy in (("analyze", None), ("analyze_remedy", "{remedy}")):
    for rq, spec in RUN_TABLES.items():
        reads = [k for k in spec.reads if remedy is None or k in REMEDY_FILES]

        rule:
            name:
                f"{rule_prefix}_{rq}"
            input:
                **LAYOUT.files(reads, remedy=remedy),
            output:
                [
                    LAYOUT.run_table(rq, table, ext, remedy=remedy)
                    for table in spec.tables
                    for ext in ("csv", "parquet")
                ],
            log:
                LAYOUT.log("analysis", RUN_LOG, *([remedy] if remedy else []), rq),
            params:
                rq=rq,
                ks=config["analysis"]["ks"],
                k_fe=config["analysis"]["k_fe"],
            shadow:
                SHADOW
            conda:
                "../envs/fragility.yaml"
            threads: 1
            localrule: True
            resources:
                **sized("analyze"),
            script:
                "../workflow_scripts/analyze_run.py"


rule plot_run_figure:
    input:
        unpack(get_figure_tables),
    output:
        report(
            f"{LAYOUT.folder()}/{{rq}}/{{figure}}.png",
            caption="../report/run_figure.rst",
            category="{dataset} {imbalance} {loss} seed{seed}",
            subcategory="{rq}",
            labels={"figure": "{figure}", "run": "{dataset}/{imbalance}/{loss}/seed{seed}"},
        ),
    log:
        LAYOUT.log("figures", RUN_LOG, "{rq}", "{figure}"),
    params:
        title=lambda wildcards: f"{wildcards.dataset} {wildcards.imbalance} {wildcards.loss} seed {wildcards.seed}",
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    resources:
        **sized("figure"),
    script:
        "../workflow_scripts/plot_run_figure.py"


# One rule per cross-run table of the catalog: each reads only the per-run files it declares.
for name, spec in CROSS_RUN_TABLES.items():
    runs = cross_run_files(spec)

    rule:
        name:
            f"cross_run_{name}"
        input:
            files_of_runs(runs),
        output:
            report(
                LAYOUT.table(name, "csv"),
                caption="../report/table.rst",
                category="Cross-run tables",
            ),
            LAYOUT.table(name),
            *[LAYOUT.table(f"{name}_by_seed", ext) for ext in ("csv", "parquet")],
        log:
            LAYOUT.log("tables", name),
        params:
            name=name,
            runs=runs,
        shadow:
            SHADOW
        conda:
            "../envs/fragility.yaml"
        threads: 1
        localrule: True
        script:
            "../workflow_scripts/cross_run_table.py"


rule claims:
    input:
        premise=LAYOUT.table(f"{PREMISE_TABLE}_by_seed"),
        bootstraps=[LAYOUT.bootstrap("parquet", run.path) for run in imbalanced_runs()],
    output:
        csv=report(
            LAYOUT.table("claims", "csv"),
            caption="../report/claims.rst",
            category="Claims",
        ),
        txt=report(
            LAYOUT.table("claims", "txt"),
            caption="../report/claims.rst",
            category="Claims",
        ),
        parquet=LAYOUT.table("claims"),
    log:
        LAYOUT.log("tables", "claims"),
    params:
        runs=[[run.dataset, run.imbalance, run.loss, run.seed] for run in imbalanced_runs()],
        # which of the paper's models each run group compares with (its loss entry, or what
        # an external model was trained with)
        losses={name: STUDY.loss_entry(name) for name in STUDY.run_names()},
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/check_claims.py"


# The report's front page: the verdicts and headline tables in words (report/workflow.rst
# includes it), and every claim at a glance as a full-width report item.
rule summary:
    input:
        unpack(get_summary_inputs),
    output:
        rst=LAYOUT.table("summary", "rst"),
        matrix=report(
            LAYOUT.table("claims_matrix", "html"),
            caption="../report/claims_matrix.rst",
            category="Claims",
        ),
    log:
        LAYOUT.log("tables", "summary"),
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/write_summary.py"


rule plot_cross_run_figure:
    input:
        lambda wildcards: LAYOUT.table(CROSS_RUN_FIGURES[wildcards.figure].tables[0]),
    output:
        report(
            LAYOUT.figure("{figure}"),
            caption="../report/cross_run_figure.rst",
            category="Cross-run figures",
        ),
    log:
        LAYOUT.log("figures", "{figure}"),
    wildcard_constraints:
        figure="|".join(CROSS_RUN_FIGURES),
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/plot_cross_run_figure.py"


PROVENANCE_RUNS = [run_files(run, ("metrics",)) for run in STUDY.runs]


rule provenance:
    input:
        files_of_runs(PROVENANCE_RUNS),
    output:
        report(
            LAYOUT.table("provenance", "csv"),
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        LAYOUT.log("tables", "provenance"),
    params:
        runs=PROVENANCE_RUNS,
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/provenance.py"
