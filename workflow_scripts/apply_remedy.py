from pathlib import Path

import torch

from fragility.stages import remedy_run
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_logged(
    sm.log[0],
    lambda: remedy_run(
        Path(sm.input.metrics).parent,  # the base run's folder
        sm.wildcards.remedy,
        sm.params.spec["method"],
        dict(sm.params.spec["params"]),
        Path(sm.output.metrics).parent,
        seed=int(sm.wildcards.seed),
    ),
)
