rule prepare_dataset:
    output:
        LAYOUT.dataset(),
    log:
        LAYOUT.log("data", "{dataset}"),
    params:
        name="{dataset}",
        settings=get_dataset_settings,
    conda:
        "../envs/fragility.yaml"
    resources:
        **sized("prepare"),
    script:
        "../workflow_scripts/prepare_dataset.py"
