"""Changes waiting out their backoff before another send, soonest first.

The dispatcher pushes a change that got a transient failure with its delay,
and each turn takes back the ones that are due. Times are the event loop's
monotonic clock, passed in, so the schedule is pure and tested without
sleeping. A change in here still holds its record's key in the chunker:
newer changes to the record wait behind it (design.md invariant 3).
"""

from __future__ import annotations

import heapq
import itertools

from syncengine.model import Change


class RetrySchedule:
    """A min-heap of (due time, arrival, change); arrival keeps equal times in order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Change]] = []
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, change: Change, *, due_at: float) -> None:
        """Schedule `change` for another send at `due_at` (monotonic seconds)."""
        heapq.heappush(self._heap, (due_at, next(self._arrivals), change))

    def pop_due(self, now: float) -> list[Change]:
        """The changes due at `now`, soonest first, removed from the schedule."""
        due: list[Change] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        return due

    def due_in(self, now: float) -> float | None:
        """Seconds until the next change is due (0 when overdue); None when empty."""
        return max(0.0, self._heap[0][0] - now) if self._heap else None

    def held_keys(self) -> set[str]:
        """Journal keys of the scheduled changes (their rows are pending too)."""
        return {change.key for _, _, change in self._heap if change.key is not None}

    def clear(self) -> None:
        """Forget everything: on shutdown their pending rows are already journaled."""
        self._heap.clear()
