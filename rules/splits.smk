rule make_split:
    input:
        PATHS["dataset"],
    output:
        PATHS["split"],
    log:
        f"{LOG_ROOT}/splits/{{dataset}}/{{imbalance}}/seed{{seed}}.log",
    params:
        settings=get_split_settings,
    conda:
        "../envs/fragility.yaml"
    script:
        "../workflow_scripts/make_split.py"
