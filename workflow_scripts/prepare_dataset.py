from fragility.stages import prepare_data
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: prepare_data(sm.params.name, sm.params.settings, sm.output[0]))
