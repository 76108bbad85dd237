import torch

from fragility.workflow.analysis_stages import retrain_run
from fragility.workflow.jobs import run_logged

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
