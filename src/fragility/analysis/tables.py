"""Per-run tables for RQ2-RQ7, built from one run's files by the builder each research
question's catalog entry names (:data:`fragility.catalog.outputs.RUN_TABLES`, its ``build``:
the ``run_tables`` function of :mod:`fragility.analysis.rq2` ... :mod:`~fragility.analysis.rq7`).

:class:`~fragility.analysis.inputs.RunInputs` loads what one run's analyses read
(``embeddings/{train,test,pool}.parquet``, ``embeddings/classifier.parquet``,
``history.parquet``, ``metrics.json``) once; :func:`rq_tables` returns the tables of one
research question as small pyarrow Tables, named as its catalog entry names them.

Conventions shared by every table:

- The class columns of :mod:`fragility.analysis.columns` (``class``, ``class_name``,
  ``role``, ``class_group``, ``n_train``).
- Accuracies, coverage ratios and shares are fractions in [0, 1], not percentages.
- Everything is measured on the ``train`` embeddings, except RQ2's test accuracy and RQ7's
  test groups. Instance measures group by *predicted* class (RQ3 coverage, RQ6 members),
  class means by *true* class (RQ4 ce, RQ6 fe means, RQ7 train means), as in the paper.
- "Top 10" tables hold ``min(10, H)`` ranks; a value that does not exist (a class with no
  instance, a class nothing is predicted as) is null, never NaN.
- ``ks`` are RQ3's K values; ``k_fe`` is the paper's K = 7 used by the instance top-K sets
  of RQ4 (Fig 6 / Table 4), RQ6 and RQ7's frequency-based feature identities.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from fragility.analysis.inputs import RunInputs
from fragility.catalog import resolve
from fragility.catalog.outputs import RUN_TABLES
from fragility.errors import ConfigError, FragilityError


def rq_tables(
    rq: str, inputs: RunInputs, *, ks: Sequence[int] = (2, 3, 5, 7), k_fe: int = 7
) -> dict[str, pa.Table]:
    """The tables of research question ``rq`` (``"rq2"`` ... ``"rq7"``), keyed as its
    catalog entry names them. ``ks``: RQ3's K values; ``k_fe``: the instance top-K of RQ4's logit
    shares, RQ6 and RQ7 (the paper's K = 7)."""
    if rq not in RUN_TABLES:
        raise ConfigError(
            f"unknown research question {rq!r}; per-run tables exist for {sorted(RUN_TABLES)}"
        )
    spec = RUN_TABLES[rq]
    width = inputs.width
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 or k > width for k in ks):
        raise ConfigError(f"every K in ks must lie in 1..{width} (the FE width), got {list(ks)}")
    if not 1 <= int(k_fe) <= width:
        raise ConfigError(f"k_fe must lie in 1..{width} (the FE width), got {k_fe}")
    if "test" in spec.reads and not inputs.test:
        raise FragilityError(f"the {rq} tables need the test embeddings; none were given")
    tables = resolve(spec.build)(inputs, ks=ks, k_fe=int(k_fe))
    if tuple(tables) != spec.tables:
        built, declared = list(tables), list(spec.tables)
        raise FragilityError(f"{spec.build} built {built}, not the {rq} tables {declared}")
    return tables
