"""Atomic output: nothing half-written is ever visible, and a killed writer's leftovers go."""

import os
import stat

import pyarrow as pa
import pytest

from fragility.errors import FragilityError
from fragility.io import (
    atomic_path,
    current_umask,
    read_json,
    read_table,
    write_json,
    write_table,
    write_text,
)


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "metrics.json"
    stale = tmp_path / ".metrics.json.abc123.tmp"  # what SIGKILL during a write leaves
    other = tmp_path / ".model.pt.abc123.tmp"  # another output's: not ours to remove
    stale.write_text("half")
    other.write_text("half")
    write_json({"bac": 0.5}, target)
    assert not stale.exists() and other.exists()
    assert target.read_text().strip().startswith("{")


# -- modes: an output is readable as the user's umask says, like any file they create ---------


@pytest.fixture
def umask():
    """Set the process's umask for one test, and restore it afterwards."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_mode_a_plain_open_gives(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the user's own files get
    write_json({"bac": 0.5}, tmp_path / "metrics.json")
    write_text("x", tmp_path / "claims.txt")
    write_table(pa.table({"a": [1]}), tmp_path / "table.csv")
    with atomic_path(tmp_path / "model.pt") as tmp:  # torch.save, savefig: the same writer
        tmp.write_bytes(b"weights")
    for name in ("plain.txt", "metrics.json", "claims.txt", "table.csv", "model.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_reading_a_damaged_file_is_one_error_naming_it(tmp_path):
    table = tmp_path / "test.parquet"
    write_table(pa.table({"a": list(range(1000))}), table)
    table.write_bytes(table.read_bytes()[:300])  # a copy cut short
    with pytest.raises(FragilityError, match=f"^{table} is not a readable Parquet file"):
        read_table(table)
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"bac": 0.')
    with pytest.raises(FragilityError, match=f"^{metrics} is not a readable JSON file"):
        read_json(metrics)
