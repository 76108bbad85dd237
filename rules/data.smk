rule prepare_dataset:
    output:
        DATA + "/{dataset}.npz",
    log:
        "logs/data/{dataset}.log",
    params:
        name="{dataset}",
        settings=get_dataset_settings,
    script:
        "../workflow_scripts/prepare_dataset.py"
