rule train_model:
    input:
        data=LAYOUT.dataset(),
        split=LAYOUT.split(),
    output:
        **LAYOUT.files(("model", "history", "metrics")),
    log:
        LAYOUT.log("train", RUN_LOG),
    benchmark:
        LAYOUT.benchmark("train", RUN_LOG)
    params:
        settings=get_train_settings,
        run_keys=get_run_keys,
        device=config["device"],
        precision=config["precision"],
        resume=LAYOUT.file("resume"),
    conda:
        "../envs/fragility.yaml"
    threads: MODEL_THREADS
    priority: training_priority
    resources:
        gpu=GPU_JOB,
        **sized("train"),
    script:
        "../workflow_scripts/train_model.py"
