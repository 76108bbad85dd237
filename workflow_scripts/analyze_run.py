from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.analysis import analyze_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: analyze_run(
        dict(sm.input.items()), sm.params.rq, list(sm.output), ks=sm.params.ks, k_fe=sm.params.k_fe
    ),
)
