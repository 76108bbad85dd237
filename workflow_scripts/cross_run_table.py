from pathlib import Path

from fragility.analysis.stages import cross_run_tables
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: cross_run_tables(sm.params.name, list(sm.params.runs), Path(sm.output[0]).parent),
)
