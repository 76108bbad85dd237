from fragility.workflow.jobs import declared_runs, run_logged
from fragility.workflow.stages.analysis import cross_run_tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: cross_run_tables(
        sm.params.name, declared_runs(sm.params.runs, sm.input), list(sm.output)
    ),
)
