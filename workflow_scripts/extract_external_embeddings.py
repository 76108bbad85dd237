import torch

from fragility.gpus import claim_for_job
from fragility.stages import extract_external
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)


def stage():
    claim_for_job(sm.params.device)  # a device of its own, before CUDA initialises
    extract_external(
        sm.input.data,
        sm.input.split,
        sm.input.checkpoint,
        dict(sm.output.items()),
        model=dict(sm.params.model),
        run_info=dict(sm.params.run_info),
        device=sm.params.device,
    )


run_logged(sm.log[0], stage)
