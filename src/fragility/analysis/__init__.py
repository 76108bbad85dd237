"""The analyses: from one model folder's embeddings to the paper's seven research questions,
the tables over a study's runs, the claims with their uncertainty, and the report's front
page. Numpy and pyarrow only (no torch, no plotting); every function reads arrays or files
and returns tables.

From the bottom up: :mod:`.uncertainty` (bootstrap and t-intervals, verdicts); :mod:`.ce`
(classification embeddings); :mod:`.inputs` (one model folder loaded once, and what a
claim's statistic reads and returns); :mod:`.runs` (a study's runs and their summary over
seeds); :mod:`.matching` (size matching) and :mod:`.columns` (the columns every per-run table
shares); :mod:`.rq1` ... :mod:`.rq7` (each research question's math, its per-run tables and
its claim statistics); :mod:`.dynamics` (the training progress); :mod:`.tables` (a research
question's per-run tables by the builder its catalog entry names); :mod:`.paper` (the
paper's numbers beside ours); :mod:`.crossrun` (the tables over runs, the remedies and the
provenance); :mod:`.bootstrap` (a run's claims with a bootstrap); :mod:`.claims` (verdicts
over seeds); :mod:`.curves` (fragility curves); :mod:`.summary` (the report's front page).
"""
