from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.analysis import bootstrap_run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: bootstrap_run(
        dict(sm.input.items()),
        list(sm.output),
        seed=int(sm.wildcards.seed),
        claims=sm.params.claims,
        n_boot=sm.params.n_boot,
        ks=sm.params.ks,
        k_fe=sm.params.k_fe,
        **sm.params.partners,
    ),
)
