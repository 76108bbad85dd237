from fragility.workflow.analysis_stages import plot_run_figure
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: plot_run_figure(
        sm.wildcards.figure, dict(sm.input.items()), sm.output[0], sm.params.title
    ),
)
