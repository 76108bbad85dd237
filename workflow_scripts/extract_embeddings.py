import torch

from fragility.gpus import claim_for_job
from fragility.stages import extract_run
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)


def stage():
    claim_for_job(sm.params.device)  # a device of its own, before CUDA initialises
    extract_run(
        sm.input.data,
        sm.input.split,
        sm.input.model,
        dict(sm.output.items()),
        device=sm.params.device,
    )


run_logged(sm.log[0], stage)
