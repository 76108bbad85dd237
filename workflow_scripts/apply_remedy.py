import torch

from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.heads import remedy_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_logged(
    sm.log[0],
    lambda: remedy_run(
        dict(sm.input.items()),
        sm.wildcards.remedy,
        sm.params.spec["method"],
        dict(sm.params.spec["params"]),
        list(sm.output),
        seed=int(sm.wildcards.seed),
    ),
)
