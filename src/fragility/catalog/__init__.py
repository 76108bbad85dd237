"""The catalog of the study: every file, output, claim and remedy, each declared once.

- :mod:`.layout`: where every file lives (a study's paths, the files of a model folder);
- :mod:`.outputs`: the per-run tables, the cross-run tables and the figures, each with what
  it reads, its caption and the function that makes it;
- :mod:`.claims`: the paper's claims, its trained models and the numbers it prints;
- :mod:`.remedies`: the feature-space remedies.

The workflow's rules and targets are generated from these declarations. An entry names the
function that computes it by import path (``"package.module:function"``), resolved by
:func:`resolve` when a job runs, so that reading the catalog (the workflow does at every
start) imports no torch or matplotlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache


@cache
def resolve(path: str) -> Callable:
    """The function an entry names by ``"package.module:function"``."""
    module, _, name = path.partition(":")
    function = getattr(importlib.import_module(module), name, None)
    if not callable(function):
        raise ValueError(f"{path!r} names no function (module {module}, name {name})")
    return function
