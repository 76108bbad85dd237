# Models trained elsewhere (config `models`, README "Analyse your own model"): each enters the
# DAG at its checkpoint. Its split and embeddings land in a run folder of its own
# ({dataset}/{imbalance}/{model}/seed{seed}), with a metrics.json (source: external, the
# checkpoint's sha256) and an empty history; from there every analysis treats it as a run.
# Its folder name is the model's, so these rules, not training's, make its files.
ruleorder: extract_external_embeddings > extract_embeddings
ruleorder: extract_external_embeddings > train_model


rule make_external_split:
    input:
        unpack(get_external_split_inputs),
    output:
        LAYOUT.file("split"),
    log:
        LAYOUT.log("splits", RUN_LOG),
    params:
        settings=get_external_split_settings,
    wildcard_constraints:
        loss=EXTERNAL_NAMES,
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    resources:
        **sized("split"),
    script:
        "../workflow_scripts/make_external_split.py"


rule extract_external_embeddings:
    input:
        unpack(get_external_inputs),
    output:
        **LAYOUT.files((*EMBEDDINGS, "metrics", "history")),
    log:
        LAYOUT.log("embeddings", RUN_LOG),
    benchmark:
        LAYOUT.benchmark("embeddings", RUN_LOG)
    params:
        model=get_external_settings,
        run_keys=get_run_keys,
        device=config["device"],
        checkpoint_stamp=get_checkpoint_stamp,
    wildcard_constraints:
        loss=EXTERNAL_NAMES,
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=GPU_JOB,
        **sized("embed"),
    script:
        "../workflow_scripts/extract_external_embeddings.py"
