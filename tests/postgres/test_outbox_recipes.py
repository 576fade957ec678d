"""The README's outbox recipes, run as written against a real server.

Each test creates the recipe in a schema of its own (through `search_path`),
then checks the property the README promises: rows reach the feed in commit
order, so a transaction that took a smaller cursor and commits later is not
skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncengine.model import Change, Operation
from syncengine.sources.postgres_table import PostgresTableSource
from syncengine.sources.records import RecordDefaults
from tests.postgres.conftest import DSN, with_query

pytestmark = pytest.mark.postgres

DEFAULTS = RecordDefaults("Contacts", Operation.UPSERT, ())
WAIT_S = 3.0

#: Recommended: a commit-ordered cursor from a single-row counter (README text).
COUNTER_RECIPE = """
CREATE TABLE customers (
    customer_id bigint PRIMARY KEY,
    crm_id      text,
    email       text NOT NULL,
    last_name   text NOT NULL
);

CREATE TABLE crm_outbox (
    seq         bigint PRIMARY KEY,
    id          text,
    "Email"     text,
    "Last_Name" text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE crm_outbox_counter (value bigint NOT NULL);
INSERT INTO crm_outbox_counter VALUES (0);

CREATE FUNCTION crm_outbox_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    UPDATE crm_outbox_counter SET value = value + 1 RETURNING value INTO next_seq;
    INSERT INTO crm_outbox (seq, id, "Email", "Last_Name")
    VALUES (next_seq, NEW.crm_id, NEW.email, NEW.last_name);
    RETURN NULL;
END $$;
CREATE TRIGGER customers_to_crm AFTER INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION crm_outbox_capture();

CREATE FUNCTION crm_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_changes', '');
    RETURN NULL;
END $$;
CREATE TRIGGER crm_outbox_notify AFTER INSERT ON crm_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_notify();
"""

#: Alternative: writers never wait; the view shows rows below the xact horizon (README text).
HORIZON_RECIPE = """
CREATE TABLE crm_outbox (
    xact        xid8   NOT NULL DEFAULT pg_current_xact_id(),
    n           bigint GENERATED ALWAYS AS IDENTITY,
    id          text,
    "Email"     text,
    "Last_Name" text
);
CREATE INDEX crm_outbox_cursor ON crm_outbox
    (((lpad(xact::text, 20, '0') || lpad(n::text, 19, '0')) COLLATE "C"));
CREATE VIEW crm_outbox_feed AS
    SELECT (lpad(xact::text, 20, '0') || lpad(n::text, 19, '0')) COLLATE "C" AS cursor,
           id, "Email", "Last_Name"
    FROM crm_outbox
    WHERE xact < pg_snapshot_xmin(pg_current_snapshot());
"""


@pytest.fixture
async def schema(pg: asyncpg.Connection, unique: str) -> AsyncIterator[str]:
    """A fresh schema, dropped with everything in it after the test."""
    name = f"outbox_{unique}"
    await pg.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        await pg.execute(f'DROP SCHEMA "{name}" CASCADE')


async def writer(schema: str) -> asyncpg.Connection:
    """A connection whose unqualified names resolve in `schema`."""
    return await asyncpg.connect(with_query(DSN, f"options=-csearch_path%3D{schema}"))


def emails(batches: list[list[Change]]) -> list[str]:
    """The Email of every change, in feed order."""
    return [str(change.record["Email"]) for batch in batches for change in batch]


async def test_counter_recipe_feeds_changes_in_commit_order(
    pg: asyncpg.Connection, schema: str
) -> None:
    """A later writer waits for the counter, so seq order is commit order; NOTIFY wakes the feed."""
    first, second = await writer(schema), await writer(schema)
    try:
        await first.execute(COUNTER_RECIPE)
        source = PostgresTableSource(
            DSN, f"{schema}.crm_outbox", "seq", DEFAULTS, channel="crm_changes"
        )
        feed = source.follow(None, poll_interval_s=30.0)
        async with contextlib.aclosing(feed):
            pending = asyncio.ensure_future(anext(feed))
            slow = first.transaction()
            await slow.start()
            await first.execute("INSERT INTO customers VALUES (1, NULL, 'a@x.io', 'A')")
            fast = asyncio.ensure_future(
                second.execute("INSERT INTO customers VALUES (2, NULL, 'b@x.io', 'B')")
            )
            done, _ = await asyncio.wait({fast, pending}, timeout=0.2)
            assert not done  # the second writer waits for the first to end; nothing is visible
            await slow.commit()
            async with asyncio.timeout(WAIT_S):
                await fast
                batches = [await pending]
                while sum(map(len, batches)) < 2:
                    batches.append(await anext(feed))
    finally:
        await first.close()
        await second.close()
    changes = [[item for item in batch if isinstance(item, Change)] for batch in batches]
    assert emails(changes) == ["a@x.io", "b@x.io"]
    assert [c.positions[0].resume_after for batch in changes for c in batch] == [1, 2]
    assert changes[0][0].key == "Contacts:Email=a@x.io"


async def test_horizon_recipe_holds_back_rows_until_older_writers_end(
    pg: asyncpg.Connection, schema: str
) -> None:
    """A committed row stays out of the view while an older transaction is open, then both come."""
    older, newer = await writer(schema), await writer(schema)
    try:
        await older.execute(HORIZON_RECIPE)
        source = PostgresTableSource(DSN, f"{schema}.crm_outbox_feed", "cursor", DEFAULTS)
        slow = older.transaction()
        await slow.start()
        await older.execute("""INSERT INTO crm_outbox (id, "Email") VALUES (NULL, 'a@x.io')""")
        await newer.execute("""INSERT INTO crm_outbox (id, "Email") VALUES (NULL, 'b@x.io')""")
        held_back = [item async for batch in source.read(None) for item in batch]
        await slow.commit()
        after = []
        for _ in range(100):  # another session's open transaction may hold the horizon briefly
            after = [item async for batch in source.read(None) for item in batch]
            if len(after) == 2:
                break
            await asyncio.sleep(0.03)
    finally:
        await older.close()
        await newer.close()
    assert held_back == []
    changes = [item for item in after if isinstance(item, Change)]
    assert emails([changes]) == ["a@x.io", "b@x.io"]
    cursors = [str(change.positions[0].resume_after) for change in changes]
    assert cursors == sorted(cursors)
    assert all(len(cursor) == 39 for cursor in cursors)
