rule extract_embeddings:
    input:
        data=PATHS["dataset"],
        split=PATHS["split"],
        model=PATHS["model"],
    output:
        expand(
            PATHS["embeddings"],
            subset=["train", "pool", "val", "test", "classifier"],
            allow_missing=True,
        ),
    log:
        f"{LOG_ROOT}/embeddings/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARK_ROOT}/embeddings/{{dataset}}/{{imbalance}}/{{loss}}/seed{{seed}}.tsv"
    params:
        device=config["device"],
    conda:
        "../envs/fragility.yaml"
    threads: 2
    resources:
        gpu=1,
    script:
        "../workflow_scripts/extract_embeddings.py"
