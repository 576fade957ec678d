"""Which partition a record belongs to, and a feed that yields only one partition.

A pass split over workers is split by the record's key (`Change.key`: the
module plus the record id, duplicate-check value or source key; for an
insert with no identity, its feed position). The same key always lands in
the same partition, so every change to one record goes through one worker,
in feed order, and per-record order holds across workers. The hash is
stable (CRC-32 of the key's UTF-8, not Python's salted `hash`), so every
process and every later pass agree; it is cheap, since every worker hashes
every line of the feed.

Each partition is a feed of its own for the journal (`partition_source_id`):
it has its own checkpoint, so a worker that takes over a partition resumes
where that partition stopped, whatever the other partitions did.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, Callable

from syncengine.keys import position_key
from syncengine.model import BadInput, Checkpoint
from syncengine.sources.base import Item, Source

#: Partitions when `--partitions` does not say: a few per worker, so a dead
#: worker's share is spread, and few in all, since every partition worked
#: reads the whole feed (the feed is parsed once per partition in a pass).
DEFAULT_PARTITIONS = 8
#: Most partitions a pass may be split into.
MAX_PARTITIONS = 1024


def partition_of(key: str, partitions: int) -> int:
    """The partition (0..partitions-1) of the record `key` (pure, stable across processes)."""
    return zlib.crc32(key.encode()) % partitions


def item_key(item: Item, source_id: str) -> str:
    """The key an item is partitioned by: the change's key, else its feed position.

    Feeds key every change they read (a keyless insert by its position), so
    the fallback only serves lines that could not be used (`BadInput`).
    """
    if isinstance(item, BadInput):
        position = item.position
        return position_key(source_id, position.display, generation=position.generation)
    if item.key is not None:
        return item.key
    first = item.positions[0]
    return position_key(source_id, first.display, generation=first.generation)


def renumber(item: Item, ordinal: int) -> int:
    """Number `item`'s positions from `ordinal` on; returns the next ordinal.

    A partition's read numbers its own items 0, 1, 2, ...: the watermark
    accepts only consecutive ordinals.
    """
    if isinstance(item, BadInput):
        item.position.ordinal = ordinal
        return ordinal + 1
    for position in item.positions:
        position.ordinal = ordinal
        ordinal += 1
    return ordinal


def partition_source_id(source_id: str, partition: int, partitions: int) -> str:
    """The journal's name for one partition of a feed (its checkpoint's key)."""
    return f"{source_id}|partition {partition}/{partitions}"


def key_filter(partition: int, partitions: int) -> Callable[[str], bool]:
    """True for the record keys of `partition` (the journal's pending rows are kept by it)."""

    def in_partition(key: str) -> bool:
        return partition_of(key, partitions) == partition

    return in_partition


class PartitionSource:
    """The items of one partition of a feed, as a `Source` of their own.

    Reads the whole feed and keeps the items of its partition, numbering
    their positions 0, 1, 2, ... again, as a read must (the watermark
    requires consecutive ordinals). A position keeps its place in the feed
    (`resume_after`), so the partition's checkpoint is a checkpoint of the
    feed, and the partition resumes after it, reading past other
    partitions' items.
    """

    def __init__(self, inner: Source, partition: int, partitions: int) -> None:
        if not 0 <= partition < partitions <= MAX_PARTITIONS:
            raise ValueError(f"partition {partition} of {partitions} is out of range")
        self.inner = inner
        self.partition = partition
        self.partitions = partitions
        self._inner_id = inner.source_id
        self.source_id = partition_source_id(inner.source_id, partition, partitions)

    def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """The partition's items after `start`, up to the feed's current end."""
        return self._kept(self.inner.read(start))

    def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """As `read`, following the feed as it grows."""
        return self._kept(self.inner.follow(start, poll_interval_s=poll_interval_s))

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """About the partition's share of what remains of the feed."""
        total = self.inner.estimate_total(start)
        return None if total is None else -(-total // self.partitions)

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """The feed's own readiness."""
        return await self.inner.check_reachable(timeout_s=timeout_s)

    async def _kept(
        self, batches: AsyncGenerator[list[Item], None]
    ) -> AsyncGenerator[list[Item], None]:
        partition, partitions, source_id = self.partition, self.partitions, self._inner_id
        ordinal = 0
        try:
            async for batch in batches:
                kept: list[Item] = []
                for item in batch:
                    if partition_of(item_key(item, source_id), partitions) != partition:
                        continue
                    ordinal = renumber(item, ordinal)
                    kept.append(item)
                if kept:
                    yield kept
        finally:
            await batches.aclose()
