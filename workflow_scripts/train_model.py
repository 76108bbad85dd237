from fragility.training.gpus import requests_gpu
from fragility.workflow.jobs import job_name, run_device_job
from fragility.workflow.stages import train_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_device_job(
    sm.log[0],
    sm.threads,
    sm.params.device,
    lambda: train_run(
        sm.input.data,
        sm.input.split,
        model_path=sm.output.model,
        history_path=sm.output.history,
        metrics_path=sm.output.metrics,
        settings=dict(sm.params.settings),
        run_info=dict(sm.params.run_info),
        device=sm.params.device,
        precision=sm.params.precision,
        resume_path=sm.params.resume,
    ),
    gpu_requested=requests_gpu(sm.resources),
    job=job_name(sm.rule, sm.wildcards),
)
