rule prepare_dataset:
    output:
        PATHS["dataset"],
    log:
        f"{LOG_ROOT}/data/{{dataset}}.log",
    params:
        name="{dataset}",
        settings=get_dataset_settings,
    conda:
        "../envs/fragility.yaml"
    script:
        "../workflow_scripts/prepare_dataset.py"
