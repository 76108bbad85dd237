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
        run_info=get_run_info,
        device=config["device"],
        resume=LAYOUT.file("resume"),
    conda:
        "../envs/fragility.yaml"
    threads: 2
    resources:
        gpu=1,
        **sized("train"),
    script:
        "../workflow_scripts/train_model.py"
