"""Tests for the JSONL feed's follow mode (sources/jsonl.py `follow`, `_Tail`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from syncengine.errors import FatalError
from syncengine.model import BadInput, Change, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.generation import FINGERPRINT_BYTES, fingerprint
from syncengine.sources.jsonl import JsonlSource
from syncengine.sources.records import RecordDefaults

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())
POLL_S = 0.02
#: Longest a test waits for a batch that should come within a few polls.
WAIT_S = 2.0
#: How long "nothing comes" is watched: many poll intervals.
QUIET_S = 0.15

Feed = AsyncGenerator[list[Item], None]


def line(record_id: int) -> bytes:
    """One JSONL line for record `record_id`."""
    return b'{"id": "%d", "A": %d}\n' % (record_id, record_id)


def append(path: Path, data: bytes) -> None:
    """Append `data` to the file at `path`, as a writer would."""
    with path.open("ab") as handle:
        handle.write(data)


async def next_batch(feed: Feed) -> list[Item]:
    """The feed's next batch, failing the test if it takes longer than WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        return await anext(feed)


async def stays_quiet(pending: asyncio.Task[list[Item]]) -> bool:
    """True when `pending` (an anext of the feed) has not finished within QUIET_S."""
    done, _ = await asyncio.wait({pending}, timeout=QUIET_S)
    return not done


def summary(items: list[Item]) -> list[tuple[int, int | str, int | str, str | None]]:
    """(ordinal, offset, line, id) of each item."""
    result = []
    for item in items:
        if isinstance(item, Change):
            position, record_id = item.positions[0], item.record.get("id")
        else:
            position, record_id = item.position, None
        ordinal, offset, shown = position.ordinal, position.resume_after, position.display
        result.append((ordinal, offset, shown, None if record_id is None else str(record_id)))
    return result


def open_fds_on(path: Path) -> int:
    """How many of this process's file descriptors are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
    return count


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the followed feed lives."""
    return tmp_path / "feed.jsonl"


async def test_follow_yields_existing_lines_then_appended_ones(path: Path) -> None:
    """Existing lines come at once, appended lines come after, positions continue."""
    path.write_bytes(line(1) + line(2))
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        first = await next_batch(feed)
        append(path, line(3))
        second = await next_batch(feed)
    size = len(line(1))
    assert summary(first) == [(0, size, 1, "1"), (1, 2 * size, 2, "2")]
    assert summary(second) == [(2, 3 * size, 3, "3")]


async def test_follow_batches_are_bounded_and_not_held_back(path: Path) -> None:
    """Batches hold at most batch_items, and a short batch is yielded without waiting to fill."""
    path.write_bytes(b"".join(line(i) for i in range(5)))
    source = JsonlSource(path, DEFAULTS, batch_items=2)
    feed = source.follow(None, poll_interval_s=10.0)  # a poll would blow the timeout
    async with contextlib.aclosing(feed):
        sizes = [len(await next_batch(feed)) for _ in range(3)]
    assert sizes == [2, 2, 1]


async def test_follow_waits_for_the_end_of_a_half_written_line(path: Path) -> None:
    """A last line without newline is neither yielded nor reported bad until it is finished."""
    path.write_bytes(line(1) + b'{"id": "2", "A"')
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        assert summary(await next_batch(feed)) == [(0, len(line(1)), 1, "1")]
        pending = asyncio.ensure_future(anext(feed))
        assert await stays_quiet(pending)
        append(path, b": 2}\n")
        async with asyncio.timeout(WAIT_S):
            items = await pending
    assert [item.record for item in items if isinstance(item, Change)] == [{"id": "2", "A": 2}]
    assert summary(items) == [(1, len(line(1)) + len(line(2)), 2, "2")]


async def test_follow_reports_complete_bad_lines_as_bad_input(path: Path) -> None:
    """A finished line that is not JSON is a BadInput, as in read."""
    path.write_bytes(b"not json\n" + line(1))
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        items = await next_batch(feed)
    assert isinstance(items[0], BadInput)
    assert items[0].reason.startswith("bad JSON")
    assert isinstance(items[1], Change)


async def test_follow_survives_rotation_by_rename(path: Path) -> None:
    """Rename and new file: the old file is drained (even late lines), then the new from 0."""
    path.write_bytes(line(1))
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    items: list[Item] = []
    async with contextlib.aclosing(feed):
        items += await next_batch(feed)
        rotated = path.with_suffix(".jsonl.1")
        path.rename(rotated)
        path.write_bytes(line(3))
        append(rotated, line(2) + b'{"id": "9"')  # the writer had not reopened yet
        while len(items) < 4:
            items += await next_batch(feed)
        append(path, line(4))
        items += await next_batch(feed)
    size = len(line(1))
    assert [record_id for *_, record_id in summary(items)] == ["1", "2", None, "3", "4"]
    assert isinstance(items[2], BadInput)  # the old file's unfinished line is final there
    assert summary(items)[3:] == [(3, size, 1, "3"), (4, 2 * size, 2, "4")]


async def test_follow_restarts_a_truncated_file_from_the_top(path: Path) -> None:
    """A file shorter than the offset read (same inode) is read again from offset 0."""
    path.write_bytes(line(1) + line(2))
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        await next_batch(feed)
        with path.open("r+b") as handle:  # copytruncate keeps the inode
            handle.truncate(0)
            handle.write(line(3))
        items = await next_batch(feed)
    assert summary(items) == [(2, len(line(3)), 1, "3")]


async def test_follow_waits_for_a_file_created_later(path: Path) -> None:
    """A feed file that does not exist yet is waited for, not an error."""
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        pending = asyncio.ensure_future(anext(feed))
        assert await stays_quiet(pending)
        path.write_bytes(line(1))
        async with asyncio.timeout(WAIT_S):
            items = await pending
    assert summary(items) == [(0, len(line(1)), 1, "1")]


async def test_follow_resumes_after_a_checkpoint(path: Path) -> None:
    """A checkpoint skips the lines before it and line numbers continue from it."""
    path.write_bytes(line(1) + line(2))
    start = Checkpoint(resume_after=len(line(1)), display=1)
    feed = JsonlSource(path, DEFAULTS).follow(start, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        items = await next_batch(feed)
    assert summary(items) == [(0, 2 * len(line(1)), 2, "2")]


async def test_follow_refuses_a_checkpoint_of_this_file_inside_a_line(path: Path) -> None:
    """A checkpoint of this file that is not a line start is a FatalError, as in read."""
    path.write_bytes(line(1))
    start = Checkpoint(3, 1, this_generation(path))
    feed = JsonlSource(path, DEFAULTS).follow(start, poll_interval_s=POLL_S)
    async with contextlib.aclosing(feed):
        with pytest.raises(FatalError, match="not a line start"):
            await next_batch(feed)


def displayed(item: Item) -> int | str:
    """The line number an item was read at."""
    return item.position.display if isinstance(item, BadInput) else item.positions[0].display


def this_generation(path: Path) -> str:
    """The fingerprint of the file at `path` now."""
    with path.open("rb") as handle:
        return fingerprint(handle.fileno())


async def test_cancelling_a_waiting_follow_stops_it_and_closes_the_file(path: Path) -> None:
    """Cancelling the task waiting on a quiet feed ends it at once and releases the file."""
    path.write_bytes(line(1))
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=30.0)
    await next_batch(feed)
    assert open_fds_on(path) == 1
    pending = asyncio.ensure_future(anext(feed))
    assert await stays_quiet(pending)
    pending.cancel()
    async with asyncio.timeout(0.5):
        with pytest.raises(asyncio.CancelledError):
            await pending
    assert open_fds_on(path) == 0
    await feed.aclose()


async def test_closing_follow_after_a_batch_releases_the_file(path: Path) -> None:
    """aclose() after a batch ends the feed and closes the file."""
    path.write_bytes(line(1))
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=30.0)
    await next_batch(feed)
    async with asyncio.timeout(0.5):
        await feed.aclose()
    assert open_fds_on(path) == 0


async def test_follow_rejects_a_non_positive_poll_interval(path: Path) -> None:
    """A zero poll interval would spin: it is refused."""
    feed = JsonlSource(path, DEFAULTS).follow(None, poll_interval_s=0)
    with pytest.raises(ValueError, match="poll_interval_s"):
        await anext(feed)


async def test_an_old_checkpoint_from_a_replaced_file_is_not_misapplied(tmp_path: Path) -> None:
    """A new file with a line start at the old offset by chance: the line count tells.

    The checkpoint has no fingerprint (an older journal), so its lines are
    all that can tell: the file is new, and read from its start.
    """
    feed = tmp_path / "feed.jsonl"
    # The old file had 2 lines of 20 bytes: the checkpoint is (40, line 2).
    # The new one has 4 lines of 10 bytes: byte 40 is its end, a line start.
    feed.write_bytes(b'{"id":"1"}\n' * 4)
    size = feed.stat().st_size
    defaults = RecordDefaults(module="Leads", operation=Operation.UPDATE, trigger=())
    source = JsonlSource(feed, defaults)
    stale = Checkpoint(resume_after=size, display=2)
    read = [item for batch in [b async for b in source.read(stale)] for item in batch]
    assert [displayed(item) for item in read] == [1, 2, 3, 4]
    follower = source.follow(stale, poll_interval_s=0.02)
    async with contextlib.aclosing(follower):
        followed = await asyncio.wait_for(follower.__anext__(), 5)
    assert len(followed) == 4
    # The right checkpoint for this file is accepted.
    assert [b async for b in source.read(Checkpoint(resume_after=size, display=4))] == []


async def test_a_file_rewritten_in_place_with_the_same_first_bytes_is_refused(
    tmp_path: Path,
) -> None:
    """Same inode, same first bytes, other lines at the checkpoint: stop, with advice."""
    feed = tmp_path / "feed.jsonl"
    head = b'{"id":"1"}\n' * (FINGERPRINT_BYTES // 11 + 1)  # past what the fingerprint covers
    old_tail = b'{"id":"2","A":"xxxxxxxxxxxxxxxx"}\n'  # one line of 34 bytes
    new_tail = b'{"id":"2"}\n{"id":"3"}\n{"id":"44"}\n'  # three lines, 34 bytes
    assert len(old_tail) == len(new_tail)
    feed.write_bytes(head + old_tail)
    generation = this_generation(feed)
    checkpoint = Checkpoint(len(head + old_tail), head.count(b"\n") + 1, generation)
    with feed.open("r+b") as out:  # rewritten in place: the same inode and first bytes
        out.write(head + new_tail)
    source = JsonlSource(feed, RecordDefaults("Leads", Operation.UPDATE, ()))
    with pytest.raises(FatalError, match=r"rotated or replaced.*cp .* && mv "):
        async for _ in source.read(checkpoint):
            pass
