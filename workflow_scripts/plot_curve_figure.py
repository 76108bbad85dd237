from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.figures import plot_curve_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
w = sm.wildcards
run_logged(
    sm.log[0],
    lambda: plot_curve_figure(w.curve, dict(sm.input.items()), w.dataset, w.loss, list(sm.output)),
)
