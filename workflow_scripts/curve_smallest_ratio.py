from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.curves import write_smallest_ratio_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: write_smallest_ratio_table(sm.input[0], list(sm.output)))
