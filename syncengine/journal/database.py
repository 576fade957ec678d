"""One session connection to the journal, whichever engine holds it: SQLite or PostgreSQL.

`Journal` writes its SQL once, in SQLite's spelling with `?` placeholders;
a `Database` runs it. The PostgreSQL one numbers the placeholders (`$1`,
`$2`, ...) and `Dialect` holds the few fragments the two engines spell
differently, so every difference between them is in this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite

from syncengine.errors import FatalError

if TYPE_CHECKING:
    import asyncpg


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL fragments SQLite and PostgreSQL spell differently."""

    #: The column that orders rows by first insertion (the retry queue's order).
    row_order: str
    #: `LIMIT ?` with this value means no limit.
    no_limit: int | None
    #: The `api_name` member of the JSON text in `details`.
    details_api_name: str
    #: Failures in feed order: no position last, numbers before strings (SQLite's
    #: order of types), numbers by value, strings byte-wise.
    position_order: str
    #: After a text expression in ORDER BY: byte-wise order, as SQLite's default.
    bytewise: str
    #: True for PostgreSQL.
    postgres: bool


SQLITE = Dialect(
    row_order="rowid",
    no_limit=-1,
    details_api_name="json_extract(details, '$.api_name')",
    position_order="position IS NULL, position",
    bytewise="",
    postgres=False,
)
POSTGRES = Dialect(
    row_order="seq",
    no_limit=None,
    details_api_name="(details::jsonb ->> 'api_name')",
    position_order=(
        "position IS NULL, jsonb_typeof(position) <> 'number',"
        " CASE WHEN jsonb_typeof(position) = 'number' THEN (position #>> '{}')::numeric END,"
        " (position #>> '{}') COLLATE \"C\""
    ),
    bytewise=' COLLATE "C"',
    postgres=True,
)

Row = Sequence[Any]


class Database(Protocol):
    """A session connection: statements run one at a time, in the order called."""

    dialect: Dialect

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row of a query."""

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one INSERT into a table with an `id` key; the new row's id."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        """BEGIN ... COMMIT around the block, rolled back on any error or cancellation."""

    async def close(self) -> None:
        """Close the connection."""


class SqliteDatabase:
    """An aiosqlite connection in autocommit mode (`isolation_level=None`)."""

    dialect = SQLITE

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, params))

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self.db.execute(sql, params) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self.db.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        # `lastrowid`, not RETURNING: that needs SQLite 3.35, older than some systems' own.
        cursor = await self.db.execute(sql, params)
        if cursor.lastrowid is None:  # pragma: no cover - an INSERT always sets it
            raise FatalError("the journal did not record the row")
        return cursor.lastrowid

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT.

        IMMEDIATE takes SQLite's write lock up front, so a reader process that
        writes (`retry`) waits its busy timeout instead of failing on upgrade.
        """
        try:
            await self.db.execute("BEGIN IMMEDIATE")
            yield
            await self.db.execute("COMMIT")
        except BaseException:
            # aiosqlite runs calls in order, so this follows any cancelled
            # call still queued (a cancelled COMMIT still commits); "no
            # transaction is active" then means there is nothing to undo.
            with contextlib.suppress(sqlite3.OperationalError):
                await self.db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        await self.db.close()


#: A statement on a PostgreSQL journal's session unanswered by then is a lost database
#: (the pass ends, exit 3, rather than waiting for ever). Far above any of its statements.
STATEMENT_TIMEOUT_S = 120.0

_PLACEHOLDER = re.compile(r"'[^']*'|\?")


def numbered(sql: str) -> str:
    """`sql` with each `?` outside string literals replaced by `$1`, `$2`, ... (pure)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


def changed_rows(status: str) -> int:
    """The row count of an asyncpg command status such as `UPDATE 3` (0 when none)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDatabase:
    """An asyncpg connection whose search path is the journal's schema.

    asyncpg refuses a statement while another runs on the connection, so
    statements take turns under a lock; as on SQLite, a statement of another
    caller may run between those of a transaction (the `Journal` keeps its
    writes apart with a lock of its own).
    """

    dialect = POSTGRES

    def __init__(self, connection: asyncpg.Connection, *, where: str, url: str) -> None:
        import asyncpg

        self.connection = connection
        self._turn = asyncio.Lock()
        self._where = where
        self._url = url
        self._errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._turn, self._failures():
            return list(await self.connection.fetch(numbered(sql), *params))

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._turn, self._failures():
            row: Row | None = await self.connection.fetchrow(numbered(sql), *params)
            return row

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._turn, self._failures():
            status = await self.connection.execute(numbered(sql), *params)
        return changed_rows(status)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._turn, self._failures():
            new_id: int = await self.connection.fetchval(numbered(sql) + " RETURNING id", *params)
        return new_id

    @contextlib.asynccontextmanager
    async def _failures(self) -> AsyncIterator[None]:
        """A statement the server (or the link to it) failed, or left unanswered, is fatal.

        One line, the DSN masked.
        """
        from syncengine.journal.pg_connection import scrub

        try:
            async with asyncio.timeout(STATEMENT_TIMEOUT_S):
                yield
        except TimeoutError:
            raise FatalError(
                f"journal {self._where}: the database did not answer within"
                f" {STATEMENT_TIMEOUT_S:g} s"
            ) from None
        except self._errors as exc:
            detail = scrub(f"{type(exc).__name__}: {exc}", self._url)
            raise FatalError(
                f"journal {self._where}: the database failed: {detail}"[:400]
            ) from None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.execute("BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.execute("ROLLBACK"))
            raise
        await self.execute("COMMIT")

    async def close(self) -> None:
        """Close the session (a server that does not answer is left behind after 5 s)."""
        try:
            await self.connection.close(timeout=5)
        except Exception:  # noqa: BLE001 - a dead link: nothing left to close cleanly
            self.connection.terminate()
