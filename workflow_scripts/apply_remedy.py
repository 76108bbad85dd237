import torch

from fragility.stages import remedy_run
from fragility.workflow import run_logged

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
