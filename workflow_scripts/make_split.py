from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.data import split_dataset

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: split_dataset(
        sm.input[0],
        list(sm.output),
        imbalance=sm.wildcards.imbalance,
        seed=int(sm.wildcards.seed),
        **sm.params.settings,
    ),
)
