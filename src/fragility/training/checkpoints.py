"""Reading and writing checkpoints without running code the file names.

A torch checkpoint is a pickle, and unpickling may call any function the file names
(``os.system`` among them). Every checkpoint the package reads goes through
:func:`load_checkpoint`: ``torch.load(weights_only=True)``, which builds only tensors, plain
Python values (numbers, strings, lists, tuples, dicts) and the types allow-listed by name in
:func:`allowed_globals` (numpy scalars, dtypes and arrays, ``argparse.Namespace``: what common
training scripts save beside their weights). A file that names anything else is refused with
one line naming the file and what it holds, unless the user trusts it (``trusted=True``, the
config's ``trust_checkpoint``), which loads it in full.

The files this package writes (``model.pt``, the training's resume state) hold only what a
safe load accepts: :func:`plain` converts numpy scalars to Python numbers before saving and
refuses anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

try:  # numpy 2 renamed numpy.core to numpy._core
    from numpy._core import multiarray as numpy_multiarray
except ImportError:  # numpy 1
    from numpy.core import multiarray as numpy_multiarray

from fragility.errors import FragilityError

# the first refused global in torch's message (for files get_unsafe_globals_in_checkpoint
# cannot scan: the legacy, non-zip format)
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")


class UnsafeCheckpoint(FragilityError):
    """A checkpoint names globals outside the allow-list; loading it could run code."""


def allowed_globals() -> list:
    """The types (and numpy's two pickle helpers) a safe load may build besides tensors and
    plain values: numpy scalars, dtypes and arrays, and ``argparse.Namespace``. Each builds
    data only; a value inside them passes the same check. numpy's helpers are registered under
    both of their module names, so files pickled under numpy 1 (``numpy.core``) and numpy 2
    (``numpy._core``) load alike."""
    helpers = (numpy_multiarray.scalar, numpy_multiarray._reconstruct)
    out: list = [np.dtype, np.ndarray, argparse.Namespace, *helpers]
    out += sorted({type(np.dtype(code)) for code in np.typecodes["All"]} - {np.dtype}, key=str)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(helper, f"{module}.{helper.__name__}") for helper in helpers]
    return out


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def unsafe_globals(path: str | Path, error: BaseException | None = None) -> list[str]:
    """The globals in checkpoint ``path`` that a safe load refuses (empty: none found, or
    the file cannot be scanned). Reads the pickle's opcodes only; runs nothing."""
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint (legacy format, damaged): ask the load's error
        match = _REFUSED_GLOBAL.search(str(error or ""))
        return [match.group(1)] if match else []


def load_checkpoint(path: str | Path, *, trusted: bool = False, opt_in: str | None = None):
    """The object saved in checkpoint ``path``, on the CPU.

    Without ``trusted``, a safe load (``weights_only=True`` with :func:`allowed_globals`): a
    file naming other globals raises :class:`UnsafeCheckpoint` listing them (and ``opt_in``,
    how the user may trust the file, when given). With ``trusted``, a full load, which runs
    whatever the pickle says. A missing, truncated or damaged file is one
    :class:`FragilityError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FragilityError(f"checkpoint {path} does not exist")
    try:
        if trusted:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        refused = [] if trusted else unsafe_globals(path, error)
        if refused:
            how = f"; if you trust whoever made it, {opt_in}" if opt_in else ""
            raise UnsafeCheckpoint(
                f"{path} is refused: besides weights it names {', '.join(refused)}, which "
                f"loading would run or build (code of the file's choosing){how}"
            ) from None
        raise FragilityError(
            f"cannot read checkpoint {path} (truncated or damaged?): {_first_line(error)}"
        ) from None


def check_finite(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Raise one :class:`FragilityError` naming ``path`` and the first tensor of ``state`` (a
    model's state dict) that holds NaN or infinite values."""
    for name, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise FragilityError(
                    f"{path}: {name} holds {bad} NaN or infinite value{'s' * (bad != 1)}; "
                    "the checkpoint is damaged or its training diverged"
                )


def plain(obj, where: str = "checkpoint", objects: bool = False):
    """``obj`` with numpy scalars turned into Python numbers, so that a safe load reads it
    back (tensors, numbers, strings, None, and lists, tuples and dicts of them). Containers
    that need no change are returned as they are (a state dict keeps its version metadata).
    With ``objects`` (converting an old file), numpy arrays become lists and a dataclass or
    ``argparse.Namespace`` the dict of its fields. Anything else raises :class:`TypeError`
    naming where it sits (in a file we write: a bug)."""
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)) or torch.is_tensor(obj):
        return obj
    if objects and isinstance(obj, np.ndarray):
        return obj.tolist()
    if objects and isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if objects and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        items = {k: plain(v, f"{where}[{k!r}]", objects) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        return type(obj)(items) if isinstance(obj, dict) else items
    if isinstance(obj, (list, tuple)):
        items = [plain(v, f"{where}[{i}]", objects) for i, v in enumerate(obj)]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        return type(obj)(items)
    raise TypeError(f"{where} is a {type(obj).__name__}, which a safe load cannot read back")
