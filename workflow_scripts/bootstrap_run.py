from fragility.workflow.analysis_stages import bootstrap_run
from fragility.workflow.jobs import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: bootstrap_run(
        dict(sm.input.items()),
        sm.output.csv,
        sm.output.parquet,
        seed=int(sm.wildcards.seed),
        claims=sm.params.claims,
        n_boot=sm.params.n_boot,
        ks=sm.params.ks,
        k_fe=sm.params.k_fe,
        **sm.params.partners,
    ),
)
