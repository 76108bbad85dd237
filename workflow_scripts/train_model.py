import torch

from fragility.gpus import claim_for_job
from fragility.stages import train_run
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)


def stage():
    claim_for_job(sm.params.device)  # a device of its own, before CUDA initialises
    return train_run(
        sm.input.data,
        sm.input.split,
        model_path=sm.output.model,
        history_path=sm.output.history,
        metrics_path=sm.output.metrics,
        settings=dict(sm.params.settings),
        run_info=dict(sm.params.run_info),
        device=sm.params.device,
        resume_path=sm.params.resume,
    )


run_logged(sm.log[0], stage)
