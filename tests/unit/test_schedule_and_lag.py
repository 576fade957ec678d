"""The retry schedule and the sync-lag tracker: pure, with time passed in."""

from __future__ import annotations

from syncengine.engine.read_times import ReadTimes
from syncengine.engine.retry_queue import RetrySchedule
from syncengine.model import Change, Operation


def change(key: str) -> Change:
    """A change to the record `key`."""
    return Change("Leads", Operation.UPDATE, {"id": key}, key)


def test_retries_come_back_when_due_soonest_first_ties_in_arrival_order() -> None:
    """Only due changes are handed back; equal due times keep their arrival order."""
    schedule = RetrySchedule()
    schedule.push(change("c"), due_at=30.0)
    schedule.push(change("a"), due_at=10.0)
    schedule.push(change("b"), due_at=10.0)
    assert schedule.due_in(now=4.0) == 6.0
    assert schedule.pop_due(now=9.9) == []
    assert [c.key for c in schedule.pop_due(now=10.0)] == ["a", "b"]
    assert schedule.held_keys() == {"c"}
    assert schedule.due_in(now=40.0) == 0.0
    assert [c.key for c in schedule.pop_due(now=40.0)] == ["c"]
    assert schedule.due_in(now=40.0) is None
    assert not schedule


def test_lag_is_the_age_of_the_batch_holding_the_oldest_unsettled_change() -> None:
    """Batches read at 100 s (ordinals 0-9) and 105 s (10-19): lag follows the watermark."""
    times = ReadTimes()
    times.mark(9, now=100.0)
    times.mark(19, now=105.0)
    assert times.age_s(0, now=110.0) == 10.0
    assert times.age_s(12, now=110.0) == 5.0
    assert times.age_s(None, now=110.0) == 0.0
    assert times.age_s(12, now=111.0) == 0.0  # marks were dropped with nothing unsettled
