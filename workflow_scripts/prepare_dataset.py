from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.data import prepare_data

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: prepare_data(sm.params.name, sm.params.settings, list(sm.output)))
