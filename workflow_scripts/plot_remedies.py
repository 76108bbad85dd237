from fragility.workflow.analysis_stages import plot_remedies
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: plot_remedies(sm.input[0], sm.output[0]),
)
