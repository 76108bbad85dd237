from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.analysis import write_summary

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: write_summary(dict(sm.input.items()), list(sm.output)))
