from pathlib import Path

from fragility.analysis.dynamics import write_cross_run_dynamics
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: write_cross_run_dynamics(list(sm.params.runs), Path(sm.output[0]).parent),
)
