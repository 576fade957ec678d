"""Tests for the checkpoint low watermark (design.md invariant 1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncengine.engine.watermark import Watermark
from syncengine.model import Checkpoint, SourcePosition


def pos(ordinal: int) -> SourcePosition:
    """A file-like position: byte offset 10 per line, line numbers from 1."""
    return SourcePosition(ordinal=ordinal, resume_after=(ordinal + 1) * 10, display=ordinal + 1)


def test_checkpoint_is_start_until_first_position_finishes() -> None:
    """Finishing later positions does not move the checkpoint past an unfinished first one."""
    start = Checkpoint(resume_after=500, display=50)
    mark = Watermark(start)
    for i in range(3):
        mark.note_read(pos(i))
    mark.note_finished(pos(2))
    mark.note_finished(pos(1))
    assert mark.checkpoint == start
    assert mark.outstanding == 1
    mark.note_finished(pos(0))
    assert mark.checkpoint == Checkpoint(resume_after=30, display=3)
    assert mark.outstanding == 0


def test_no_start_and_nothing_finished_gives_none() -> None:
    """A fresh read with nothing finished has no checkpoint to store."""
    mark = Watermark(None)
    mark.note_read(pos(0))
    assert mark.checkpoint is None


def test_gap_in_read_ordinals_raises() -> None:
    """Positions must be read with consecutive ordinals, or the checkpoint could skip one."""
    mark = Watermark(None)
    mark.note_read(pos(0))
    with pytest.raises(ValueError, match="expected 1"):
        mark.note_read(pos(2))


def test_reading_a_run_checks_every_ordinal() -> None:
    """A run read at once is held to the same rule, up to the first bad ordinal."""
    mark = Watermark(None)
    mark.note_read_many([pos(0), pos(1), pos(2)])
    assert mark.next_ordinal == 3
    with pytest.raises(ValueError, match="ordinal 5 read, expected 4"):
        mark.note_read_many([pos(3), pos(5), pos(6)])
    assert mark.next_ordinal == 4  # pos(3) was read; nothing after the gap
    mark.note_read(pos(4))
    assert mark.outstanding == 5


def test_finishing_unread_position_raises() -> None:
    """A position cannot finish before it was read."""
    mark = Watermark(None)
    with pytest.raises(ValueError, match="before it was read"):
        mark.note_finished(pos(0))


def test_repeated_finish_is_ignored() -> None:
    """Finishing a position twice neither moves the checkpoint nor breaks the count."""
    mark = Watermark(None)
    mark.note_read(pos(0))
    mark.note_read(pos(1))
    mark.note_finished(pos(1))
    mark.note_finished(pos(1))
    assert mark.outstanding == 1
    mark.note_finished(pos(0))
    mark.note_finished(pos(0))
    assert mark.outstanding == 0
    assert mark.checkpoint == Checkpoint(resume_after=20, display=2)


@given(st.integers(1, 60).flatmap(lambda n: st.permutations(range(n))))
def test_random_finish_order_never_passes_an_unfinished_position(order: list[int]) -> None:
    """Whatever the finishing order, the checkpoint names exactly the contiguous finished prefix."""
    mark = Watermark(None)
    for i in range(len(order)):
        mark.note_read(pos(i))
    finished: set[int] = set()
    for ordinal in order:
        mark.note_finished(pos(ordinal))
        finished.add(ordinal)
        prefix = 0
        while prefix in finished:
            prefix += 1
        expected = None if prefix == 0 else Checkpoint((prefix) * 10, prefix)
        assert mark.checkpoint == expected
        assert mark.outstanding == len(order) - len(finished)


@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(st.permutations(range(n)), st.lists(st.integers(1, 8), min_size=1))
    )
)
def test_finishing_in_batches_equals_finishing_one_by_one(
    drawn: tuple[list[int], list[int]],
) -> None:
    """`note_finished_many` moves the checkpoint as the single calls do and names the highest."""
    order, sizes = drawn
    batched, single = Watermark(None), Watermark(None)
    for i in range(len(order)):
        batched.note_read(pos(i))
        single.note_read(pos(i))
    start = 0
    for size in sizes * len(order):
        if start >= len(order):
            break
        batch = order[start : start + size]
        start += size
        highest = batched.note_finished_many([pos(ordinal) for ordinal in batch])
        for ordinal in batch:
            single.note_finished(pos(ordinal))
        assert highest == pos(max(batch))
        assert batched.checkpoint == single.checkpoint
        assert batched.outstanding == single.outstanding


def test_finishing_an_unread_position_in_a_batch_raises() -> None:
    """The batch keeps the single call's refusal of a position never read."""
    mark = Watermark(None)
    mark.note_read(pos(0))
    with pytest.raises(ValueError, match="before it was read"):
        mark.note_finished_many([pos(0), pos(1)])
