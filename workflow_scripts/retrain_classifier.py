from pathlib import Path

import torch

from fragility.analysis.stages import retrain_run
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(sm.threads)
run_logged(
    sm.log[0],
    lambda: retrain_run(
        Path(sm.input.pool).parents[1],  # the run folder
        Path(sm.output[0]).parent,
        seed=int(sm.wildcards.seed),
        epochs=sm.params.epochs,
    ),
)
