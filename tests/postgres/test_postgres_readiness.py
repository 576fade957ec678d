"""/readyz against a real PostgreSQL: a burst of probes costs the server one connection.

The daemon reaches the server through a counting TCP relay on loopback, so
every connection it opens (its feed's and its readiness checks') is counted
exactly, not sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from syncengine.sim.server import running_simulator
from tests.daemon.test_daemon import free_port, wait_until
from tests.integration.conftest import start_cli
from tests.postgres.conftest import DSN

PROBES = 200


class CountingRelay:
    """A TCP relay to PostgreSQL that counts the connections made through it."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.accepted = 0
        self.open_now = 0
        self.most_open = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        except OSError:
            client_w.close()
        finally:
            self.open_now -= 1


@contextlib.asynccontextmanager
async def relay_to_postgres() -> AsyncIterator[tuple[CountingRelay, str]]:
    """The relay, and the test DSN rewritten to go through it."""
    parts = urlsplit(DSN)
    relay = CountingRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    try:
        yield relay, urlunsplit(parts._replace(netloc=netloc))
    finally:
        server.close()


async def test_a_burst_of_readyz_opens_one_readiness_connection(
    pg: asyncpg.Connection, table: str, tmp_path: Path
) -> None:
    """200 concurrent /readyz: all answered ready, at most two new server connections."""
    await pg.execute(f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, id text)')
    port = free_port()
    async with relay_to_postgres() as (relay, dsn), running_simulator(port=0) as sim:
        config = tmp_path / "pg.toml"
        config.write_text(
            f"""
[source]
type = "postgres"
dsn = "{dsn}"
table = "{table}"
cursor = "seq"

[crm]
api_domain = "{sim.base_url}"
accounts_url = "{sim.accounts_url}"
client_id = "demo-client"
client_secret = "${{SE_TEST_SECRET}}"
refresh_token = "${{SE_TEST_REFRESH}}"

[journal]
path = "journal.db"

[daemon]
poll_interval_s = 0.2
metrics_port = {port}
""",
            encoding="utf-8",
        )
        process = await start_cli("daemon", "-c", str(config), cwd=tmp_path)
        try:
            await wait_until(lambda: relay.open_now >= 1, timeout_s=30)  # the feed's connection
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                await wait_until_serving(http, port)
                feed_only = relay.accepted

                async def probe() -> int:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        body = await response.json()
                        assert body["checks"]["source"] is None, body
                        return response.status

                statuses = await asyncio.gather(*(probe() for _ in range(PROBES)))
            assert statuses == [200] * PROBES
            readiness_connections = relay.accepted - feed_only
            assert 1 <= readiness_connections <= 2, readiness_connections
            assert relay.most_open <= feed_only + 2
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0


async def wait_until_serving(http: aiohttp.ClientSession, port: int) -> None:
    """Waits for the ops server's /healthz, which asks nothing of PostgreSQL."""
    for _ in range(300):
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("the ops server never answered")
