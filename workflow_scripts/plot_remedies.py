from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.figures import plot_remedies

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: plot_remedies(sm.input[0], list(sm.output)))
