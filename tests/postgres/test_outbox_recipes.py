"""The README's outbox recipes, taken from the README and run against a real server.

Each test creates the recipe in a schema of its own (through `search_path`),
then checks the property the README promises. The counter recipe: rows reach
the feed in commit order, so a transaction that took a smaller cursor and
commits later is not skipped. The keys recipe: whatever order transactions
take their ids and commit in, the last change read for every customer
carries its latest committed values, and nothing is shown before it is safe.
Both: a customer deleted from the source table is deleted from the CRM by a
real `syncengine run` against the simulator, found by its source key.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from syncengine.model import Change, Operation
from syncengine.sim.server import SimHandle
from syncengine.sources.postgres_table import PostgresTableSource
from syncengine.sources.records import RecordDefaults
from tests.integration.conftest import admin_get, run_cli
from tests.postgres.conftest import DSN, with_query

pytestmark = pytest.mark.postgres

#: As `[crm] module = "Contacts"`, `operation = "upsert"` and `[source] key = "customer_id"`.
DEFAULTS = RecordDefaults("Contacts", Operation.UPSERT, (), key_field="customer_id")
#: How long a read waits for rows: the keys recipe shows none while any transaction
#: older than them is open anywhere on the server, and other tests may hold one briefly.
WAIT_S = 30.0

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sql(heading: str) -> str:
    """The first SQL block after `heading` in the README: the recipe exactly as a user reads it."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```sql\n(.*?)```", text[text.index(heading) :], re.DOTALL)
    assert found is not None, f"no SQL block after {heading!r} in the README"
    return found.group(1)


#: Recommended: a commit-ordered cursor from a single-row counter.
COUNTER_RECIPE = readme_sql("**Recommended: a commit-ordered cursor")
#: Writers never wait: an outbox of keys, its view joining the live row.
KEYS_RECIPE = readme_sql("**When writers must never wait: an outbox of keys")
#: The keys recipe reuses the counter recipe's customers table.
_CUSTOMERS = re.search(r"CREATE TABLE customers \(.*?\n\);", COUNTER_RECIPE, re.DOTALL)
assert _CUSTOMERS is not None
CUSTOMERS = _CUSTOMERS.group(0)


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
            DSN,
            f"{schema}.crm_outbox",
            "seq",
            DEFAULTS,
            channel="crm_changes",
            exclude_columns=("created_at",),
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
    assert changes[0][0].key == "Contacts/1"  # the source key, never a field
    assert changes[0][0].record == {"Email": "a@x.io", "Last_Name": "A"}  # created_at not sent


async def read_all(source: PostgresTableSource, expected: int) -> list[Change]:
    """The whole feed once `expected` changes show (another session may hold the horizon)."""
    changes: list[Change] = []
    for _ in range(int(WAIT_S / 0.03)):
        changes = [
            item async for batch in source.read(None) for item in batch if isinstance(item, Change)
        ]
        if len(changes) >= expected:
            break
        await asyncio.sleep(0.03)
    return changes


async def source_count(source: PostgresTableSource) -> int:
    """How many changes the feed shows now."""
    return sum([len(batch) async for batch in source.read(None)])


async def test_keys_recipe_ends_every_customer_on_its_latest_committed_values(
    pg: asyncpg.Connection, schema: str
) -> None:
    """A updates 1, B updates 2 and commits, A updates 2 and commits: A's value for 2 wins.

    A takes its transaction id before B, so B's change is read after A's
    though A committed last: the view joins the live row, so every change
    read for customer 2 carries A's committed value. A's uncommitted
    transaction holds the horizon, so B's committed change waits for it.
    """
    a, b = await writer(schema), await writer(schema)
    try:
        await a.execute(f"{CUSTOMERS}\n{KEYS_RECIPE}")
        await a.execute(
            "INSERT INTO customers VALUES"
            " (1, NULL, 'one@x.io', 'One'), (2, NULL, 'two@x.io', 'Two')"
        )
        source = PostgresTableSource(DSN, f"{schema}.crm_changes_feed", "cursor", DEFAULTS)
        inserted = await read_all(source, 2)
        slow = a.transaction()
        await slow.start()
        await a.execute("UPDATE customers SET last_name = 'A1' WHERE customer_id = 1")
        await b.execute("UPDATE customers SET last_name = 'B2' WHERE customer_id = 2")
        held_back = await source_count(source)
        await a.execute("UPDATE customers SET last_name = 'A2' WHERE customer_id = 2")
        await slow.commit()
        changes = await read_all(source, 5)
        committed = {
            row["email"]: row["last_name"] for row in await a.fetch("SELECT * FROM customers")
        }
    finally:
        await a.close()
        await b.close()
    assert len(inserted) == 2
    assert held_back == 2  # B committed, but A (older) is still open: B's change is not shown
    assert committed == {"one@x.io": "A1", "two@x.io": "A2"}
    assert len(changes) == 5
    last_read = {change.record["Email"]: change.record["Last_Name"] for change in changes}
    assert last_read == committed
    cursors = [str(change.positions[0].resume_after) for change in changes]
    assert cursors == sorted(cursors)
    assert all(len(cursor) == 39 for cursor in cursors)


def recipe_config(folder: Path, sim: SimHandle, table: str, cursor: str) -> Path:
    """A `run` config for a recipe's feed, with the config lines the README gives it."""
    path = folder / "outbox.toml"
    path.write_text(
        f"""
[source]
type = "postgres"
dsn = "{DSN}"
table = "{table}"
cursor = "{cursor}"
key = "customer_id"
{'exclude_columns = ["created_at"]' if cursor == "seq" else ""}

[crm]
api_domain = "{sim.base_url}"
accounts_url = "{sim.accounts_url}"
client_id = "demo-client"
client_secret = "${{SE_TEST_SECRET}}"
refresh_token = "${{SE_TEST_REFRESH}}"
module = "Contacts"
operation = "upsert"

[journal]
path = "journal.db"
""",
        encoding="utf-8",
    )
    return path


async def crm_contacts(sim: SimHandle) -> dict[str, str]:
    """The simulator's Contacts: Email -> Last_Name."""
    held = (await admin_get(sim, "records?module=Contacts"))["Contacts"]
    return {record["fields"]["Email"]: record["fields"]["Last_Name"] for record in held.values()}


async def crm_id_of(sim: SimHandle, email: str) -> str:
    """The id of the simulator's Contact with `email`."""
    held = (await admin_get(sim, "records?module=Contacts"))["Contacts"]
    (crm_id,) = [key for key, record in held.items() if record["fields"]["Email"] == email]
    return str(crm_id)


async def run_ok(config: Path, folder: Path) -> None:
    result = await run_cli("run", "-c", str(config), cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]


async def shown(connection: asyncpg.Connection, table: str, count: int) -> None:
    """Waits until `table` shows `count` rows (the keys recipe hides rows behind the horizon)."""
    for _ in range(int(WAIT_S / 0.03)):
        if await connection.fetchval(f"SELECT count(*) FROM {table}") >= count:
            return
        await asyncio.sleep(0.03)
    raise AssertionError(f"{table} never showed {count} rows")


@pytest.mark.parametrize("recipe", ["counter", "keys"])
async def test_a_deleted_customer_is_deleted_from_the_crm(
    pg: asyncpg.Connection, schema: str, sim: SimHandle, tmp_path: Path, recipe: str
) -> None:
    """Customers upserted by one run; then one deleted (with no CRM id in the table,
    so by its source key), one updated, one deleted after its CRM id was written
    back: the next run leaves the CRM holding exactly the live customers."""
    connection = await writer(schema)
    try:
        if recipe == "counter":
            await connection.execute(COUNTER_RECIPE)
            table, cursor = f"{schema}.crm_outbox", "seq"
        else:
            await connection.execute(f"{CUSTOMERS}\n{KEYS_RECIPE}")
            table, cursor = f"{schema}.crm_changes_feed", "cursor"
        config = recipe_config(tmp_path, sim, table, cursor)
        await connection.execute(
            "INSERT INTO customers VALUES (1, NULL, 'one@x.io', 'One'),"
            " (2, NULL, 'two@x.io', 'Two'), (3, NULL, 'three@x.io', 'Three')"
        )
        await shown(connection, table, 3)
        await run_ok(config, tmp_path)
        assert await crm_contacts(sim) == {
            "one@x.io": "One",
            "two@x.io": "Two",
            "three@x.io": "Three",
        }
        three = await crm_id_of(sim, "three@x.io")
        await connection.execute("UPDATE customers SET crm_id = $1 WHERE customer_id = 3", three)
        await connection.execute("DELETE FROM customers WHERE customer_id = 1")
        await connection.execute("UPDATE customers SET last_name = 'Deux' WHERE customer_id = 2")
        await connection.execute("DELETE FROM customers WHERE customer_id = 3")
        await shown(connection, table, 7)
        await run_ok(config, tmp_path)
    finally:
        await connection.close()
    assert await crm_contacts(sim) == {"two@x.io": "Deux"}
    # The deletes unmapped their keys; the update went to the record key 2 maps to.
    listed = await run_cli("ids", "-c", str(config), "--csv", cwd=tmp_path)
    two = await crm_id_of(sim, "two@x.io")
    assert listed.stdout == f"module,key,id\nContacts,2,{two}\n", listed.stderr
