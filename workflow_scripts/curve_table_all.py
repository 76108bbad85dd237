from pathlib import Path

from fragility.analysis.curves import write_joined_curve_table
from fragility.workflow import run_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
out = Path(sm.output[0])
run_logged(sm.log[0], lambda: write_joined_curve_table(list(sm.input), out.parent, out.stem))
