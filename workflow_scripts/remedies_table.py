from pathlib import Path

from fragility.analysis.stages import remedies_tables
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: remedies_tables(
        list(sm.params.runs),
        list(sm.params.base),
        dict(sm.params.remedies),
        Path(sm.output[0]).parent,
        n_boot=sm.params.n_boot,
    ),
)
