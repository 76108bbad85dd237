import torch

from fragility.stages import extract_run
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_logged(
    sm.log[0],
    lambda: extract_run(
        sm.input.data,
        sm.input.split,
        sm.input.model,
        dict(sm.output.items()),
        device=sm.params.device,
    ),
)
