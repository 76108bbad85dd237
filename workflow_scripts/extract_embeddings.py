from fragility.stages import extract_run
from fragility.workflow import run_device_job

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
)
