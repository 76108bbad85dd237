rule make_split:
    input:
        LAYOUT.dataset(),
    output:
        LAYOUT.split(),
    log:
        LAYOUT.log("splits", "{dataset}", "{imbalance}", "seed{seed}"),
    params:
        settings=get_split_settings,
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    priority: SPLITS_FIRST
    resources:
        **sized("split"),
    script:
        "../workflow_scripts/make_split.py"
