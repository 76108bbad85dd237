rule train_model:
    input:
        data=PATHS["dataset"],
        split=PATHS["split"],
    output:
        model=PATHS["model"],
        history=PATHS["history"],
        metrics=PATHS["metrics"],
    log:
        f"{LOG_ROOT}/train/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARK_ROOT}/train/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}.tsv"
    params:
        settings=get_train_settings,
        run_info=get_run_info,
        device=config["device"],
        resume=PATHS["resume"],
    conda:
        "../envs/fragility.yaml"
    threads: 2
    resources:
        gpu=1,
    script:
        "../workflow_scripts/train_model.py"
