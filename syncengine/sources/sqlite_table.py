"""The SQLite feed: a change table (or view) read in order of a cursor column.

Pages of `SELECT * ... WHERE cursor > ? ORDER BY cursor LIMIT ?` run on a
read-only connection (`mode=ro`), each page its own short statement, so
other processes keep writing while the feed is read. The cursor column must
be unique, increasing, and hold integers or text; it should be indexed, or
every page scans the table. A rowid cursor (`INTEGER PRIMARY KEY`) must be
AUTOINCREMENT, else SQLite reuses values after the newest rows are deleted
(an outbox pruned up to the checkpoint) and those rows are never read: the
feed refuses to start on one (`reuses_rowids`). Every other column is a
field (NULL sends JSON null, which clears the field), except `_module` and
`_operation`, which override the defaults per row, and the columns named in
`exclude_columns` (read, never sent; each must be a column of the table or
view, checked when the feed is opened). A position's
`resume_after` and `display` are both the cursor value. Rows whose cursor is
NULL cannot be positioned: they are counted and logged, not read. Follow
mode runs the same page query every poll interval on one connection; it sees
rows as soon as their transaction commits. An AUTOINCREMENT cursor is safe
to follow: SQLite has one writer at a time, so rows commit in cursor order.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite
import structlog

from syncengine.errors import ConfigError
from syncengine.model import BadInput, Change, Checkpoint, Cursor, SourcePosition
from syncengine.sources.base import BATCH_ITEMS, Item, cursor_increases
from syncengine.sources.follow import check_poll_interval
from syncengine.sources.records import RecordDefaults, from_row

_log = structlog.get_logger(__name__)


_ROWID_NAMES = frozenset({"rowid", "_rowid_", "oid"})


def reuses_rowids(cursor: str, columns: list[tuple[str, str, int]], create_sql: str) -> bool:
    """True when `cursor` is the table's rowid and the table lacks AUTOINCREMENT.

    `columns` are (name, declared type, primary-key index) from `table_info`.
    A column is the rowid when it is the table's only primary key column and
    declared exactly INTEGER; `rowid`, `_rowid_` and `oid` name it when no
    column takes the name. A WITHOUT ROWID table has no rowid to reuse.
    """
    sql = create_sql.upper()
    if "WITHOUT ROWID" in sql or "AUTOINCREMENT" in sql:
        return False
    keys = [(name, kind) for name, kind, key in columns if key]
    by_name = {name.lower(): (kind, key) for name, kind, key in columns}
    wanted = cursor.lower()
    if wanted not in by_name:
        return wanted in _ROWID_NAMES
    kind, key = by_name[wanted]
    return bool(key) and len(keys) == 1 and kind.upper() == "INTEGER"


class SqliteTableSource:
    """Rows of `table` after a cursor value, read through aiosqlite."""

    def __init__(
        self,
        path: Path,
        table: str,
        cursor: str,
        defaults: RecordDefaults,
        *,
        exclude_columns: Sequence[str] = (),
        batch_items: int = BATCH_ITEMS,
    ) -> None:
        """`table`, `cursor` and excluded columns must be SQL identifiers (the config checks)."""
        self.path = path.absolute()
        self.source_id = f"sqlite:{self.path}#{table}.{cursor}"
        self._uri = f"{self.path.as_uri()}?mode=ro"
        self._table = table
        self._cursor = cursor
        self._defaults = defaults.of_feed(self.source_id)
        self._excluded = tuple(exclude_columns)
        self._excluded_folded = frozenset(name.lower() for name in exclude_columns)
        self._batch_items = batch_items
        self._first_page = (
            f'SELECT * FROM "{table}" WHERE "{cursor}" IS NOT NULL ORDER BY "{cursor}" LIMIT ?'
        )
        self._next_page = (
            f'SELECT * FROM "{table}" WHERE "{cursor}" > ? ORDER BY "{cursor}" LIMIT ?'
        )

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """Batches (one page each) of rows after `start`; see `Source.read`.

        Raises ConfigError when the database, table or cursor column cannot
        be read, or when cursor values are not unique integers or text.
        """
        async with contextlib.aclosing(self._pages(start, poll_interval_s=None)) as pages:
            async for batch in pages:
                yield batch

    async def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """Pages of rows after `start`, polling for new rows at the end; see `Source.follow`.

        Raises ConfigError as `read` does.
        """
        check_poll_interval(poll_interval_s)
        pages = self._pages(start, poll_interval_s=poll_interval_s)
        async with contextlib.aclosing(pages):
            async for batch in pages:
                yield batch

    async def _pages(
        self, start: Checkpoint | None, *, poll_interval_s: float | None
    ) -> AsyncGenerator[list[Item], None]:
        """Pages after `start`; at the end, return (None) or poll every `poll_interval_s`."""
        last: Cursor | None = None if start is None else start.resume_after
        ordinal = 0
        try:
            async with aiosqlite.connect(self._uri, uri=True) as db:
                await self._refuse_reused_cursor(db)
                await self._refuse_unknown_exclusions(db)
                await self._warn_null_cursors(db)
                while True:
                    rows, columns = await self._page(db, last)
                    if rows:
                        batch, last = self._convert(rows, columns, ordinal, last)
                        ordinal += len(batch)
                        yield batch
                    elif poll_interval_s is None:
                        return
                    else:
                        await asyncio.sleep(poll_interval_s)
        except sqlite3.Error as exc:
            raise self._config_error(exc) from None

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """Rows after `start`, by COUNT(*); None when the table cannot be read."""
        where = f'"{self._cursor}" IS NOT NULL' if start is None else f'"{self._cursor}" > ?'
        params = () if start is None else (start.resume_after,)
        try:
            with contextlib.closing(sqlite3.connect(self._uri, uri=True)) as db:
                row = db.execute(f'SELECT COUNT(*) FROM "{self._table}" WHERE {where}', params)
                return int(row.fetchone()[0])
        except sqlite3.Error:
            return None

    async def _page(
        self, db: aiosqlite.Connection, last: Cursor | None
    ) -> tuple[list[tuple[Any, ...]], list[str]]:
        params: tuple[Any, ...]
        if last is None:
            sql, params = self._first_page, (self._batch_items,)
        else:
            sql, params = self._next_page, (last, self._batch_items)
        async with db.execute(sql, params) as result:
            rows = cast(list[tuple[Any, ...]], list(await result.fetchall()))
            columns = [column[0] for column in result.description]
        return rows, columns

    def _convert(
        self,
        rows: Sequence[Sequence[Any]],
        columns: list[str],
        ordinal: int,
        last: Cursor | None,
    ) -> tuple[list[Item], Cursor]:
        """Rows to items; checks that cursor values are unique integers or text."""
        index = [name.lower() for name in columns].index(self._cursor.lower())
        fields = [
            (i, name)
            for i, name in enumerate(columns)
            if i != index and name.lower() not in self._excluded_folded
        ]
        batch: list[Item] = []
        for row in rows:
            value = row[index]
            self._check_cursor(value, last)
            last = value
            position = SourcePosition(ordinal + len(batch), value, value)
            batch.append(self._item({name: row[i] for i, name in fields}, position))
        assert last is not None  # rows is not empty
        return batch, last

    def _item(self, record: dict[str, Any], position: SourcePosition) -> Change | BadInput:
        blobs = [name for name, value in record.items() if isinstance(value, bytes)]
        if blobs:
            return BadInput(position, f"column {blobs[0]} holds a BLOB, which JSON cannot carry")
        return from_row(record, position, self._defaults)

    def _check_cursor(self, value: object, last: Cursor | None) -> None:
        if not isinstance(value, int | str):
            raise ConfigError(
                f"{self.path}: source.cursor: {self._cursor} holds {type(value).__name__}"
                " values; the cursor must be integers or text"
            )
        if last is not None and not cursor_increases(last, value):
            raise ConfigError(
                f"{self.path}: source.cursor: {self._cursor} values are not unique and"
                f" increasing integers or text (at {value!r})"
            )

    async def _refuse_reused_cursor(self, db: aiosqlite.Connection) -> None:
        """Raise ConfigError when the cursor is a rowid SQLite may hand out again.

        Without AUTOINCREMENT, a new row takes the largest rowid + 1: once the
        rows at the top are deleted (an outbox pruned up to the checkpoint),
        new rows reuse values at or below the checkpoint and are never read.
        """
        async with db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
            (self._table,),
        ) as result:
            found = await result.fetchone()
        if found is None:
            return  # a view: its cursor's origin cannot be told here
        async with db.execute(f'PRAGMA table_info("{self._table}")') as result:
            columns = [(str(row[1]), str(row[2]), int(row[5])) for row in await result.fetchall()]
        if reuses_rowids(self._cursor, columns, str(found[0] or "")):
            raise ConfigError(
                f"{self.path}: source.cursor: {self._table}.{self._cursor} is a rowid without"
                " AUTOINCREMENT; SQLite reuses its values once the newest rows are deleted"
                " (pruning), and such rows would never be read; declare it"
                f' "{self._cursor} INTEGER PRIMARY KEY AUTOINCREMENT"'
            )

    async def _refuse_unknown_exclusions(self, db: aiosqlite.Connection) -> None:
        """Raise ConfigError naming the first excluded name that is not a column.

        A misspelt name would otherwise leave the column it meant in every
        record sent. SQLite compares column names without case, so this does.
        """
        if not self._excluded:
            return
        async with db.execute(f'SELECT * FROM "{self._table}" LIMIT 0') as result:
            columns = {column[0].lower() for column in result.description}
        for name in self._excluded:
            if name.lower() not in columns:
                raise ConfigError(
                    f"{self.path}: source.exclude_columns: {name!r} is not a column of"
                    f" {self._table!r}"
                )

    async def _warn_null_cursors(self, db: aiosqlite.Connection) -> None:
        sql = f'SELECT COUNT(*) FROM "{self._table}" WHERE "{self._cursor}" IS NULL'
        async with db.execute(sql) as result:
            row = await result.fetchone()
        if row is not None and row[0]:
            _log.warning("source.null_cursor_rows", table=self._table, rows=row[0])

    def _config_error(self, exc: sqlite3.Error) -> ConfigError:
        return ConfigError(
            f"{self.path}: cannot read table {self._table!r} by {self._cursor!r}: {exc}"
        )

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """Readiness: None while the feed's folder exists (the file itself may come later)."""
        if self.path.parent.is_dir():
            return None
        return f"feed folder {self.path.parent} does not exist"
