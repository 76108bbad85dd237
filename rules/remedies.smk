# Remedies (SPEC section 5): feature-space methods applied to trained runs, each written as a
# model folder {run}/remedies/{remedy}/ that the RQ analyses can read, and compared with the
# untreated model and the loss-level runs in results/tables/remedies.csv.


rule apply_remedy:
    input:
        train=PATHS["embeddings"].replace("{subset}", "train"),
        val=PATHS["embeddings"].replace("{subset}", "val"),
        test=PATHS["embeddings"].replace("{subset}", "test"),
        classifier=PATHS["embeddings"].replace("{subset}", "classifier"),
        metrics=PATHS["metrics"],
    output:
        metrics=PATHS["remedy"],
        embeddings=expand(
            PATHS["remedy_embeddings"], subset=["train", "test", "classifier"], allow_missing=True
        ),
    log:
        f"{LOG_ROOT}/remedies/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}/{{remedy}}.log",
    benchmark:
        f"{BENCHMARK_ROOT}/remedies/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}/{{remedy}}.tsv"
    params:
        spec=lambda wildcards: STUDY.remedy_methods()[wildcards.remedy],
    conda:
        "../envs/fragility.yaml"
    threads: 2
    script:
        "../workflow_scripts/apply_remedy.py"


rule remedies_table:
    input:
        runs=[f"{RESULTS}/{run.path}/metrics.json" for run in STUDY.runs],
        remedies=[
            f"{RESULTS}/{run.path}/remedies/{name}/metrics.json"
            for run in STUDY.remedy_base_runs()
            for name in STUDY.remedy_methods()
        ],
        # the paired comparisons read every method's test predictions
        tests=[f"{RESULTS}/{run.path}/embeddings/test.parquet" for run in STUDY.runs],
        remedy_tests=[
            f"{RESULTS}/{run.path}/remedies/{name}/embeddings/test.parquet"
            for run in STUDY.remedy_base_runs()
            for name in STUDY.remedy_methods()
        ],
    output:
        report(
            f"{RESULTS}/tables/remedies.csv",
            caption="../report/remedies.rst",
            category="Remedies",
        ),
        f"{RESULTS}/tables/remedies.parquet",
        f"{RESULTS}/tables/remedies_by_seed.csv",
        f"{RESULTS}/tables/remedies_by_seed.parquet",
    log:
        f"{LOG_ROOT}/tables/remedies.log",
    params:
        runs=cross_run_refs(),
        base=[run.path for run in STUDY.remedy_base_runs()],
        remedies=lambda wildcards: {k: v["method"] for k, v in STUDY.remedy_methods().items()},
        n_boot=config["analysis"]["bootstrap"],
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/remedies_table.py"


rule plot_remedies:
    input:
        f"{RESULTS}/tables/remedies.parquet",
    output:
        report(
            f"{RESULTS}/figures/remedies_bac_vs_cost.png",
            caption="../report/remedies_figure.rst",
            category="Remedies",
        ),
    log:
        f"{LOG_ROOT}/figures/remedies_bac_vs_cost.log",
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/plot_remedies.py"
