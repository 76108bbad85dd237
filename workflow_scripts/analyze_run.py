from fragility.workflow.analysis_stages import analyze_run
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: analyze_run(
        dict(sm.input.items()), sm.params.rq, list(sm.output), ks=sm.params.ks, k_fe=sm.params.k_fe
    ),
)
