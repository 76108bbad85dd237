# fragility: why CNNs trained on class-imbalanced images fail on minority classes.
# Stages: data -> splits -> training -> embeddings -> analysis -> remedies.
from snakemake.utils import min_version

min_version("8.0")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/splits.smk"
include: "rules/training.smk"
include: "rules/embeddings.smk"
include: "rules/external.smk"
include: "rules/analysis.smk"
include: "rules/remedies.smk"
include: "rules/curves.smk"
include: "rules/cluster.smk"


rule all:
    input:
        get_all_targets(),
    default_target: True
