import torch

from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.heads import retrain_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_logged(
    sm.log[0],
    lambda: retrain_run(
        dict(sm.input.items()),
        list(sm.output),
        seed=int(sm.wildcards.seed),
        epochs=sm.params.epochs,
    ),
)
