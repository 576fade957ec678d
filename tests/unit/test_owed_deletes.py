"""A delete supersedes what was owed before it; a held change keeps its record's order."""

from __future__ import annotations

from typing import Any

import pytest

from syncengine.engine.chunker import Chunker
from syncengine.engine.owed import absorb_owed
from syncengine.model import Change, Operation, SourcePosition


def _change(line: int, operation: Operation, record: dict[str, Any]) -> Change:
    return Change(
        "Leads",
        operation,
        record,
        "Leads/k",
        [SourcePosition(line - 1, line, line)],
        source_key="k",
    )


def _failed(line: int, operation: Operation, record: dict[str, Any]) -> Change:
    change = _change(line, operation, record)
    change.earlier_positions, change.positions = change.owed_positions, []
    return change


def test_a_delete_takes_the_positions_owed_before_it_but_none_of_the_fields() -> None:
    delete = _change(3, Operation.DELETE, {})
    absorb_owed(_failed(1, Operation.UPDATE, {"Company": "bad"}), delete)
    assert delete.record == {}
    assert delete.owed_positions == [1, 3]


def test_a_change_after_a_failed_delete_is_a_new_life() -> None:
    insert = _change(4, Operation.INSERT, {"Last_Name": "New"})
    absorb_owed(_failed(2, Operation.DELETE, {}), insert)
    assert insert.record == {"Last_Name": "New"}
    assert insert.operation is Operation.INSERT
    assert insert.owed_positions == [2, 4]


def test_an_update_after_a_failed_update_still_folds() -> None:
    update = _change(2, Operation.UPDATE, {"First_Name": "Ann"})
    absorb_owed(_failed(1, Operation.UPDATE, {"Company": "bad"}), update)
    assert update.record == {"Company": "bad", "First_Name": "Ann"}


def test_a_held_change_keeps_later_changes_to_its_record_behind_it() -> None:
    chunker = Chunker()
    first = _change(1, Operation.INSERT, {"Last_Name": "Kim"})
    chunker.add(first)
    (chunk,) = chunker.pop_ready(flush=True)
    chunker.hold(first)
    later = _change(2, Operation.UPDATE, {"First_Name": "Ann"})
    chunker.add(later)
    assert chunker.pop_ready(flush=True) == []  # waits behind the held change
    assert not chunker.idle
    assert chunker.placeable == 0
    chunker.resume(first)
    (chunk,) = chunker.pop_ready(flush=True)
    assert chunk.changes == [first]
    chunker.complete(first)
    (chunk,) = chunker.pop_ready(flush=True)
    assert chunk.changes == [later]


def test_a_held_change_that_fails_passes_its_owed_state_on() -> None:
    chunker = Chunker()
    first = _change(1, Operation.INSERT, {"Last_Name": "Kim"})
    chunker.add(first)
    chunker.pop_ready(flush=True)
    chunker.hold(first)
    later = _change(2, Operation.INSERT, {"First_Name": "Ann"})
    chunker.add(later)
    chunker.fail_held(first)
    (chunk,) = chunker.pop_ready(flush=True)
    assert chunk.changes == [later]
    assert later.record == {"Last_Name": "Kim", "First_Name": "Ann"}


def test_only_held_changes_can_be_resumed() -> None:
    chunker = Chunker()
    with pytest.raises(ValueError, match="not held"):
        chunker.resume(_change(1, Operation.INSERT, {"Last_Name": "Kim"}))
