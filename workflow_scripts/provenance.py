from fragility.analysis.stages import write_provenance
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(sm.log[0], lambda: write_provenance(list(sm.params.runs), sm.output[0]))
