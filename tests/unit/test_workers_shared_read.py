"""One read shared by several partitions gives each exactly what its own read would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from pathlib import Path

import orjson
import pytest

from syncengine.errors import FatalError
from syncengine.model import BadInput, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults
from syncengine.workers.partition import PartitionSource
from syncengine.workers.shared_read import QUEUE_BATCHES, SharedRead

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())
PARTITIONS = 5


def summary(items: list[Item]) -> list[tuple[int, int | str, object]]:
    out: list[tuple[int, int | str, object]] = []
    for item in items:
        if isinstance(item, BadInput):
            out.append((item.position.ordinal, item.position.display, item.reason))
        else:
            position = item.positions[0]
            out.append((position.ordinal, position.display, item.record))
    return out


async def collect(generator: AsyncGenerator[list[Item], None]) -> list[Item]:
    return [item async for batch in generator for item in batch]


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    path = tmp_path / "feed.jsonl"
    rows = [orjson.dumps({"id": str(n % 97), "Company": f"c{n}"}) for n in range(3000)]
    rows.insert(1500, b'"not an object"')
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


async def test_each_member_gets_what_its_own_read_would(feed: Path) -> None:
    members = [0, 2, 3]
    shared = SharedRead(JsonlSource(feed, DEFAULTS), PARTITIONS, members)
    together = await asyncio.gather(
        *(collect(shared.source(member).read(None)) for member in members)
    )
    await shared.close()
    for member, items in zip(members, together, strict=True):
        alone = await collect(
            PartitionSource(JsonlSource(feed, DEFAULTS), member, PARTITIONS).read(None)
        )
        assert items
        assert summary(items) == summary(alone)
        assert (
            shared.source(member).source_id
            == PartitionSource(JsonlSource(feed, DEFAULTS), member, PARTITIONS).source_id
        )


async def test_a_member_that_stops_early_holds_no_one_back(feed: Path) -> None:
    shared = SharedRead(JsonlSource(feed, DEFAULTS), PARTITIONS, [0, 1])
    quitter = shared.source(0).read(None)
    first = await anext(quitter)
    assert first
    await quitter.aclose()  # its pass ended (stopped, lease lost)
    rest = await asyncio.wait_for(collect(shared.source(1).read(None)), 10)
    alone = await collect(PartitionSource(JsonlSource(feed, DEFAULTS), 1, PARTITIONS).read(None))
    assert summary(rest) == summary(alone)
    await shared.close()


async def test_a_member_not_reading_yet_only_delays_the_others(feed: Path) -> None:
    shared = SharedRead(JsonlSource(feed, DEFAULTS), PARTITIONS, [0, 1])
    early = asyncio.create_task(collect(shared.source(0).read(None)))
    await asyncio.sleep(0.2)
    assert not early.done()  # member 1's queue is full: QUEUE_BATCHES batches ahead
    late = await collect(shared.source(1).read(None))
    assert late
    assert await asyncio.wait_for(early, 10)
    assert QUEUE_BATCHES >= 1
    await shared.close()


class BrokenFeed:
    source_id = "broken:feed"

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        raise FatalError("the feed was replaced")
        yield []

    def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        return self.read(start)

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        return None

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        return None


async def test_a_feed_error_reaches_every_member() -> None:
    shared = SharedRead(BrokenFeed(), PARTITIONS, [0, 1])
    results = await asyncio.gather(
        collect(shared.source(0).read(None)),
        collect(shared.source(1).read(None)),
        return_exceptions=True,
    )
    assert all(isinstance(result, FatalError) for result in results)
    with contextlib.suppress(Exception):
        await shared.close()


def test_only_a_read_from_the_top_is_shared(feed: Path) -> None:
    shared = SharedRead(JsonlSource(feed, DEFAULTS), PARTITIONS, [0])
    with pytest.raises(ValueError, match="top"):
        shared.source(0).read(Checkpoint(10, 1))
    with pytest.raises(ValueError, match="not one of"):
        shared.source(4)
