from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.figures import plot_run_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: plot_run_figure(
        sm.wildcards.figure, dict(sm.input.items()), list(sm.output), sm.params.title
    ),
)
