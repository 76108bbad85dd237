import torch

from fragility.workflow.jobs import run_logged
from fragility.workflow.stages import remedy_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_logged(
    sm.log[0],
    lambda: remedy_run(
        dict(sm.input.items()),
        sm.wildcards.remedy,
        sm.params.spec["method"],
        dict(sm.params.spec["params"]),
        dict(sm.output.items()),
        seed=int(sm.wildcards.seed),
    ),
)
