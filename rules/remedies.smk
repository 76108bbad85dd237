# Remedies (docs/remedies.md): feature-space methods applied to trained runs, each written as a
# model folder {run}/remedies/{remedy}/ that the RQ analyses can read, and compared with the
# untreated model and the loss-level runs in results/tables/remedies.csv.


rule apply_remedy:
    input:
        **LAYOUT.files(("train", "val", "test", "classifier", "metrics")),
    output:
        **LAYOUT.files(REMEDY_FILES, remedy="{remedy}"),
    log:
        LAYOUT.log("remedies", RUN_LOG, "{remedy}"),
    benchmark:
        LAYOUT.benchmark("remedies", RUN_LOG, "{remedy}")
    params:
        spec=lambda wildcards: STUDY.remedy_methods()[wildcards.remedy],
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 2
    resources:
        **sized("remedy"),
    script:
        "../workflow_scripts/apply_remedy.py"


# every run (the loss-level methods are runs) with its test predictions, the treated ones
# with their remedied models'
REMEDY_RUNS = [
    run_files(run, REMEDY_READS, STUDY.remedy_methods() if run in STUDY.remedy_base_runs() else None)
    for run in STUDY.runs
]


rule remedies_table:
    input:
        files_of_runs(REMEDY_RUNS),
    output:
        report(
            LAYOUT.table(REMEDY_TABLE, "csv"),
            caption="../report/remedies.rst",
            category="Remedies",
        ),
        LAYOUT.table(REMEDY_TABLE),
        *[LAYOUT.table(f"{REMEDY_TABLE}_by_seed", ext) for ext in ("csv", "parquet")],
    log:
        LAYOUT.log("tables", REMEDY_TABLE),
    params:
        runs=REMEDY_RUNS,
        remedies=lambda wildcards: {k: v["method"] for k, v in STUDY.remedy_methods().items()},
        n_boot=config["analysis"]["bootstrap"],
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/remedies_table.py"


rule plot_remedies:
    input:
        LAYOUT.table(REMEDY_TABLE),
    output:
        report(
            LAYOUT.figure(REMEDY_FIGURE),
            caption="../report/remedies_figure.rst",
            category="Remedies",
        ),
    log:
        LAYOUT.log("figures", REMEDY_FIGURE),
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/plot_remedies.py"
