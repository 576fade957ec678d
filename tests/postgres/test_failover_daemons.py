"""Two daemons on one PostgreSQL journal: one active, one standby; SIGKILL hands over.

The active daemon is killed with SIGKILL while the feed is still being
written. The standby must take over within `TAKEOVER_S` (README, "Beyond
one machine"), resume from the checkpoint, and leave the CRM exactly as the
feed says. Every feed line updates its own record, so the simulator's write
counts show each record sent twice: at most what the killed daemon had
sent but not journaled (`2 x concurrency x 100`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from syncengine.failover.lease import lease_key
from syncengine.sim.server import SimHandle, running_simulator
from tests.daemon.test_daemon import free_port
from tests.integration.conftest import FIRST_ID, seed_leads, start_cli, write_config
from tests.postgres.conftest import DSN

#: A standby holds the lease and answers ready within this long after the active one's end.
TAKEOVER_S = 5.0
CONCURRENCY = 4
#: What the killed daemon may have sent and not journaled (`dispatcher._max_unjournaled`).
IN_FLIGHT = 2 * CONCURRENCY * 100
RECORDS = 6000


@pytest.fixture
async def schema(pg: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"failover_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        await pg.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def daemon_config(folder: Path, name: str, sim: SimHandle, schema: str, port: int) -> Path:
    """One daemon's config: the shared feed and PostgreSQL journal, its own ops port."""
    return write_config(
        folder,
        sim,
        name=name,
        concurrency=CONCURRENCY,
        journal=f'url = "{DSN}"\nschema = "{schema}"',
        tail=(
            f"[daemon]\nlinger_ms = 50\npoll_interval_s = 0.05\ngrace_s = 5\nmetrics_port = {port}"
        ),
    )


async def readyz(port: int) -> tuple[int, dict[str, Any]] | None:
    """`/readyz` of the daemon on `port`: (status, body), None while nothing listens."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(3)) as r,
        ):
            return r.status, orjson.loads(await r.read())
    except (aiohttp.ClientError, TimeoutError):
        return None


async def role_of(port: int) -> str | None:
    answer = await readyz(port)
    return None if answer is None else answer[1].get("role")


async def wait_for_role(port: int, role: str, timeout_s: float) -> float:
    started = time.monotonic()
    while await role_of(port) != role:
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"daemon on {port} not {role} within {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def writes(sim: SimHandle) -> int:
    total = 0
    for index in range(RECORDS):
        record = sim.state.store.get("Leads", str(FIRST_ID + index))
        assert record is not None
        total += record.writes
    return total


def value(index: int) -> str:
    return f"Company {index} final"


async def produce(feed: Path, *, lines_per_step: int = 300, step_s: float = 0.1) -> None:
    """Appends one update per record, a step at a time, as a producer would."""
    for first in range(0, RECORDS, lines_per_step):
        with feed.open("ab") as out:
            for index in range(first, min(first + lines_per_step, RECORDS)):
                row = {"id": str(FIRST_ID + index), "Company": value(index)}
                out.write(orjson.dumps(row) + b"\n")
        await asyncio.sleep(step_s)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_standby_takes_over_from_a_killed_daemon(schema: str, tmp_path: Path) -> None:
    async with running_simulator(port=0, admin=True, latency_ms=30) as sim:
        await seed_leads(sim, RECORDS)
        feed = tmp_path / "changes.jsonl"
        feed.touch()
        ports = {"a": free_port(), "b": free_port()}
        configs = {n: daemon_config(tmp_path, n, sim, schema, p) for n, p in ports.items()}
        first = await start_cli("daemon", "-c", str(configs["a"]), cwd=tmp_path)
        processes = {"a": first}
        try:
            await wait_for_role(ports["a"], "active", 30)
            processes["b"] = await start_cli("daemon", "-c", str(configs["b"]), cwd=tmp_path)
            await wait_for_role(ports["b"], "standby", 30)
            answer = await readyz(ports["b"])
            assert answer is not None
            assert answer[0] == 503
            assert answer[1]["ready"] is False
            assert answer[1]["checks"]["lease"].startswith("standby")

            # A run is refused (exit 4) while the active daemon holds the journal.
            refused = await start_cli("run", "-c", str(configs["a"]), cwd=tmp_path)
            _, err = await refused.communicate()
            assert refused.returncode == 4, err.decode()

            producer = asyncio.create_task(produce(feed))
            while writes(sim) < RECORDS // 4:
                assert not producer.done() or writes(sim) < RECORDS
                await asyncio.sleep(0.01)
            os.kill(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await first.wait()
            sent_by_first = writes(sim)
            assert sent_by_first < RECORDS  # killed mid-feed

            await wait_for_role(ports["b"], "active", TAKEOVER_S)
            took_over_s = time.monotonic() - killed_at
            answer = await readyz(ports["b"])
            assert answer is not None
            assert answer[0] == 200, answer
            assert took_over_s < TAKEOVER_S

            await producer
            deadline = time.monotonic() + 60
            while True:
                done = all(
                    (record := sim.state.store.get("Leads", str(FIRST_ID + index))) is not None
                    and record.fields.get("Company") == value(index)
                    for index in range(RECORDS)
                )
                if done:
                    break
                assert time.monotonic() < deadline, "the standby did not finish the feed"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # nothing more may arrive
            twice = writes(sim) - RECORDS
            assert 0 <= twice <= IN_FLIGHT, (twice, IN_FLIGHT)
        finally:
            for process in processes.values():
                await stop(process)


async def test_a_daemon_that_loses_its_lease_stops_and_the_standby_takes_over(
    pg: asyncpg.Connection, schema: str, tmp_path: Path
) -> None:
    """The server ends the active daemon's lease session (as it would for a machine cut
    off): that daemon exits 3 within its check bound and the standby takes over."""
    async with running_simulator(port=0, admin=True) as sim:
        await seed_leads(sim, 10)
        (tmp_path / "changes.jsonl").touch()
        ports = {"a": free_port(), "b": free_port()}
        configs = {n: daemon_config(tmp_path, n, sim, schema, p) for n, p in ports.items()}
        processes = {"a": await start_cli("daemon", "-c", str(configs["a"]), cwd=tmp_path)}
        try:
            await wait_for_role(ports["a"], "active", 30)
            processes["b"] = await start_cli("daemon", "-c", str(configs["b"]), cwd=tmp_path)
            await wait_for_role(ports["b"], "standby", 30)
            ended = await pg.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = $1",
                lease_key(schema),
            )
            assert ended == 1
            _, err = await asyncio.wait_for(processes["a"].communicate(), 15)
            assert processes["a"].returncode == 3, err.decode()[-2000:]
            assert "lost the journal's lease" in err.decode()
            await wait_for_role(ports["b"], "active", TAKEOVER_S)
            with (tmp_path / "changes.jsonl").open("ab") as out:
                out.write(orjson.dumps({"id": str(FIRST_ID), "Company": "after"}) + b"\n")
            deadline = time.monotonic() + 10
            while (record := sim.state.store.get("Leads", str(FIRST_ID))) is None or (
                record.fields.get("Company") != "after"
            ):
                assert time.monotonic() < deadline, "the new active daemon does not sync"
                await asyncio.sleep(0.05)
        finally:
            for process in processes.values():
                await stop(process)


async def test_a_daemon_whose_journal_database_is_unreachable_exits_3_at_once(
    tmp_path: Path,
) -> None:
    async with running_simulator(port=0, admin=True) as sim:
        (tmp_path / "changes.jsonl").touch()
        config = daemon_config(tmp_path, "a", sim, "nowhere", free_port())
        config.write_text(
            config.read_text().replace(DSN, "postgresql://postgres:s3cret-pw@127.0.0.1:1/test")
        )
        process = await start_cli("daemon", "-c", str(config), cwd=tmp_path)
        try:
            _, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 3, err.decode()[-2000:]
        assert "s3cret-pw" not in err.decode()
        assert "127.0.0.1:1" in err.decode()
