from fragility.workflow.jobs import run_logged
from fragility.workflow.stages.data import split_external

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_logged(
    sm.log[0],
    lambda: split_external(
        sm.input.data,
        list(sm.output),
        settings=dict(sm.params.settings),
        index_path=sm.input.get("index"),
    ),
)
