"""The engine's input: what waits in the journal, then the feed, in bounded batches.

A pass first re-sends the records the journal holds as pending (a crashed or
interrupted pass left them there with their payload), then reads the feed
from its checkpoint, through the replay window. In daemon mode the feed is
followed as it grows, and records that `syncengine retry` puts back in line
meanwhile are picked up. Everything goes through one bounded queue, so a slow
CRM stops the reader instead of filling memory (design.md invariant 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from syncengine.clock import Clock
from syncengine.engine.replay import Batch, ReplayWindow
from syncengine.journal import Journal
from syncengine.model import BadInput, Change, Checkpoint
from syncengine.sources.base import Source

log = structlog.get_logger("syncengine.engine.intake")

#: Marks the end of the input in the queue (a pass, not the daemon).
END = None

#: Pending records re-sent from the journal travel in batches of this size.
_PENDING_BATCH = 500


class RedriveBatch(list[Change | BadInput]):
    """Records the daemon's redrive read from the journal while the pass runs.

    `settled` collects, from the moment the read begins until the batch is
    taken in, the keys of records whose outcome the dispatcher took: their
    rows in this batch are older than what the engine knows. Each read has its
    own set, because a batch may still wait in the queue when the next read
    begins (see `Intake.redrive`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.settled: set[str] = set()


class Intake:
    """Reads into a bounded queue of batches that the dispatcher drains.

    `wake` is called whenever something was queued. What the reader or the
    redrive raise is left to the pass, which ends on it instead of hanging.
    """

    def __init__(
        self,
        journal: Journal,
        source: Source | None,
        *,
        batches: int,
        follow_poll_interval_s: float | None,
        wake: Callable[[], None],
        clock: Clock,
        keys: Callable[[str], bool] | None = None,
    ) -> None:
        self.queue: asyncio.Queue[Batch | None] = asyncio.Queue(batches)
        #: Items queued and not yet taken (the daemon's queue-depth gauge).
        self.items = 0
        #: Keys of records re-sent from the journal and not yet taken in.
        self.redriving: set[str] = set()
        self._journal = journal
        self._source = source
        self._poll_s = follow_poll_interval_s
        self._wake = wake
        self._clock = clock
        #: Only pending records whose key this accepts are this pass's (a worker's partition).
        self._keys = keys

    def take(self) -> Batch | None:
        """The next batch, `END`, or raises `asyncio.QueueEmpty`."""
        batch = self.queue.get_nowait()
        if batch is not END:
            self.items -= len(batch)
        return batch

    async def read(
        self, start: Checkpoint | None, replay: ReplayWindow, stop: asyncio.Event
    ) -> None:
        """The reader task: pending records, then the feed; `END` when a pass is done."""
        async for batch in self._batches(start, replay):
            if stop.is_set():
                break
            await self._put(batch)
        await self.queue.put(END)
        self._wake()

    async def redrive(
        self,
        stop: asyncio.Event,
        *,
        interval_s: float,
        is_held: Callable[[str], bool],
        settle: Callable[[], Awaitable[None]],
        begin_read: Callable[[RedriveBatch], None] = lambda _batch: None,
        end_read: Callable[[RedriveBatch], None] = lambda _batch: None,
    ) -> None:
        """Daemon mode: picks up records `syncengine retry` put back in line meanwhile.

        Records the engine holds (`is_held`: in the chunker or waiting for a
        retry) or that are already on their way in are left alone: the row of
        a scheduled retry is pending too, and must not be sent twice. `settle`
        makes buffered outcomes durable first, so no stale pending row shows.
        `begin_read` is called before that with the batch the read fills:
        outcomes the dispatcher takes from then on are not yet in what this
        read sees, so the dispatcher drops the rows of those records when the
        batch is taken in (`RedriveBatch.settled`). A read that found nothing
        is handed back through `end_read`, so its set stops growing.
        """
        while not stop.is_set():
            await self._clock.wait(stop, interval_s)
            if stop.is_set():
                return
            batch = RedriveBatch()
            begin_read(batch)
            await settle()
            async for change in self._journal.due(self._clock.wall()):
                key = change.key
                if not self._owns(key):
                    continue
                if key is not None and key not in self.redriving and not is_held(key):
                    batch.append(change)
                    self.redriving.add(key)
            if batch:
                log.info("engine.redrive", records=len(batch))
                await self._put(batch)
            else:
                end_read(batch)

    def _owns(self, key: str | None) -> bool:
        """True when the pending record `key` is this pass's to send."""
        return self._keys is None or (key is not None and self._keys(key))

    async def _put(self, batch: Batch) -> None:
        await self.queue.put(batch)
        self.items += len(batch)
        self._wake()

    async def _batches(
        self, start: Checkpoint | None, replay: ReplayWindow
    ) -> AsyncIterator[Batch]:
        pending: list[Change | BadInput] = []
        async for change in self._journal.due(math.inf):
            if not self._owns(change.key):
                continue
            pending.append(change)
            if change.key is not None:
                self.redriving.add(change.key)
            if len(pending) >= _PENDING_BATCH:
                yield pending
                pending = []
        if pending:
            yield pending
        if self._source is None:
            return
        feed = (
            self._source.read(start)
            if self._poll_s is None
            else self._source.follow(start, poll_interval_s=self._poll_s)
        )
        async with contextlib.aclosing(feed) as batches:
            async for batch in batches:
                yield await replay.filter(batch) if replay.active else batch
