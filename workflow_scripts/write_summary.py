from fragility.workflow.analysis_stages import write_summary
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0], lambda: write_summary(dict(sm.input.items()), sm.output.rst, sm.output.matrix)
)
