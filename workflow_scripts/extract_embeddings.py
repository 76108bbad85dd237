import torch

from fragility.training.gpus import requests_gpu
from fragility.workflow.jobs import job_name, run_device_job
from fragility.workflow.stages.embeddings import extract_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_device_job(
    sm.log[0],
    sm.params.device,
    lambda: extract_run(
        sm.input.data, sm.input.split, sm.input.model, list(sm.output), device=sm.params.device
    ),
    gpu_requested=requests_gpu(sm.resources),
    job=job_name(sm.rule, sm.wildcards),
)
