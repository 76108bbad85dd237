rule make_split:
    input:
        DATA + "/{dataset}.npz",
    output:
        RESULTS + "/{dataset}/{imbalance}/split_seed{seed}.parquet",
    log:
        "logs/splits/{dataset}/{imbalance}/seed{seed}.log",
    params:
        settings=get_split_settings,
    script:
        "../workflow_scripts/make_split.py"
