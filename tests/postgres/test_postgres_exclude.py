"""`[source] exclude_columns` on a PostgreSQL feed, against a real server.

The README's outbox has a `created_at` column that is not a CRM field: named
in `exclude_columns` it is read but never sent. A name that is not a column
of the table or view is refused when the feed opens, by `read` and `follow`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from syncengine.errors import ConfigError
from syncengine.model import Change, Operation
from syncengine.sim.server import SimHandle
from syncengine.sources.base import Item
from syncengine.sources.postgres_table import PostgresTableSource
from syncengine.sources.records import RecordDefaults
from tests.integration.conftest import FIRST_ID, run_cli, seed_leads, sim_leads
from tests.postgres.conftest import DSN
from tests.postgres.test_postgres_daemon import postgres_daemon_config

pytestmark = pytest.mark.postgres

DEFAULTS = RecordDefaults("Leads", Operation.UPDATE, ())


async def outbox(pg: asyncpg.Connection, table: str) -> None:
    """An outbox with a timestamp, a mixed-case field and a bytea column beside the fields."""
    await pg.execute(
        f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, "Company" text,'
        ' created_at timestamptz NOT NULL DEFAULT now(), "Raw" bytea)'
    )
    await pg.execute(
        f'INSERT INTO "{table}" (seq, id, "Company", "Raw") VALUES'
        f" (1, '{FIRST_ID}', 'Acme', '\\x00'), (2, '{FIRST_ID + 1}', 'Initech', NULL)"
    )


async def collect(source: PostgresTableSource) -> list[Item]:
    return [item async for batch in source.read(None) for item in batch]


async def test_excluded_columns_are_not_in_the_records(pg: asyncpg.Connection, table: str) -> None:
    """Neither created_at nor the bytea column is sent (the bytea no longer fails its row)."""
    await outbox(pg, table)
    source = PostgresTableSource(DSN, table, "seq", DEFAULTS, exclude_columns=("created_at", "Raw"))
    items = await collect(source)
    assert all(isinstance(item, Change) for item in items)
    assert [item.record for item in items if isinstance(item, Change)] == [
        {"id": str(FIRST_ID), "Company": "Acme"},
        {"id": str(FIRST_ID + 1), "Company": "Initech"},
    ]
    whole = await collect(PostgresTableSource(DSN, table, "seq", DEFAULTS))
    assert isinstance(whole[1], Change)
    assert "created_at" in whole[1].record


async def test_a_name_that_is_not_a_column_is_refused_at_open(
    pg: asyncpg.Connection, table: str
) -> None:
    """Quoted names are case-sensitive: "raw" is not the column "Raw"; read and follow refuse."""
    await outbox(pg, table)
    source = PostgresTableSource(DSN, table, "seq", DEFAULTS, exclude_columns=("raw",))
    with pytest.raises(
        ConfigError, match=rf"source\.exclude_columns: 'raw' is not a column of {table}"
    ):
        await collect(source)
    follow = source.follow(None, poll_interval_s=0.05)
    with pytest.raises(ConfigError, match=r"source\.exclude_columns: 'raw'"):
        async with asyncio.timeout(5):
            await anext(follow)


async def test_a_view_takes_exclusions_too(pg: asyncpg.Connection, table: str) -> None:
    """The columns are checked on what the view returns."""
    await outbox(pg, table)
    view = f"{table}_v"
    await pg.execute(
        f'CREATE VIEW "{view}" AS SELECT seq, id, "Company", created_at FROM "{table}"'
    )
    source = PostgresTableSource(DSN, view, "seq", DEFAULTS, exclude_columns=("created_at",))
    items = await collect(source)
    assert [item.record for item in items if isinstance(item, Change)] == [
        {"id": str(FIRST_ID), "Company": "Acme"},
        {"id": str(FIRST_ID + 1), "Company": "Initech"},
    ]
    refused = PostgresTableSource(DSN, view, "seq", DEFAULTS, exclude_columns=("Raw",))
    with pytest.raises(ConfigError, match="'Raw' is not a column"):
        await collect(refused)


def with_exclusions(config: Path, excluded: str) -> Path:
    config.write_text(
        config.read_text().replace(
            'cursor = "seq"', f'cursor = "seq"\nexclude_columns = {excluded}'
        )
    )
    return config


async def test_run_does_not_send_excluded_columns(
    pg: asyncpg.Connection, table: str, unique: str, sim: SimHandle, tmp_path: Path
) -> None:
    """A real `syncengine run`: the CRM receives the fields, not created_at."""
    await outbox(pg, table)
    await seed_leads(sim, 2)
    config = postgres_daemon_config(tmp_path, sim, table, f"c_{unique}")
    with_exclusions(config, '["created_at", "Raw"]')
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    leads = await sim_leads(sim)
    fields = [leads[str(FIRST_ID + n)]["fields"] for n in range(2)]
    assert [lead["Company"] for lead in fields] == ["Acme", "Initech"]
    assert not any("created_at" in lead or "Raw" in lead for lead in fields)


async def test_run_with_an_unknown_excluded_name_exits_2_with_one_line(
    pg: asyncpg.Connection, table: str, unique: str, sim: SimHandle, tmp_path: Path
) -> None:
    """Exit 2, one line naming the key and the column, nothing sent."""
    await outbox(pg, table)
    config = postgres_daemon_config(tmp_path, sim, table, f"c_{unique}")
    with_exclusions(config, '["createdat"]')
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "source.exclude_columns: 'createdat' is not a column" in lines[0]
    assert sim.state.stats.records_written == 0
