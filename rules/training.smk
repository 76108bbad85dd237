rule train_model:
    input:
        data=DATA + "/{dataset}.npz",
        split=RESULTS + "/{dataset}/{imbalance}/split_seed{seed}.parquet",
    output:
        model=RUN_DIR + "/model.pt",
        history=RUN_DIR + "/history.parquet",
        metrics=RUN_DIR + "/metrics.json",
    log:
        "logs/train/{dataset}/{imbalance}/{loss}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{imbalance}/{loss}/seed{seed}.tsv"
    params:
        settings=get_train_settings,
        run_info=get_run_info,
        device=config["device"],
        # the resume state lives outside the declared outputs, so a killed job keeps it
        resume=RESULTS + "/{dataset}/{imbalance}/{loss}/seed{seed}/.resume.pt",
    threads: 2
    resources:
        gpu=1,
    script:
        "../workflow_scripts/train_model.py"
