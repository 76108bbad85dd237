"""Atomic output: nothing half-written is ever visible, and a killed writer's leftovers go."""

import pytest

from fragility.io import atomic_path, write_json


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
