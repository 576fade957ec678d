"""Samples a live pass into the journal's timeline, for `syncengine report`.

The sampler sits beside the pipeline like the metrics do: it reads the plain
counters the engine, client and limiter already keep, on the pass's own event
loop, so the hot path pays nothing per record. Every `TICK_S` it reads the
in-flight count (their mean over a row's span estimates the mean latency by
Little's law: in flight = request rate x latency, so no timing is added to
the client); every `PERIOD_S` (every `FINE_PERIOD_S` in the first
minute, so a short pass still has a shape) it writes one row through the journal's own
connection (one small INSERT beside the group commits), and a last row when
the pass ends, so a run killed mid-way keeps its timeline up to the last
period. Thinning of old rows: `syncengine.journal.timeline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from syncengine.runner import LiveParts

from syncengine.journal import Journal
from syncengine.journal.timeline import Reading, TimelineRow, row_between

log = structlog.get_logger(__name__)

#: Seconds between in-flight readings.
TICK_S = 0.5
#: Seconds covered by one timeline row.
PERIOD_S = 5.0
#: Seconds covered by one row in a pass's first `FINE_FOR_S` (short passes get a shape too).
FINE_PERIOD_S = 1.0
FINE_FOR_S = 60.0


def reading_of(parts: LiveParts) -> Reading:
    """The live counters of a pass, read the way the daemon's metrics read them."""
    engine, limiter = parts.engine, parts.limiter
    counts, stats = engine.counts, parts.client.stats
    return Reading(
        read=counts.read,
        synced=counts.synced,
        failed=counts.failed,
        retried=counts.retries_scheduled,
        requests=stats.requests,
        throttled=stats.throttled,
        in_flight=limiter.in_flight,
        limit=limiter.limit,
        queue_depth=engine.queue_depth,
        sync_lag_s=engine.sync_lag_s(),
        credits=stats.credits_remaining,
    )


class TimelineSampler:
    """Reads the live counters every tick and hands a row to `write` every period."""

    def __init__(
        self,
        read: Callable[[], Reading],
        write: Callable[[TimelineRow], Awaitable[None]],
        *,
        tick_s: float = TICK_S,
        period_s: float = PERIOD_S,
        fine_period_s: float = FINE_PERIOD_S,
        fine_for_s: float = FINE_FOR_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._write = write
        self._tick_s = tick_s
        self._period_s = period_s
        self._fine_period_s = fine_period_s
        self._clock = clock
        self._last = read()
        self._last_t = clock()
        self._fine_until = self._last_t + fine_for_s
        self._in_flight_sum = 0.0
        self._ticks = 0

    def tick(self) -> None:
        """Take one in-flight reading for the current span."""
        self._in_flight_sum += self._read().in_flight
        self._ticks += 1

    async def emit(self) -> None:
        """Write the row for the span since the last one (nothing for an empty span)."""
        now, reading = self._clock(), self._read()
        span_s = now - self._last_t
        if span_s <= 0:
            return
        mean = self._in_flight_sum / self._ticks if self._ticks else float(reading.in_flight)
        row = row_between(self._last, reading, t=now, span_s=span_s, mean_in_flight=mean)
        self._last, self._last_t = reading, now
        self._in_flight_sum, self._ticks = 0.0, 0
        await self._write(row)

    async def run(self) -> None:
        """Sample until cancelled; the caller writes the last row with `emit`."""
        while True:
            fine = self._last_t < self._fine_until
            next_row = self._last_t + (self._fine_period_s if fine else self._period_s)
            while self._clock() < next_row:
                await asyncio.sleep(self._tick_s)
                self.tick()
            await self.emit()


@contextlib.asynccontextmanager
async def sampled(
    journal: Journal,
    run_id: int,
    read: Callable[[], Reading],
    *,
    period_s: float = PERIOD_S,
) -> AsyncIterator[None]:
    """Samples the pass inside the block into run `run_id`'s timeline.

    Old rows are thinned first. The timeline is a report aid: a row that
    cannot be written is logged and skipped, never failing the pass.
    """
    try:
        await journal.thin_timeline(now=time.time())
    except (sqlite3.Error, OSError) as exc:
        log.warning("timeline.not_thinned", error=f"{type(exc).__name__}: {exc}"[:300])

    async def write(row: TimelineRow) -> None:
        try:
            await journal.add_timeline(run_id, row)
        except (sqlite3.Error, OSError) as exc:
            log.warning("timeline.not_recorded", error=f"{type(exc).__name__}: {exc}"[:300])

    sampler = TimelineSampler(read, write, period_s=period_s)
    task = asyncio.create_task(sampler.run(), name="timeline")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sampler.emit()
