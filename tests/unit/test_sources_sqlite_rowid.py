"""A SQLite outbox pruned up to the checkpoint: a reused rowid must never hide a row.

Without AUTOINCREMENT SQLite gives a new row the largest rowid + 1, so once
the newest rows are deleted the next row takes a value the checkpoint has
already passed. The feed refuses such a cursor; with AUTOINCREMENT the same
scenario reads every row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncengine.errors import ConfigError
from syncengine.model import Change, Checkpoint, Operation
from syncengine.sources.records import RecordDefaults
from syncengine.sources.sqlite_table import SqliteTableSource, reuses_rowids

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


def outbox(path: Path, cursor_sql: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE outbox ({cursor_sql}, id TEXT, Company TEXT)")
        db.executemany("INSERT INTO outbox (id, Company) VALUES (?, ?)", [("1", "a"), ("2", "b")])


def prune_and_insert(path: Path, checkpoint: int) -> None:
    """Delete the rows at or below the checkpoint, as the README suggests, then add one."""
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM outbox WHERE seq <= ?", (checkpoint,))
        db.execute("INSERT INTO outbox (id, Company) VALUES ('3', 'c')")


async def read(source: SqliteTableSource, start: Checkpoint | None) -> list[Change]:
    return [item async for batch in source.read(start) for item in batch]  # type: ignore[misc]


async def test_a_reusable_rowid_cursor_is_refused_naming_the_remedy(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    outbox(path, "seq INTEGER PRIMARY KEY")
    source = SqliteTableSource(path, "outbox", "seq", DEFAULTS)
    with pytest.raises(ConfigError, match=r"outbox\.seq .*AUTOINCREMENT"):
        await read(source, None)


async def test_with_autoincrement_the_pruned_outbox_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    outbox(path, "seq INTEGER PRIMARY KEY AUTOINCREMENT")
    source = SqliteTableSource(path, "outbox", "seq", DEFAULTS)
    first = await read(source, None)
    checkpoint = first[-1].positions[0].resume_after
    assert isinstance(checkpoint, int)
    prune_and_insert(path, checkpoint)
    later = await read(source, Checkpoint(resume_after=checkpoint, display=checkpoint))
    assert [change.record["id"] for change in later] == ["3"]


@pytest.mark.parametrize(
    ("cursor", "columns", "sql", "reused"),
    [
        ("seq", [("seq", "INTEGER", 1)], "CREATE TABLE t (seq INTEGER PRIMARY KEY)", True),
        ("seq", [("seq", "integer", 1)], "create table t (seq integer primary key)", True),
        (
            "seq",
            [("seq", "INTEGER", 1)],
            "CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT)",
            False,
        ),
        ("seq", [("seq", "INT", 1)], "CREATE TABLE t (seq INT PRIMARY KEY)", False),
        ("seq", [("seq", "INTEGER", 0)], "CREATE TABLE t (seq INTEGER)", False),
        ("rowid", [("id", "TEXT", 0)], "CREATE TABLE t (id TEXT)", True),
        (
            "seq",
            [("seq", "INTEGER", 1)],
            "CREATE TABLE t (seq INTEGER PRIMARY KEY) WITHOUT ROWID",
            False,
        ),
    ],
)
def test_which_cursors_reuse_values(
    cursor: str, columns: list[tuple[str, str, int]], sql: str, reused: bool
) -> None:
    assert reuses_rowids(cursor, columns, sql) is reused
