"""Tests for the PostgreSQL feed (sources/postgres_table.py) against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator

import asyncpg
import pytest
from structlog.testing import capture_logs

from syncengine.errors import ConfigError, FatalError
from syncengine.model import BadInput, Change, Checkpoint, Operation
from syncengine.sources.base import Item
from syncengine.sources.postgres_table import PostgresTableSource
from syncengine.sources.records import RecordDefaults
from tests.postgres.conftest import DSN, with_query

pytestmark = pytest.mark.postgres

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())
WAIT_S = 3.0
PASSWORD = "s3cret-Pa55"

Feed = AsyncGenerator[list[Item], None]


async def next_batch(feed: Feed, timeout_s: float = WAIT_S) -> list[Item]:
    """The feed's next batch, failing the test after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        return await anext(feed)


async def collect(source: PostgresTableSource, start: Checkpoint | None = None) -> list[Item]:
    """Every item `read` yields from `start`, batches flattened."""
    return [item async for batch in source.read(start) for item in batch]


def cursors(items: list[Item]) -> list[tuple[int, int | str]]:
    """(ordinal, cursor) of each change."""
    return [
        (item.positions[0].ordinal, item.positions[0].resume_after)
        for item in items
        if isinstance(item, Change)
    ]


async def simple_table(pg: asyncpg.Connection, table: str, *seqs: int) -> None:
    """`table` (seq bigint key, id text, Company text) holding a row per seq."""
    await pg.execute(f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, "Company" text)')
    for seq in seqs:
        await pg.execute(f'INSERT INTO "{table}" VALUES ($1, $2, $3)', seq, str(seq), f"C{seq}")


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_read_pages_from_a_checkpoint(pg: asyncpg.Connection, table: str) -> None:
    """read() pages in cursor order after the checkpoint, ordinals from 0; estimate counts."""
    await simple_table(pg, table, 1, 2, 3, 4, 5)
    source = PostgresTableSource(DSN, table, "seq", DEFAULTS, batch_items=2)
    start = Checkpoint(resume_after=2, display=2)
    batches = [batch async for batch in source.read(start)]
    assert [len(batch) for batch in batches] == [2, 1]
    items = [item for batch in batches for item in batch]
    assert cursors(items) == [(0, 3), (1, 4), (2, 5)]
    assert items[0].record == {"id": "3", "Company": "C3"}  # type: ignore[union-attr]
    assert source.estimate_total(start) == 3
    assert source.estimate_total(None) == 5


async def test_column_types_become_json_values(pg: asyncpg.Connection, table: str) -> None:
    """Numeric, timestamps, dates, UUIDs, jsonb and arrays convert to what Zoho accepts."""
    await pg.execute(
        f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, price numeric,'
        " count numeric, at timestamptz, local_at timestamp, day date, ref uuid,"
        " owner jsonb, tags text[], ok boolean, span interval)"
    )
    await pg.execute(
        f"INSERT INTO \"{table}\" VALUES (1, '7', 12.50, 3.000, '2024-05-01 09:30:15.9+02',"
        " '2024-05-01 09:30:15', '2024-05-01', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',"
        " '{\"id\": \"42\"}', '{x,y}', true, '1 day')"
    )
    (item,) = await collect(PostgresTableSource(DSN, table, "seq", DEFAULTS))
    assert isinstance(item, Change)
    assert item.record == {
        "id": "7",
        "price": 12.5,
        "count": 3,
        "at": "2024-05-01T07:30:15+00:00",
        "local_at": "2024-05-01T09:30:15+00:00",
        "day": "2024-05-01",
        "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "owner": {"id": "42"},
        "tags": ["x", "y"],
        "ok": True,
        "span": "1 day, 0:00:00",
    }


async def test_nulls_clear_fields_and_override_columns_apply(
    pg: asyncpg.Connection, table: str
) -> None:
    """NULL is sent as null, _module/_operation override per row, bytea is bad input."""
    await pg.execute(
        f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, "Phone" text,'
        ' _module text, _operation text, "Photo" bytea)'
    )
    await pg.execute(
        f"INSERT INTO \"{table}\" VALUES (1, '5', NULL, 'Contacts', 'upsert', NULL),"
        " (2, '6', '555', NULL, NULL, '\\x00')"
    )
    first, second = await collect(PostgresTableSource(DSN, table, "seq", DEFAULTS))
    assert isinstance(first, Change)
    assert (first.module, first.operation) == ("Contacts", Operation.UPSERT)
    assert first.record == {"id": "5", "Phone": None, "Photo": None}
    assert isinstance(second, BadInput)
    assert "bytea" in second.reason


async def test_schema_qualified_mixed_case_names_are_quoted(
    pg: asyncpg.Connection, unique: str
) -> None:
    """`schema.Table` and a mixed-case cursor are read exactly as written."""
    schema = f"s_{unique}"
    await pg.execute(f'CREATE SCHEMA "{schema}"')
    try:
        await pg.execute(f'CREATE TABLE "{schema}"."Changes" ("Seq" bigint, id text, "A" int)')
        await pg.execute(f'INSERT INTO "{schema}"."Changes" VALUES (1, \'1\', 2)')
        source = PostgresTableSource(DSN, f"{schema}.Changes", "Seq", DEFAULTS)
        assert cursors(await collect(source)) == [(0, 1)]
        assert source.source_id == f"postgres:127.0.0.1/test#{schema}.Changes.Seq"
    finally:
        await pg.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_unsafe_names_are_refused_before_any_sql() -> None:
    """A table, cursor or channel that is not an identifier is a ValueError, never SQL."""
    for table, cursor, channel in [
        ('x"; DROP TABLE y; --', "seq", None),
        ("t", "seq desc", None),
        ("t", "seq", "a b"),
    ]:
        with pytest.raises(ValueError, match="not an SQL identifier"):
            PostgresTableSource(DSN, table, cursor, DEFAULTS, channel=channel)


async def test_notify_wakes_follow_well_before_the_poll(
    pg: asyncpg.Connection, table: str, unique: str
) -> None:
    """With a channel, a row inserted and NOTIFYed is yielded in far less than the poll interval."""
    await simple_table(pg, table, 1)
    channel = f"ch_{unique}"
    source = PostgresTableSource(DSN, table, "seq", DEFAULTS, channel=channel)
    feed = source.follow(None, poll_interval_s=30.0)
    async with contextlib.aclosing(feed):
        assert cursors(await next_batch(feed)) == [(0, 1)]
        pending = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.1)  # the feed is now waiting
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with pg.transaction():
            await pg.execute(f"INSERT INTO \"{table}\" VALUES (2, '2', NULL)")
            await pg.execute("SELECT pg_notify($1, '')", channel)
        async with asyncio.timeout(WAIT_S):
            items = await pending
        latency_s = loop.time() - started
    assert cursors(items) == [(1, 2)]
    assert latency_s < 0.5


async def test_follow_polls_without_a_channel(pg: asyncpg.Connection, table: str) -> None:
    """Without a channel, rows inserted later come at the next poll."""
    await simple_table(pg, table)
    feed = PostgresTableSource(DSN, table, "seq", DEFAULTS).follow(None, poll_interval_s=0.05)
    async with contextlib.aclosing(feed):
        pending = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.1)
        assert not pending.done()
        await pg.execute(f"INSERT INTO \"{table}\" VALUES (1, '1', NULL), (2, '2', NULL)")
        async with asyncio.timeout(WAIT_S):
            items = await pending
    assert cursors(items) == [(0, 1), (1, 2)]


async def test_follow_reconnects_after_the_server_drops_it(
    pg: asyncpg.Connection, table: str, unique: str
) -> None:
    """pg_terminate_backend on the feed's connection: it reconnects and loses nothing."""
    await simple_table(pg, table, 1)
    app = f"feed_{unique}"
    source = PostgresTableSource(with_query(DSN, f"application_name={app}"), table, "seq", DEFAULTS)
    feed = source.follow(None, poll_interval_s=0.05)
    async with contextlib.aclosing(feed):
        assert cursors(await next_batch(feed)) == [(0, 1)]
        with capture_logs() as logs:
            killed = await pg.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                app,
            )
            await pg.execute(f"INSERT INTO \"{table}\" VALUES (2, '2', NULL)")
            items = await next_batch(feed)
    assert killed == 1
    assert cursors(items) == [(1, 2)]
    assert [entry["event"] for entry in logs] == ["source.reconnect"]


async def test_follow_of_a_missing_table_raises_instead_of_retrying(table: str) -> None:
    """A table that does not exist is a ConfigError: reconnecting cannot fix it."""
    feed = PostgresTableSource(DSN, table, "seq", DEFAULTS).follow(None, poll_interval_s=0.05)
    async with contextlib.aclosing(feed):
        with pytest.raises(ConfigError, match=f"{table}.*UndefinedTableError"):
            await next_batch(feed)


async def test_cancelling_a_waiting_follow_releases_its_connection(
    pg: asyncpg.Connection, table: str, unique: str
) -> None:
    """Cancelling the task waiting on a quiet feed ends it promptly and closes the connection."""
    await simple_table(pg, table, 1)
    app = f"feed_{unique}"
    source = PostgresTableSource(
        with_query(DSN, f"application_name={app}"), table, "seq", DEFAULTS, channel=f"c_{unique}"
    )
    feed = source.follow(None, poll_interval_s=30.0)
    await next_batch(feed)
    pending = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0.05)
    pending.cancel()
    async with asyncio.timeout(1.0):
        with pytest.raises(asyncio.CancelledError):
            await pending
    await feed.aclose()
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    for _ in range(50):  # the server notices the goodbye within milliseconds
        if await pg.fetchval(count, app) == 0:
            break
        await asyncio.sleep(0.01)
    assert await pg.fetchval(count, app) == 0


async def test_password_never_appears_in_errors_or_logs(table: str) -> None:
    """Unreachable server, unknown database: errors and reconnect logs redact the password."""
    refused = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/test"
    source = PostgresTableSource(refused, table, "seq", DEFAULTS, connect_timeout_s=2)
    with pytest.raises(FatalError) as fatal:
        await collect(source)
    assert PASSWORD not in str(fatal.value)
    assert "postgres:***@127.0.0.1" in str(fatal.value)
    assert source.estimate_total(None) is None

    wrong_db = DSN.replace("postgres@", f"postgres:{PASSWORD}@").rsplit("/", 1)[0] + "/nodb_x"
    with pytest.raises(ConfigError) as config_error:
        await collect(PostgresTableSource(wrong_db, table, "seq", DEFAULTS))
    assert PASSWORD not in str(config_error.value)
    assert "InvalidCatalogNameError" in str(config_error.value)

    feed = source.follow(None, poll_interval_s=0.05)
    with capture_logs() as logs:
        pending = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.2)  # the first reconnect is logged at once, retried after 0.5 s
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
    await feed.aclose()
    assert logs
    assert logs[0]["event"] == "source.reconnect"
    assert PASSWORD not in repr(logs)
    assert PASSWORD not in repr(source)


def nested_json(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


async def test_values_json_cannot_carry_fail_their_row_only(
    pg: asyncpg.Connection, table: str
) -> None:
    """Big numerics, NaN, infinities, far dates and deep jsonb are BAD_INPUT; the feed goes on."""
    await pg.execute(
        f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, n numeric, f float8,'
        " day date, at timestamptz, doc jsonb)"
    )
    rows = [
        (1, "ok1", "1", None, None, None, None),
        (2, "big", str(2**70), None, None, None, None),
        (3, "nan", "NaN", None, None, None, None),
        (4, "inf", None, "Infinity", None, None, None),
        (5, "far", None, None, "10000-01-01", None, None),
        (6, "bc", None, None, None, "4713-01-01 00:00+00 BC", None),
        (7, "deep", None, None, None, None, nested_json(300)),
        (8, "deeper", None, None, None, None, nested_json(1100)),
        (9, "ok9", "2", "1.5", "infinity", "2024-05-01 09:30+02", nested_json(3)),
    ]
    for row in rows:
        await pg.execute(
            f'INSERT INTO "{table}" VALUES ($1, $2, $3::text::numeric, $4::text::float8,'
            " $5::text::date, $6::text::timestamptz, $7::text::jsonb)",
            *row,
        )
    items = await collect(PostgresTableSource(DSN, table, "seq", DEFAULTS))
    bad = {item.position.display: item.reason for item in items if isinstance(item, BadInput)}
    assert sorted(bad) == [2, 3, 4, 5, 6, 7, 8]
    assert "column n" in bad[2]
    assert "beyond 64 bits" in bad[2]
    assert "column f" in bad[4]
    assert "column day" in bad[5]
    assert "column at" in bad[6]
    assert "nested deeper than 64 levels" in bad[7]
    assert "column doc" in bad[8]
    good = [item for item in items if isinstance(item, Change)]
    assert [item.record["id"] for item in good] == ["ok1", "ok9"]
    assert good[1].record == {
        "id": "ok9",
        "n": 2,
        "f": 1.5,
        "day": "9999-12-31",
        "at": "2024-05-01T07:30:00+00:00",
        "doc": {"a": {"a": {"a": 1}}},
    }


async def test_a_sequence_filled_cursor_is_refused_unless_stated_commit_ordered(
    pg: asyncpg.Connection, table: str
) -> None:
    """bigserial and identity cursors skip rows under concurrent writers: refused, naming why."""
    await pg.execute(f'CREATE TABLE "{table}" (seq bigserial PRIMARY KEY, id text, n int)')
    await pg.execute(f"INSERT INTO \"{table}\" (id, n) VALUES ('1', 1)")
    with pytest.raises(ConfigError, match=r"filled by a sequence .*The trap: reading by an"):
        await collect(PostgresTableSource(DSN, table, "seq", DEFAULTS))
    follow = PostgresTableSource(DSN, table, "seq", DEFAULTS).follow(None, poll_interval_s=0.05)
    with pytest.raises(ConfigError, match="cursor_commit_ordered"):
        await next_batch(follow)
    stated = PostgresTableSource(DSN, table, "seq", DEFAULTS, cursor_commit_ordered=True)
    assert len(await collect(stated)) == 1
    await pg.execute(f'ALTER TABLE "{table}" ADD COLUMN k bigint GENERATED ALWAYS AS IDENTITY')
    with pytest.raises(ConfigError, match=r"\(identity\)"):
        await collect(PostgresTableSource(DSN, f"public.{table}", "k", DEFAULTS))
