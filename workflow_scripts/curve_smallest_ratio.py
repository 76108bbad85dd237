from fragility.analysis.curves import write_smallest_ratio_table
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: write_smallest_ratio_table(sm.input[0], list(sm.output)))
