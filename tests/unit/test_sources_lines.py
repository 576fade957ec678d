"""File feeds and the ends of their lines: cut last lines and oversized lines.

A writer caught mid-append leaves a last line without its newline; it must
never be consumed (sent cut, or counted twice) until it is finished. A line
over the feed's maximum is a `BadInput` naming it, read past without being
held whole, and the feed goes on at the next line.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from collections.abc import AsyncGenerator
from pathlib import Path

from syncengine.model import BadInput, Change, Checkpoint, Operation
from syncengine.sources.base import MAX_LINE_BYTES, Item
from syncengine.sources.csv_feed import CsvSource
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())
WAIT_S = 2.0
POLL_S = 0.02


async def collect(source: JsonlSource | CsvSource, start: Checkpoint | None = None) -> list[Item]:
    return [item for batch in [b async for b in source.read(start)] for item in batch]


def where(item: Item) -> tuple[int | str, int | str]:
    """(resume_after, display) of an item's position."""
    position = item.position if isinstance(item, BadInput) else item.positions[0]
    return position.resume_after, position.display


def checkpoint_after(item: Item) -> Checkpoint:
    resume_after, display = where(item)
    return Checkpoint(resume_after=resume_after, display=display)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


async def test_jsonl_read_leaves_a_cut_last_line_and_keeps_positions(tmp_path: Path) -> None:
    """A parsable last line without newline is taken only once finished, at its own line."""
    path = tmp_path / "feed.jsonl"
    one, two, three = b'{"id": "1", "A": 1}', b'{"id": "2", "A": 2}', b'{"id": "3", "A": 3}'
    path.write_bytes(one + b"\n" + two)
    source = JsonlSource(path, DEFAULTS)
    first = await collect(source)
    assert [where(item) for item in first] == [(len(one) + 1, 1)]
    append(path, b"\n" + three + b"\n")
    rest = await collect(source, checkpoint_after(first[-1]))
    size = path.stat().st_size
    assert [where(item) for item in rest] == [(len(one) + len(two) + 2, 2), (size, 3)]
    assert [item.record["id"] for item in rest if isinstance(item, Change)] == ["2", "3"]
    assert await collect(source, checkpoint_after(rest[-1])) == []


async def test_csv_read_never_sends_a_cut_row(tmp_path: Path) -> None:
    """`Johannes` of `Johannesburg-Williams` is not sent; the finished row is, once."""
    path = tmp_path / "feed.csv"
    head = b"id,City\n1,Paris\n"
    path.write_bytes(head + b"2,Johannes")
    source = CsvSource(path, DEFAULTS)
    first = await collect(source)
    assert [where(item) for item in first] == [(len(head), 2)]
    append(path, b"burg-Williams\n3,Oslo\n")
    rest = await collect(source, checkpoint_after(first[-1]))
    assert [item.record for item in rest if isinstance(item, Change)] == [
        {"id": "2", "City": "Johannesburg-Williams"},
        {"id": "3", "City": "Oslo"},
    ]
    assert [where(item)[1] for item in rest] == [3, 4]
    assert where(rest[-1])[0] == path.stat().st_size


async def next_batch(feed: AsyncGenerator[list[Item], None]) -> list[Item]:
    async with asyncio.timeout(WAIT_S):
        return await anext(feed)


async def test_jsonl_follow_takes_a_parsable_cut_line_once_finished(tmp_path: Path) -> None:
    """Follow mode waits for the newline of a last line that already parses."""
    path = tmp_path / "feed.jsonl"
    one, two = b'{"id": "1", "A": 1}\n', b'{"id": "2", "A": 2}'
    path.write_bytes(one + two)
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        assert [where(item) for item in await next_batch(feed)] == [(len(one), 1)]
        pending = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(POLL_S * 5)
        assert not pending.done()
        append(path, b"\n")
        async with asyncio.timeout(WAIT_S):
            items = await pending
    assert [where(item) for item in items] == [(len(one) + len(two) + 1, 2)]


def oversized_file(path: Path, limit: int) -> tuple[bytes, bytes, bytes]:
    before, after = b'{"id": "1", "A": 1}\n', b'{"id": "3", "A": 3}\n'
    huge = b'{"id": "2", "A": "' + b"x" * (limit * 3) + b'"}\n'
    path.write_bytes(before + huge + after)
    return before, huge, after


async def test_jsonl_oversized_line_is_bad_input_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    before, huge, after = oversized_file(path, 64)
    items = await collect(JsonlSource(path, DEFAULTS, max_line_bytes=64))
    assert [type(item).__name__ for item in items] == ["Change", "BadInput", "Change"]
    bad = items[1]
    assert isinstance(bad, BadInput)
    assert bad.reason.startswith(f"line too long: {len(huge)} bytes")
    assert where(bad) == (len(before) + len(huge), 2)
    assert where(items[2]) == (len(before) + len(huge) + len(after), 3)


async def test_jsonl_follow_reports_an_oversized_line(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    before, huge, _ = oversized_file(path, 64)
    feed = JsonlSource(path, DEFAULTS, max_line_bytes=64).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        items = await next_batch(feed)
    assert [type(item).__name__ for item in items] == ["Change", "BadInput", "Change"]
    assert where(items[1]) == (len(before) + len(huge), 2)


async def test_csv_oversized_line_is_bad_input_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    head, huge = b"id,A\n1,a\n", b"2," + b"y" * 200 + b"\n"
    path.write_bytes(head + huge + b"3,c\n")
    items = await collect(CsvSource(path, DEFAULTS, max_line_bytes=64))
    assert [type(item).__name__ for item in items] == ["Change", "BadInput", "Change"]
    bad = items[1]
    assert isinstance(bad, BadInput)
    assert bad.reason.startswith("line too long: 203 bytes")
    assert where(bad) == (len(head) + len(huge), 3)
    assert isinstance(items[2], Change)
    assert items[2].record == {"id": "3", "A": "c"}


async def test_a_line_far_over_the_limit_is_never_held_whole(tmp_path: Path) -> None:
    """With the real limit: a 48 MiB line costs about two limits of memory, not its size."""
    path = tmp_path / "feed.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"id": "1", "A": "')
        for _ in range(48):
            handle.write(b"z" * (1 << 20))
        handle.write(b'"}\n{"id": "2", "A": 2}\n')
    tracemalloc.start()
    try:
        items = await collect(JsonlSource(path, DEFAULTS))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [type(item).__name__ for item in items] == ["BadInput", "Change"]
    assert peak < 3 * MAX_LINE_BYTES
