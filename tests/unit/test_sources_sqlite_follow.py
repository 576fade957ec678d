"""Tests for the SQLite change table's follow mode (sources/sqlite_table.py `follow`)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

from syncengine.errors import ConfigError
from syncengine.model import Change, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.records import RecordDefaults
from syncengine.sources.sqlite_table import SqliteTableSource

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())
POLL_S = 0.02
WAIT_S = 2.0
QUIET_S = 0.15

Feed = AsyncGenerator[list[Item], None]


@contextlib.contextmanager
def database(path: Path, *rows: tuple[object, ...]) -> Iterator[sqlite3.Connection]:
    """A WAL database with a `changes` table holding `rows`, open for writing."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id, Company)")
        db.executemany("INSERT INTO changes VALUES (?, ?, ?)", rows)
        yield db
    finally:
        db.close()


async def next_batch(feed: Feed) -> list[Item]:
    """The feed's next batch, failing the test if it takes longer than WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        return await anext(feed)


def cursors(items: list[Item]) -> list[tuple[int, int | str]]:
    """(ordinal, cursor) of each change."""
    return [
        (item.positions[0].ordinal, item.positions[0].resume_after)
        for item in items
        if isinstance(item, Change)
    ]


async def test_follow_yields_rows_inserted_later(tmp_path: Path) -> None:
    """Rows committed after the feed reached the end come at the next poll, in cursor order."""
    path = tmp_path / "feed.db"
    with database(path, (1, "a", "Acme")) as db:
        feed = SqliteTableSource(path, "changes", "seq", DEFAULTS).follow(
            None, poll_interval_s=POLL_S
        )
        async with contextlib.aclosing(feed):
            first = await next_batch(feed)
            pending = asyncio.ensure_future(anext(feed))
            done, _ = await asyncio.wait({pending}, timeout=QUIET_S)
            assert not done
            db.executemany("INSERT INTO changes VALUES (?, ?, ?)", [(5, "b", None), (7, "c", "X")])
            async with asyncio.timeout(WAIT_S):
                second = await pending
    assert cursors(first) == [(0, 1)]
    assert cursors(second) == [(1, 5), (2, 7)]
    assert [item.record for item in second if isinstance(item, Change)] == [
        {"id": "b", "Company": None},
        {"id": "c", "Company": "X"},
    ]


async def test_follow_pages_and_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    """Pages hold at most batch_items and a checkpoint skips rows up to its cursor."""
    path = tmp_path / "feed.db"
    rows = [(seq, str(seq), None) for seq in range(1, 6)]
    with database(path, *rows):
        source = SqliteTableSource(path, "changes", "seq", DEFAULTS, batch_items=2)
        feed = source.follow(Checkpoint(1, 1), poll_interval_s=10.0)
        async with contextlib.aclosing(feed):
            batches = [await next_batch(feed) for _ in range(2)]
    assert [cursors(batch) for batch in batches] == [[(0, 2), (1, 3)], [(2, 4), (3, 5)]]


async def test_cancelling_a_waiting_sqlite_follow_ends_promptly(tmp_path: Path) -> None:
    """Cancelling the task waiting on a quiet table ends it within a fraction of a second."""
    path = tmp_path / "feed.db"
    with database(path, (1, "a", None)):
        feed = SqliteTableSource(path, "changes", "seq", DEFAULTS).follow(
            None, poll_interval_s=30.0
        )
        await next_batch(feed)
        pending = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.05)
        pending.cancel()
        async with asyncio.timeout(0.5):
            with pytest.raises(asyncio.CancelledError):
                await pending
        await feed.aclose()


async def test_follow_of_a_missing_table_is_a_config_error(tmp_path: Path) -> None:
    """A table that does not exist is refused, not polled forever."""
    path = tmp_path / "feed.db"
    with database(path):
        feed = SqliteTableSource(path, "nope", "seq", DEFAULTS).follow(None, poll_interval_s=POLL_S)
        async with contextlib.aclosing(feed):
            with pytest.raises(ConfigError, match="nope"):
                await next_batch(feed)
