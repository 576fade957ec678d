"""Tests for the SQLite change-table feed (sources/sqlite_table.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncengine.errors import ConfigError
from syncengine.model import BadInput, Change, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.records import RecordDefaults
from syncengine.sources.sqlite_table import SqliteTableSource

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


@contextlib.contextmanager
def database(path: Path, *rows: tuple[object, ...]) -> Iterator[sqlite3.Connection]:
    """A WAL database with a `changes` table holding `rows`, open for writing."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id, Company, Rating)"
        )
        db.executemany("INSERT INTO changes VALUES (?, ?, ?, ?)", rows)
        yield db
    finally:
        db.close()


def source(path: Path, *, cursor: str = "seq", batch_items: int = 500) -> SqliteTableSource:
    """A source over the `changes` table of `path`."""
    return SqliteTableSource(path, "changes", cursor, DEFAULTS, batch_items=batch_items)


async def collect(feed: SqliteTableSource, start: Checkpoint | None = None) -> list[Item]:
    """Every item the source yields from `start`, batches flattened."""
    return [item for batch in [b async for b in feed.read(start)] for item in batch]


async def test_rows_become_changes_with_cursor_positions(tmp_path: Path) -> None:
    """Columns but the cursor are fields, NULL is sent as null, positions are cursor values."""
    path = tmp_path / "feed.db"
    with database(path, (10, 101, "Acme", 5), (20, "102", None, None)):
        items = await collect(source(path))
    assert all(isinstance(item, Change) for item in items)
    assert [item.record for item in items if isinstance(item, Change)] == [
        {"id": "101", "Company": "Acme", "Rating": 5},
        {"id": "102", "Company": None, "Rating": None},
    ]
    positions = [item.positions[0] for item in items if isinstance(item, Change)]
    assert [(p.ordinal, p.resume_after, p.display) for p in positions] == [(0, 10, 10), (1, 20, 20)]


async def test_pages_and_resume_from_checkpoint(tmp_path: Path) -> None:
    """Rows come in pages of batch_items; a checkpoint skips rows up to its cursor value."""
    path = tmp_path / "feed.db"
    rows = [(i, str(i), "C", i) for i in range(1, 8)]
    with database(path, *rows):
        batches = [len(batch) async for batch in source(path, batch_items=3).read(None)]
        rest = await collect(source(path), Checkpoint(resume_after=5, display=5))
    assert batches == [3, 3, 1]
    assert [item.record["id"] for item in rest if isinstance(item, Change)] == ["6", "7"]


async def test_reads_while_another_connection_writes(tmp_path: Path) -> None:
    """An open write transaction elsewhere neither blocks the read nor leaks uncommitted rows."""
    path = tmp_path / "feed.db"
    with database(path, (1, "1", "A", 1)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO changes VALUES (2, '2', 'B', 2)")
        items = await collect(source(path))
        writer.execute("COMMIT")
        later = await collect(source(path), Checkpoint(resume_after=1, display=1))
    assert [item.record["id"] for item in items if isinstance(item, Change)] == ["1"]
    assert [item.record["id"] for item in later if isinstance(item, Change)] == ["2"]


async def test_blob_column_is_bad_input(tmp_path: Path) -> None:
    """A BLOB value cannot become JSON: that row is a BadInput, the rest go on."""
    path = tmp_path / "feed.db"
    with database(path, (1, "1", b"\x00\x01", 1), (2, "2", "ok", 2)):
        items = await collect(source(path))
    assert isinstance(items[0], BadInput)
    assert items[0].reason == "column Company holds a BLOB, which JSON cannot carry"
    assert items[0].position.display == 1
    assert isinstance(items[1], Change)


async def test_override_columns_steer_the_row(tmp_path: Path) -> None:
    """`_module` and `_operation` columns override the defaults and are not fields."""
    path = tmp_path / "feed.db"
    db = sqlite3.connect(path)
    with contextlib.closing(db), db:
        db.execute(
            "CREATE TABLE changes"
            " (seq INTEGER PRIMARY KEY AUTOINCREMENT, _module, _operation, Deal_Name)"
        )
        db.execute("INSERT INTO changes VALUES (1, 'Deals', 'upsert', 'Big'), (2, NULL, NULL, 'x')")
    items = await collect(source(path))
    assert isinstance(items[0], Change)
    assert (items[0].module, items[0].operation, items[0].record) == (
        "Deals",
        Operation.UPSERT,
        {"Deal_Name": "Big"},
    )
    assert isinstance(items[1], BadInput)
    assert items[1].reason == "no id for an update"


@pytest.mark.parametrize(
    ("cursor", "message"),
    [("Rating", "not unique and increasing"), ("Company", "holds float values")],
)
async def test_unusable_cursor_column_is_config_error(
    tmp_path: Path, cursor: str, message: str
) -> None:
    """Repeated or non-integer, non-text cursor values are refused, naming source.cursor."""
    path = tmp_path / "feed.db"
    match = f"source.cursor: {cursor} .*{message}"
    with (
        database(path, (1, "1", 1.5, 7), (2, "2", 2.5, 7)),
        pytest.raises(ConfigError, match=match),
    ):
        await collect(source(path, cursor=cursor))


async def test_null_cursor_rows_are_logged(tmp_path: Path) -> None:
    """Rows whose cursor is NULL cannot be positioned: a warning counts them."""
    path = tmp_path / "feed.db"
    with database(path, (1, "1", "A", None), (2, "2", "B", 3)), capture_logs() as logs:
        items = await collect(source(path, cursor="Rating"))
    assert len(items) == 1
    assert any(log["event"] == "source.null_cursor_rows" and log.get("rows") == 1 for log in logs)


async def test_missing_table_or_database_is_config_error(tmp_path: Path) -> None:
    """A database or table that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot read table 'changes'"):
        await collect(source(tmp_path / "absent.db"))
    path = tmp_path / "feed.db"
    sqlite3.connect(path).close()
    with pytest.raises(ConfigError, match="no such table"):
        await collect(source(path))


def test_estimate_total_counts_rows_after_start(tmp_path: Path) -> None:
    """The estimate is a COUNT(*) after the checkpoint; None when the table is absent."""
    path = tmp_path / "feed.db"
    with database(path, *[(i, str(i), "C", i) for i in range(1, 11)]):
        assert source(path).estimate_total(None) == 10
        assert source(path).estimate_total(Checkpoint(resume_after=4, display=4)) == 6
    assert source(tmp_path / "absent.db").estimate_total(None) is None
