rule extract_embeddings:
    input:
        data=LAYOUT.dataset(),
        split=LAYOUT.split(),
        model=LAYOUT.file("model"),
    output:
        **LAYOUT.files(EMBEDDINGS),
    log:
        LAYOUT.log("embeddings", RUN_LOG),
    benchmark:
        LAYOUT.benchmark("embeddings", RUN_LOG)
    params:
        device=config["device"],
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=GPU_JOB,
        **sized("embed"),
    script:
        "../workflow_scripts/extract_embeddings.py"
