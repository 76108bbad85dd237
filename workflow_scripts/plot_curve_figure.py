from fragility.plotting.curves import plot_curve_files
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
w = sm.wildcards
run_logged(
    sm.log[0],
    lambda: plot_curve_files(w.curve, dict(sm.input.items()), w.dataset, w.loss, sm.output[0]),
)
