from pathlib import Path

from fragility.analysis.stages import analyze_run
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: analyze_run(
        Path(sm.input.metrics).parent,  # the run folder
        sm.params.rq,
        Path(sm.output[0]).parent,
        ks=sm.params.ks,
        k_fe=sm.params.k_fe,
    ),
)
