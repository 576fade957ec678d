"""Sync lag: how long the oldest change read from the feed has waited to settle.

The daemon's main service-level signal (`syncengine_sync_lag_seconds`). The
engine marks, per batch taken in, the newest ordinal read and the time; the
age of the oldest unsettled ordinal is then the age of the first mark at or
past it. Marks below the watermark are dropped as it moves, so memory is
bounded by the batches in flight. Times are passed in: the tracker is pure.
"""

from __future__ import annotations

from collections import deque


class ReadTimes:
    """When each batch of the feed was read, by the newest ordinal it held."""

    def __init__(self) -> None:
        self._marks: deque[tuple[int, float]] = deque()

    def mark(self, newest_ordinal: int, now: float) -> None:
        """Positions up to `newest_ordinal` have been read by `now`."""
        if newest_ordinal >= 0 and (not self._marks or self._marks[-1][0] != newest_ordinal):
            self._marks.append((newest_ordinal, now))

    def age_s(self, oldest_unsettled: int | None, now: float) -> float:
        """Seconds since the oldest unsettled position was read; 0 when none is."""
        marks = self._marks
        if oldest_unsettled is None:
            marks.clear()
            return 0.0
        while marks and marks[0][0] < oldest_unsettled:
            marks.popleft()
        return now - marks[0][1] if marks else 0.0
