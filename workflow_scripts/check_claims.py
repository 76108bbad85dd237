from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.analysis import check_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
bootstraps = {tuple(run): path for run, path in zip(sm.params.runs, sm.input.bootstraps)}
run_logged(
    sm.log[0],
    lambda: check_claims(sm.input.premise, bootstraps, list(sm.output), dict(sm.params.losses)),
)
