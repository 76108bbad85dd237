from fragility.training.gpus import requests_gpu
from fragility.workflow.jobs import job_name, run_device_job
from fragility.workflow.stages import extract_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_device_job(
    sm.log[0],
    sm.threads,
    sm.params.device,
    lambda: extract_run(
        sm.input.data,
        sm.input.split,
        sm.input.model,
        dict(sm.output.items()),
        device=sm.params.device,
    ),
    gpu_requested=requests_gpu(sm.resources),
    job=job_name(sm.rule, sm.wildcards),
)
