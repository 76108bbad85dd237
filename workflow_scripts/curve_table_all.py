from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.curves import write_joined_curve_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: write_joined_curve_table(list(sm.input), list(sm.output)))
