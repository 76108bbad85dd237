"""Atomic file output (a reader never sees a half-written file, a killed job leaves none, and
each file gets the mode a plain ``open()`` would give it), and reading files back as one clear
error naming the file when they are not what they must be."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fragility.errors import ConfigError, FragilityError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only on success.

    Temporary files a killed writer of the same ``path`` left behind (SIGKILL skips the
    clean-up below) are removed first: one writer per output is what the workflow ensures.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file 0600 whatever the umask; a shared results folder needs the
        # mode any other file of the user gets (set here: a writer may have recreated it)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask`` can
    only be read by setting it, which would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(table: pa.Table, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``table`` atomically, adding string key-value ``metadata`` to the schema."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({str(k).encode(): str(v).encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unreadable(path, kind: str, error: BaseException) -> FragilityError:
    return FragilityError(
        f"{path} is not a readable {kind} file (truncated or damaged?): {_first_line(error)}"
    )


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """The Parquet file at ``path`` (only ``columns``, if given); a missing, truncated or
    damaged file is one :class:`FragilityError` naming it."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(path, "Parquet", error) from None


def read_parquet_metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(path, "Parquet", error) from None
    return {k.decode(): v.decode() for k, v in meta.items()}


def read_json(path: str | os.PathLike):
    """The JSON object in ``path``; a missing, truncated or damaged file is one
    :class:`FragilityError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _unreadable(path, "JSON", error) from None


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# -- a stage's outputs: the paths it writes, each known by its file name -------------------------

# What every stage takes as its outputs: a list of paths (a rule's declared outputs), or one
# path alone; each file is known by its name (``metrics.json``, ``table2.csv``, ...).
Outputs = list[str] | str


def output_paths(outputs: Outputs | Path) -> list[Path]:
    """A stage's ``outputs`` as a list of paths."""
    return [Path(p) for p in ([outputs] if isinstance(outputs, str | os.PathLike) else outputs)]


def the_output(outputs: Outputs | Path) -> Path:
    """The one path of a stage that writes one file."""
    paths = output_paths(outputs)
    if len(paths) != 1:
        raise FragilityError(f"this stage writes one file; it was given {len(paths)}: {paths}")
    return paths[0]


def outputs_named(outputs: Outputs | Path, names: Iterable[str]) -> dict[str, Path]:
    """``{name: path}`` for each file name in ``names`` (``metrics.json``, ``.csv``: a name
    that starts with a dot is a suffix), from ``outputs``: every name must be there and no
    other file, so that a stage and its rule cannot drift apart."""
    paths, names = output_paths(outputs), list(names)

    def matches(path: Path, name: str) -> bool:
        return path.suffix == name if name.startswith(".") else path.name == name

    found = {name: [p for p in paths if matches(p, name)] for name in names}
    missing = [name for name, hits in found.items() if len(hits) != 1]
    extra = [p.name for p in paths if not any(matches(p, name) for name in names)]
    if missing or extra:
        raise FragilityError(
            f"the outputs {[p.name for p in paths]} do not name each of {names} once "
            f"(missing or repeated: {missing}; unknown: {extra})"
        )
    return {name: hits[0] for name, hits in found.items()}


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write ``table`` atomically as CSV or Parquet, chosen by the suffix of ``path``."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"tables are written as .csv or .parquet, not {path.name!r}")
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            pacsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)


def write_tables(tables: Mapping[str, pa.Table], outputs: Outputs) -> None:
    """Write each of ``outputs`` (the paths a rule declared, ``{name}.csv`` or
    ``{name}.parquet``) from the table of the same name; every table must land somewhere
    and every output must have a table, so the code and the rule cannot drift apart."""
    outputs = output_paths(outputs)
    unknown = sorted({p.name for p in outputs if p.stem not in tables})
    unwritten = sorted(set(tables) - {p.stem for p in outputs})
    if unknown or unwritten:
        raise FragilityError(
            f"declared outputs {unknown} have no table, and tables {unwritten} no declared "
            "output; the catalog and the stage disagree"
        )
    for path in outputs:
        write_table(tables[path.stem], path)
