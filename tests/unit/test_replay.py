"""The replay window's decisions, without a journal: what counts as settled or restarted."""

from __future__ import annotations

from syncengine.engine.recorder import is_past
from syncengine.engine.replay import _is_settled, _restarted
from syncengine.model import BadInput, Change, Operation, SourcePosition


def change(key: str, ordinal: int, offset: int, line: int) -> Change:
    """A feed change at byte `offset`, line `line`."""
    position = SourcePosition(ordinal, offset, line)
    return Change("Leads", Operation.UPDATE, {"id": "1"}, key, [position])


def test_a_change_is_settled_when_its_record_was_settled_at_or_after_it() -> None:
    """Row position ≥ the change's own line: settled; an older row, or none: not settled."""
    seen = change("Leads:1", 0, 120, 7)
    assert _is_settled(seen, {"Leads:1": 7})
    assert _is_settled(seen, {"Leads:1": 9})
    assert not _is_settled(seen, {"Leads:1": 6})
    assert not _is_settled(seen, {})


def test_positions_of_another_kind_never_count_as_settled() -> None:
    """A row whose position is a cursor string says nothing about a file line."""
    assert not _is_settled(change("Leads:1", 0, 120, 7), {"Leads:1": "7"})


def test_a_batch_that_starts_before_the_last_one_ended_is_a_restart() -> None:
    """A rotated or truncated file starts over at small offsets."""
    assert _restarted([change("k", 5, 40, 1)], last_resume=900)
    assert not _restarted([change("k", 5, 940, 21)], last_resume=900)
    assert not _restarted([change("k", 0, 40, 1)], last_resume=None)
    bad = BadInput(SourcePosition(3, 10, 1), "bad JSON")
    assert _restarted([bad], last_resume=500)


def test_cursors_compare_only_with_their_own_kind() -> None:
    """Mixed kinds are treated as past, so nothing is skipped on a guess."""
    assert is_past(10, 9)
    assert not is_past(9, 9)
    assert is_past("b", "a")
    assert is_past("1", 5)
