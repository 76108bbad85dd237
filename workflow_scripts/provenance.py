from fragility.workflow.analysis_stages import write_provenance
from fragility.workflow.jobs import declared_runs, run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], lambda: write_provenance(declared_runs(sm.params.runs, sm.input), sm.output[0])
)
