"""One read of a feed from its top, split among the partitions a worker works at once.

A `PartitionSource` reads the whole feed for one partition, so a worker
working K partitions would parse the feed K times. On a pass's first read
(no checkpoint, no high water: a fresh backfill, the case where the feed is
largest) every partition a worker leased together starts at the top, so one
read serves them all: `SharedRead` parses each line once and hands each
partition its own items, numbered 0, 1, 2, ... as a read of its own.

Each partition has a bounded queue: a partition whose pass is slow holds
the read back for all (they share the worker's limiter anyway). A partition
whose pass ends early (stopped, lease lost) closes its source; its items
are dropped from then on, and the others go on. An error of the feed
reaches every partition still reading.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable

from syncengine.model import Checkpoint
from syncengine.sources.base import Item, Source
from syncengine.workers.partition import (
    item_key,
    partition_of,
    partition_source_id,
    renumber,
)

#: Batches queued per partition ahead of its pass.
QUEUE_BATCHES = 4

_END = None


class SharedRead:
    """The feed read once from its top, split among `members` (partitions of `partitions`)."""

    def __init__(self, inner: Source, partitions: int, members: Iterable[int]) -> None:
        self.inner = inner
        self.partitions = partitions
        self._queues: dict[int, asyncio.Queue[list[Item] | BaseException | None]] = {
            member: asyncio.Queue(QUEUE_BATCHES) for member in members
        }
        self._closed: set[int] = set()
        self._pump: asyncio.Task[None] | None = None

    def source(self, partition: int) -> SharedPartitionSource:
        """The `Source` of one member partition."""
        if partition not in self._queues:
            raise ValueError(f"partition {partition} is not one of this read's")
        return SharedPartitionSource(self, partition)

    async def close(self) -> None:
        """Stop the read (every member's pass is over)."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump

    def _start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name="workers.shared_read")

    def _leave(self, partition: int) -> None:
        """A member's pass ended: drop what waits for it, and all it would get."""
        self._closed.add(partition)
        queue = self._queues[partition]
        while not queue.empty():
            queue.get_nowait()
        if len(self._closed) == len(self._queues) and self._pump is not None:
            self._pump.cancel()

    async def _run(self) -> None:
        ordinals = dict.fromkeys(self._queues, 0)
        ending: BaseException | None = _END
        try:
            async with contextlib.aclosing(self.inner.read(None)) as batches:
                async for batch in batches:
                    for member, items in self._split(batch, ordinals).items():
                        if member not in self._closed:
                            await self._queues[member].put(items)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - handed to every member still reading
            ending = error
        for member, queue in self._queues.items():
            if member not in self._closed:
                await queue.put(ending)

    def _split(self, batch: list[Item], ordinals: dict[int, int]) -> dict[int, list[Item]]:
        """The batch's items by member partition, each numbered on from `ordinals`."""
        source_id, partitions, closed = self.inner.source_id, self.partitions, self._closed
        split: dict[int, list[Item]] = {}
        for item in batch:
            member = partition_of(item_key(item, source_id), partitions)
            if member not in ordinals or member in closed:
                continue
            ordinals[member] = renumber(item, ordinals[member])
            split.setdefault(member, []).append(item)
        return split


class SharedPartitionSource:
    """One partition's items of a `SharedRead`, as a `Source` (a read from the top only)."""

    def __init__(self, shared: SharedRead, partition: int) -> None:
        self._shared = shared
        self.partition = partition
        self.source_id = partition_source_id(shared.inner.source_id, partition, shared.partitions)

    def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """The partition's items, from the top of the feed (`start` must be None)."""
        if start is not None:
            raise ValueError("a shared read starts at the top of the feed")
        return self._items()

    def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """Not for shared reads: workers run passes, not daemons."""
        raise NotImplementedError("a shared read is not followed")

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """About the partition's share of the feed."""
        total = self._shared.inner.estimate_total(None)
        return None if total is None else -(-total // self._shared.partitions)

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """The feed's own readiness."""
        return await self._shared.inner.check_reachable(timeout_s=timeout_s)

    async def _items(self) -> AsyncGenerator[list[Item], None]:
        shared = self._shared
        queue = shared._queues[self.partition]
        shared._start()
        try:
            while True:
                batch = await queue.get()
                if batch is _END:
                    return
                if isinstance(batch, BaseException):
                    raise batch
                yield batch
        finally:
            shared._leave(self.partition)
