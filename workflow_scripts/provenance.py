from fragility.workflow.jobs import declared_runs, run_logged
from fragility.workflow.stages.analysis import write_provenance

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], lambda: write_provenance(declared_runs(sm.params.runs, sm.input), list(sm.output))
)
