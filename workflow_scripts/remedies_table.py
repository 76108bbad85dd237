from fragility.workflow.jobs import declared_runs, run_logged
from fragility.workflow.stages.analysis import remedies_tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: remedies_tables(
        declared_runs(sm.params.runs, sm.input),
        dict(sm.params.remedies),
        list(sm.output),
        n_boot=sm.params.n_boot,
    ),
)
