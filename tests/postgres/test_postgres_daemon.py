"""The daemon following a real PostgreSQL outbox into the simulator."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import asyncpg

from syncengine.sim.server import SimHandle, running_simulator
from tests.daemon.test_daemon import company_is, free_port, wait_until
from tests.integration.conftest import FIRST_ID, seed_leads, start_cli
from tests.postgres.conftest import DSN

LINGER_MS = 300
LATENCY_MS = 100


def postgres_daemon_config(
    folder: Path, sim: SimHandle, table: str, channel: str, *, metrics_port: int | None = None
) -> Path:
    """A daemon config reading `table` by `seq`, woken by NOTIFY on `channel`."""
    path = folder / "pg.toml"
    metrics = f"metrics_port = {metrics_port}" if metrics_port else ""
    path.write_text(
        f"""
[source]
type = "postgres"
dsn = "{DSN}"
table = "{table}"
cursor = "seq"
channel = "{channel}"

[crm]
api_domain = "{sim.base_url}"
accounts_url = "{sim.accounts_url}"
client_id = "demo-client"
client_secret = "${{SE_TEST_SECRET}}"
refresh_token = "${{SE_TEST_REFRESH}}"
module = "Leads"

[journal]
path = "journal.db"

[daemon]
linger_ms = {LINGER_MS}
poll_interval_s = 5
grace_s = 10
{metrics}
""",
        encoding="utf-8",
    )
    return path


async def test_rows_inserted_reach_the_crm_within_linger_plus_latency(
    pg: asyncpg.Connection, table: str, unique: str, tmp_path: Path
) -> None:
    """Each committed row, announced by NOTIFY, is in the CRM within linger + latency + 1 s."""
    channel = f"crm_{unique}"
    await pg.execute(f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text, "Company" text)')
    async with running_simulator(port=0, admin=True, latency_ms=LATENCY_MS) as sim:
        await seed_leads(sim, 10)
        port = free_port()
        config = postgres_daemon_config(tmp_path, sim, table, channel, metrics_port=port)
        process = await start_cli("daemon", "-c", str(config), cwd=tmp_path)
        try:
            await asyncio.sleep(1.5)
            bound_s = (LINGER_MS + LATENCY_MS) / 1000 + 1.0
            delays = []
            for index in range(5):
                async with pg.transaction():
                    await pg.execute(
                        f'INSERT INTO "{table}" VALUES ($1, $2, $3)',
                        index + 1,
                        str(FIRST_ID + index),
                        f"pg {index}",
                    )
                    await pg.execute(f"NOTIFY {channel}")
                delays.append(
                    await wait_until(company_is(sim, index, f"pg {index}"), timeout_s=bound_s)
                )
            assert process.returncode is None
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/readyz") as response,
            ):
                ready = await response.json()
            assert response.status == 200, ready
            assert ready["checks"]["source"] is None
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0
    # The poll interval is 5 s: only the notification can explain these delays.
    assert max(delays) <= bound_s
    print("row-to-CRM delays (s):", [round(d, 3) for d in delays])
