"""The PostgreSQL feed: a change table (or view) read in order of a cursor column.

`read` pages through `SELECT * FROM table WHERE cursor > $1 ORDER BY cursor
LIMIT n` to the current end, on one asyncpg connection. `follow` runs the
same pages, then waits: on LISTEN/NOTIFY when `channel` is set (a `NOTIFY`
after a commit wakes it at once), and in any case for at most the poll
interval, so a lost notification costs one interval, never a stall. A
dropped connection is reopened with doubling pauses (0.5 s up to 30 s);
nothing is lost, since the next page starts after the last cursor yielded.

The cursor column must be unique, increasing, integers or text, and indexed.
Every other column is a field: NULL sends JSON null (clears the field),
`_module` and `_operation` override the defaults per row, and values JSON
cannot carry are converted (`to_json_value`). Columns named in
`exclude_columns` are read but never sent (nor converted, so they cannot fail
a row); each must be a column of the table or view, checked when the feed is
opened. A position's `resume_after`
and `display` are both the cursor value. Table, cursor and channel are
identifiers checked against a strict pattern and double-quoted, so they are
case-sensitive: `Changes` is not `changes`.

The DSN may hold a password: errors and logs show it redacted
(`redact_dsn`), and the source id names only host, database, table and cursor.

Reading by an increasing sequence: the trap
-------------------------------------------
A sequence value is taken when a row is inserted, but the row becomes visible
when its transaction commits, and transactions do not commit in the order
they took their values. If T1 takes 41, T2 takes 42 and commits, and the feed
reads 42 now, its cursor passes 41; when T1 commits, row 41 is behind the
cursor and is never read. A `bigserial`/identity cursor is therefore unsafe
as soon as two transactions can write changes at the same time. Two sound
ways out (the README gives the SQL):

- Commit-ordered cursor: the trigger takes the next cursor value from a
  single-row counter (`UPDATE ... SET value = value + 1 RETURNING value`).
  The counter row stays locked until the transaction ends, so a transaction
  that took a smaller value has committed or rolled back before any larger
  value can be taken: the cursor order is the commit order. Cost: writers of
  changes serialize from their first change to their commit.
- An outbox of keys read behind the transaction horizon: the trigger
  records only the changed row's key, with `pg_current_xact_id()` and an
  identity; a view exposes, cursor on (xact id, identity), only the key rows
  whose xact id is below `pg_snapshot_xmin(pg_current_snapshot())` (every
  transaction below that horizon has ended, so no row can later appear
  behind the cursor), joined to the live row. The join matters: xact ids are
  fixed at a transaction's first write, not its commit, so an outbox of
  copied values read in this order could end on an older value; the live row
  is always the latest committed one. Cost: any long transaction in the
  cluster holds the feed back.

A settle delay (read only rows older than N seconds) narrows the window but
does not close it: a transaction may stay open longer than any delay.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import re
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import orjson
import structlog

from syncengine.errors import ConfigError, FatalError, SyncError
from syncengine.model import BadInput, Change, Checkpoint, Cursor, SourcePosition
from syncengine.sources.base import BATCH_ITEMS, Item, cursor_increases
from syncengine.sources.follow import check_poll_interval, reconnect_delay_s, wait_for_wake
from syncengine.sources.records import (
    MAX_NESTING_DEPTH,
    RecordDefaults,
    from_row,
    nested_deeper_than,
    too_deep_reason,
)

_log = structlog.get_logger(__name__)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PASSWORD_PARAMETER = re.compile(r"(?i)((?:^|&)password=)[^&]*")
_REDACTED = "***"
#: Connection-level trouble a reconnect can cure: the server went away or is
#: restarting, or the client's protocol state broke with it (an error the server
#: sent to an idle connection, such as the one `pg_terminate_backend` causes,
#: leaves asyncpg's connection unusable with an InternalClientError).
_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InternalClientError,
)
_CLOSE_TIMEOUT_S = 2.0
#: The column's sequence default (`nextval(...)`) or identity, or NULL.
_SEQUENCE_DEFAULT_SQL = """
SELECT CASE WHEN a.attidentity <> '' THEN 'identity'
            WHEN pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%'
            THEN pg_get_expr(d.adbin, d.adrelid) END
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass(quote_ident(split_part($1, '.', 1))
                   || CASE WHEN $1 LIKE '%.%' THEN '.' || quote_ident(split_part($1, '.', 2))
                      ELSE '' END)
  AND a.attname = $2 AND NOT a.attisdropped
"""


def redact_dsn(dsn: str) -> str:
    """`dsn` with its password (after `user:` or as `password=`) shown as `***`."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if parts.password is not None:
        user_info, _, hosts = netloc.rpartition("@")
        netloc = f"{user_info.split(':', 1)[0]}:{_REDACTED}@{hosts}"
    query = _PASSWORD_PARAMETER.sub(rf"\g<1>{_REDACTED}", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _passwords(dsn: str) -> list[str]:
    """The DSN's password as written and decoded, to scrub from error text."""
    parts = urlsplit(dsn)
    found = [parts.password] if parts.password else []
    found += parse_qs(parts.query).get("password", [])
    return [word for raw in found for word in {raw, unquote(raw)} if word]


def _feed_name(dsn: str) -> str:
    """`host/database` (with `:port` when not 5432) for the source id: no user, no password."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["localhost"])[0]
    if parts.port not in (None, 5432):
        host = f"{host}:{parts.port}"
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0]
    return f"{host}/{database or parts.username or ''}"


def quote_name(name: str) -> str:
    """`name` (optionally `schema.name`) double-quoted; raises ValueError for a non-identifier."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_NAME.fullmatch(part) for part in parts):
        raise ValueError(f"not an SQL identifier: {name!r}")
    return ".".join(f'"{part}"' for part in parts)


#: Integers JSON carries to the journal and the CRM: 64 bits (signed or unsigned).
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)
#: What PostgreSQL writes for the ends of time (DateStyle ISO) and what they become.
_ENDS_OF_TIME = {"infinity": "9999-12-31", "-infinity": "0001-01-01"}


class UnencodableValue(ValueError):
    """A column value JSON cannot carry as it is: its row becomes a `BadInput`."""


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A column value the driver could not turn into a Python value, and why."""

    reason: str


def to_json_value(value: object) -> object:
    """A column value as JSON can carry it, in the formats Zoho expects.

    Decimal becomes int when integral, else float; timestamps become ISO 8601
    with seconds and offset (`2024-05-01T09:30:00+00:00`; a timestamp without
    time zone is taken as UTC); dates `2024-05-01`; UUIDs and any other type
    their text. Arrays convert element by element; json/jsonb arrive decoded.
    Raises UnencodableValue for what JSON cannot carry faithfully: NaN and
    infinite numbers (the encoder would write null, clearing the field),
    integers beyond 64 bits, dates outside years 1 to 9999.
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float | Decimal):
        return _json_number(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.isoformat(timespec="seconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, _Undecodable):
        raise UnencodableValue(value.reason)
    if isinstance(value, UUID):
        return str(value)
    return str(value)


def _json_number(value: int | float | Decimal) -> int | float:
    """A number as JSON carries it; raises UnencodableValue when it cannot."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise UnencodableValue(f"the number {value} is not finite")
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise UnencodableValue(f"the number {value} is not finite")
    if isinstance(value, int) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        shown = (
            str(value)
            if len(str(value)) <= 30
            else f"{str(value)[:12]}...({len(str(value))} digits)"
        )
        raise UnencodableValue(f"the number {shown} is beyond 64 bits")
    return value


def _decode_json(text: str) -> object:
    """A json/jsonb value decoded, or `_Undecodable` (too deep for the decoder)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _Undecodable(f"json value cannot be decoded: {exc}")


def _decode_time(text: str) -> object:
    """A date or timestamp from PostgreSQL's ISO text, or `_Undecodable` outside years 1-9999.

    Read as text because the driver's own conversion raises for such values,
    which would fail the whole page instead of the one row.
    """
    try:
        return datetime.datetime.fromisoformat(_ENDS_OF_TIME.get(text, text))
    except ValueError:
        return _Undecodable(f"the time {text} is outside years 1 to 9999")


def _decode_date(text: str) -> object:
    value = _decode_time(text)
    return value.date() if isinstance(value, datetime.datetime) else value


class PostgresTableSource:
    """Rows of a PostgreSQL table or view after a cursor value, read through asyncpg."""

    def __init__(
        self,
        dsn: str,
        table: str,
        cursor: str,
        defaults: RecordDefaults,
        *,
        channel: str | None = None,
        cursor_commit_ordered: bool = False,
        exclude_columns: Sequence[str] = (),
        batch_items: int = BATCH_ITEMS,
        connect_timeout_s: float = 10.0,
    ) -> None:
        """Raises ValueError when `table`, `cursor` or `channel` is not an identifier."""
        self._table_sql = quote_name(table)
        self._cursor_sql = quote_name(cursor)
        if channel is not None:
            quote_name(channel)
        self.source_id = f"postgres:{_feed_name(dsn)}#{table}.{cursor}"
        self._dsn = dsn
        self._secrets = _passwords(dsn)
        self._table = table
        self._cursor = cursor
        self._channel = channel
        self._cursor_commit_ordered = cursor_commit_ordered
        self._excluded = tuple(exclude_columns)
        self._defaults = defaults.of_feed(self.source_id)
        self._batch_items = batch_items
        self._connect_timeout_s = connect_timeout_s
        where_next = f"WHERE {self._cursor_sql} > $1 ORDER BY {self._cursor_sql}"
        self._first_page = (
            f"SELECT * FROM {self._table_sql} WHERE {self._cursor_sql} IS NOT NULL"
            f" ORDER BY {self._cursor_sql} LIMIT $1"
        )
        self._next_page = f"SELECT * FROM {self._table_sql} {where_next} LIMIT $2"

    def __repr__(self) -> str:
        return f"PostgresTableSource({self.source_id!r})"

    async def read(self, start: Checkpoint | None) -> AsyncGenerator[list[Item], None]:
        """Pages of rows after `start`, to the current end; see `Source.read`.

        Raises ConfigError when the table, cursor or credentials are unusable,
        FatalError when the server cannot be reached or the connection drops.
        """
        last: Cursor | None = None if start is None else start.resume_after
        ordinal = 0
        connection = None
        try:
            connection = await self._connect()
            await self._refuse_sequence_cursor(connection)
            await self._refuse_unknown_exclusions(connection)
            while records := await self._fetch(connection, last):
                batch, last = self._convert(records, ordinal, last)
                ordinal += len(batch)
                yield batch
        except (asyncpg.PostgresError, asyncpg.InterfaceError, *_TRANSIENT) as exc:
            raise self._error(exc, connection) from None
        finally:
            await _close(connection)

    async def follow(
        self, start: Checkpoint | None, *, poll_interval_s: float
    ) -> AsyncGenerator[list[Item], None]:
        """Pages after `start`, then waits for NOTIFY or the poll interval; see `Source.follow`.

        Reconnects with backoff when the connection drops or the server is
        unreachable; raises ConfigError when the table, cursor or credentials
        are unusable (waiting cannot fix those).
        """
        check_poll_interval(poll_interval_s)
        last: Cursor | None = None if start is None else start.resume_after
        ordinal = 0
        failures = 0
        while True:
            connection = None
            wake = asyncio.Event()
            try:
                connection = await self._listen(wake)
                failures = 0
                while True:
                    records = await self._fetch(connection, last)
                    if not records:
                        await wait_for_wake(wake, poll_interval_s)
                        continue
                    batch, last = self._convert(records, ordinal, last)
                    ordinal += len(batch)
                    yield batch
            except (asyncpg.PostgresError, asyncpg.InterfaceError, *_TRANSIENT) as exc:
                error = self._error(exc, connection)
                if not isinstance(error, FatalError):
                    raise error from None
                failures += 1
                delay_s = reconnect_delay_s(failures)
                _log.warning(
                    "source.reconnect", source=self.source_id, error=str(error), delay_s=delay_s
                )
                await asyncio.sleep(delay_s)
            finally:
                await _close(connection)

    def estimate_total(self, start: Checkpoint | None) -> int | None:
        """Rows after `start`, by `count(*)`; None when the table cannot be read.

        Blocks for one short query; it runs on its own event loop in a worker
        thread, so it may be called from inside a running loop.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="syncengine.estimate") as pool:
            return pool.submit(asyncio.run, self._count(start)).result()

    async def _count(self, start: Checkpoint | None) -> int | None:
        condition = (
            f"{self._cursor_sql} IS NOT NULL" if start is None else f"{self._cursor_sql} > $1"
        )
        arguments = () if start is None else (start.resume_after,)
        connection = None
        try:
            connection = await self._connect()
            sql = f"SELECT count(*) FROM {self._table_sql} WHERE {condition}"
            return int(await connection.fetchval(sql, *arguments))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, *_TRANSIENT):
            return None
        finally:
            await _close(connection)

    async def _connect(self) -> Any:
        connection = await asyncpg.connect(
            self._dsn, timeout=self._connect_timeout_s, server_settings=_SESSION
        )
        try:
            for kind in ("json", "jsonb"):
                await connection.set_type_codec(
                    kind, schema="pg_catalog", encoder=_dumps, decoder=_decode_json
                )
            for kind, decode in _TIME_DECODERS.items():
                await connection.set_type_codec(
                    kind, schema="pg_catalog", encoder=str, decoder=decode, format="text"
                )
        except BaseException:
            await _close(connection)
            raise
        return connection

    async def _listen(self, wake: asyncio.Event) -> Any:
        """A connection whose notifications on the channel (and whose loss) set `wake`."""
        connection = await self._connect()
        try:
            connection.add_termination_listener(lambda *_: wake.set())
            await self._refuse_sequence_cursor(connection)
            await self._refuse_unknown_exclusions(connection)
            if self._channel is not None:
                await connection.add_listener(self._channel, lambda *_: wake.set())
        except BaseException:
            await _close(connection)
            raise
        return connection

    async def _refuse_sequence_cursor(self, connection: Any) -> None:
        """Raise ConfigError for a cursor filled by a sequence, unless stated commit-ordered.

        Sequence values are taken at insert and become visible at commit, in
        another order: reading by them skips rows for good (see the module
        docstring). A view's columns have no default and pass.
        """
        if self._cursor_commit_ordered:
            return
        default = await connection.fetchval(_SEQUENCE_DEFAULT_SQL, self._table, self._cursor)
        if default:
            raise ConfigError(
                f"{self.source_id}: source.cursor: {self._cursor} is filled by a sequence"
                f" ({default}), whose values commit out of order, so rows would be skipped;"
                ' see the README, "PostgreSQL change feeds" > "The trap: reading by an'
                ' increasing sequence", or set cursor_commit_ordered = true if writers'
                " already commit in cursor order"
            )

    async def _refuse_unknown_exclusions(self, connection: Any) -> None:
        """Raise ConfigError naming the first excluded name that is not a column.

        A misspelt name would otherwise leave the column it meant in every
        record sent. Names are quoted identifiers, so case matters.
        """
        if not self._excluded:
            return
        statement = await connection.prepare(f"SELECT * FROM {self._table_sql} LIMIT 0")
        columns = {attribute.name for attribute in statement.get_attributes()}
        for name in self._excluded:
            if name not in columns:
                raise ConfigError(
                    f"{self.source_id}: source.exclude_columns: {name!r} is not a column of"
                    f" {self._table}"
                )

    async def _fetch(self, connection: Any, last: Cursor | None) -> list[Sequence[Any]]:
        if last is None:
            records = await connection.fetch(self._first_page, self._batch_items)
        else:
            records = await connection.fetch(self._next_page, last, self._batch_items)
        return cast(list[Sequence[Any]], records)

    def _convert(
        self, records: list[Sequence[Any]], ordinal: int, last: Cursor | None
    ) -> tuple[list[Item], Cursor]:
        """Records to items; checks that cursor values are unique integers or text."""
        batch: list[Item] = []
        for record in records:
            row = dict(cast(Any, record).items())
            value = row.pop(self._cursor)
            for name in self._excluded:
                row.pop(name, None)
            self._check_cursor(value, last)
            last = value
            batch.append(self._item(row, SourcePosition(ordinal + len(batch), value, value)))
        assert last is not None  # records is not empty
        return batch, last

    def _item(self, row: dict[str, Any], position: SourcePosition) -> Change | BadInput:
        blobs = [name for name, value in row.items() if isinstance(value, bytes)]
        if blobs:
            record_id = row.get("id")
            return BadInput(
                position,
                f"column {blobs[0]} holds bytea, which JSON cannot carry",
                record_id=None if record_id is None else str(record_id),
            )
        record_id = row.get("id")
        try:
            record = {name: self._column_value(name, value) for name, value in row.items()}
        except UnencodableValue as exc:
            shown_id = (
                None if record_id is None or isinstance(record_id, _Undecodable) else record_id
            )
            return BadInput(
                position, str(exc), record_id=None if shown_id is None else str(shown_id)
            )
        return from_row(record, position, self._defaults)

    @staticmethod
    def _column_value(name: str, value: object) -> object:
        """`to_json_value`, with the column named in its error and a nesting limit."""
        if isinstance(value, dict | list) and nested_deeper_than(value, MAX_NESTING_DEPTH - 1):
            raise UnencodableValue(f"column {name}: {too_deep_reason()}")
        try:
            return to_json_value(value)
        except UnencodableValue as exc:
            raise UnencodableValue(f"column {name}: {exc}") from None

    def _check_cursor(self, value: object, last: Cursor | None) -> None:
        if not isinstance(value, int | str):
            raise ConfigError(
                f"{self.source_id}: source.cursor: {self._cursor} holds {type(value).__name__}"
                " values; the cursor must be integers or text"
            )
        if last is not None and not cursor_increases(last, value):
            raise ConfigError(
                f"{self.source_id}: source.cursor: {self._cursor} values are not unique and"
                f" increasing integers or text (at {value!r})"
            )

    def _error(self, exc: BaseException, connection: Any) -> SyncError:
        """FatalError for connection trouble (follow reconnects), ConfigError for the rest.

        The message names the redacted DSN and never the password.
        """
        if isinstance(exc, SyncError):
            return exc
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        where = f"{redact_dsn(self._dsn)} table {self._table} by {self._cursor}"
        lost = connection is not None and connection.is_closed()
        if isinstance(exc, _TRANSIENT) or lost:
            return FatalError(f"PostgreSQL feed {where}: connection failed: {text}")
        return ConfigError(f"PostgreSQL feed {where}: cannot read: {text}")

    async def check_reachable(self, *, timeout_s: float = 2.0) -> str | None:
        """Readiness: None when the server accepts a connection now, else a reason.

        One plain connection, opened and closed (no codecs: nothing is read).
        The reason names the exception type only: its text may hold the DSN.
        """
        connection = None
        try:
            connection = await asyncpg.connect(self._dsn, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure is a reason, whatever it is
            return f"PostgreSQL unreachable: {type(exc).__name__}"
        finally:
            await _close(connection)
        return None


#: Session settings that fix the text form of times: ISO, and UTC offsets.
_SESSION = {"DateStyle": "ISO, YMD", "TimeZone": "UTC"}
_TIME_DECODERS = {
    "date": _decode_date,
    "timestamp": _decode_time,
    "timestamptz": _decode_time,
}


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


async def _close(connection: Any) -> None:
    """Close `connection` politely, or drop it when the server does not answer."""
    if connection is None or connection.is_closed():
        return
    try:
        await connection.close(timeout=_CLOSE_TIMEOUT_S)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, *_TRANSIENT):
        connection.terminate()
