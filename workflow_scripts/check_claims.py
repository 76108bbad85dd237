from fragility.analysis.stages import check_claims
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: check_claims(dict(sm.input.items()), sm.output.csv, sm.output.txt),
)
