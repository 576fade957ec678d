"""`syncengine run` on a PostgreSQL change table: a pass, then another from the checkpoint."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson

from syncengine.sim.server import SimHandle
from tests.integration.conftest import FIRST_ID, run_cli, seed_leads, sim_leads
from tests.postgres.test_postgres_daemon import postgres_daemon_config


async def test_run_reads_the_table_from_its_checkpoint(
    pg: asyncpg.Connection, table: str, unique: str, sim: SimHandle, tmp_path: Path
) -> None:
    """The first run sends every row; the second only the rows inserted since."""
    await pg.execute(f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, "Company" text)')
    rows = [(n + 1, str(FIRST_ID + n), f"pg {n}") for n in range(300)]
    await pg.executemany(f'INSERT INTO "{table}" VALUES ($1, $2, $3)', rows[:200])
    await seed_leads(sim, 300)
    config = postgres_daemon_config(tmp_path, sim, table, f"c_{unique}")

    first = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = sim.state.stats.records_written
    await pg.executemany(f'INSERT INTO "{table}" VALUES ($1, $2, $3)', rows[200:])
    second = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert second.returncode == 0, second.stderr
    assert written == 200
    assert sim.state.stats.records_written == 300
    leads = await sim_leads(sim)
    assert all(leads[str(FIRST_ID + n)]["fields"]["Company"] == f"pg {n}" for n in range(300))
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 300, "pending": 0, "failed": 0}
    assert [cp["position"] for cp in status["checkpoints"].values()] == [300]
