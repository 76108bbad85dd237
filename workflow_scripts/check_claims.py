from fragility.workflow.analysis_stages import check_claims
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
bootstraps = {tuple(run): path for run, path in zip(sm.params.runs, sm.input.bootstraps)}
run_logged(
    sm.log[0],
    lambda: check_claims(
        sm.input.premise,
        bootstraps,
        sm.output.csv,
        sm.output.parquet,
        sm.output.txt,
        dict(sm.params.losses),
    ),
)
