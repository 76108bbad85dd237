import torch

from fragility.training.gpus import requests_gpu
from fragility.workflow.jobs import job_name, run_device_job
from fragility.workflow.stages.training import train_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_device_job(
    sm.log[0],
    sm.params.device,
    lambda: train_run(
        sm.input.data,
        sm.input.split,
        list(sm.output),
        settings=dict(sm.params.settings),
        run_keys=dict(sm.params.run_keys),
        device=sm.params.device,
        precision=sm.params.precision,
        resume_path=sm.params.resume,
    ),
    gpu_requested=requests_gpu(sm.resources),
    job=job_name(sm.rule, sm.wildcards),
)
