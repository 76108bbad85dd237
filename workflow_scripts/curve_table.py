from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.curves import write_curve_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: write_curve_table(sm.params.source, sm.input[0], list(sm.output)))
