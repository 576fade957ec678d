"""Partition leases: SKIP LOCKED hands each partition to one worker; a dead one's is freed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncengine.errors import ConfigError
from syncengine.workers.leases import PartitionTable
from tests.postgres.conftest import DSN


@pytest.fixture
async def schema(pg: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"parts_{uuid.uuid4().hex[:10]}"
    await pg.execute(f'CREATE SCHEMA "{name}"')  # the journal's schema, as a worker finds it
    try:
        yield name
    finally:
        await pg.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


async def test_each_partition_goes_to_one_worker(schema: str) -> None:
    table = PartitionTable(DSN, schema)
    leases = []
    try:
        assert await table.open(4) == 4
        leases = [await table.lease() for _ in range(4)]
        assert sorted(lease.partition for lease in leases if lease) == [0, 1, 2, 3]
        assert await table.lease() is None  # all held
        assert await table.unfinished() == 4
        assert leases[0] is not None
        await leases[0].finish("w1")
        assert await table.unfinished() == 3
        assert leases[1] is not None
        await leases[1].abandon()  # unfinished: free again at once
        again = await table.lease()
        assert again is not None
        assert again.partition == leases[1].partition
        leases.append(again)
    finally:
        for lease in leases:
            if lease is not None:
                await lease.abandon()
                await lease.connection.close()
        await table.close()


async def test_a_pass_begins_only_once_every_partition_is_done(schema: str) -> None:
    table = PartitionTable(DSN, schema)
    try:
        await table.open(2)
        assert not await table.begin_pass_if_complete()  # a fresh table: the pass is under way
        for _ in range(2):
            lease = await table.lease()
            assert lease is not None
            await lease.finish("w")
            await lease.connection.close()
        assert await table.unfinished() == 0
        assert await table.begin_pass_if_complete()
        assert await table.unfinished() == 2
    finally:
        await table.close()


async def test_another_partition_count_is_refused(schema: str) -> None:
    table = PartitionTable(DSN, schema)
    try:
        await table.open(4)
        with pytest.raises(ConfigError, match="4 partitions"):
            await table.open(8)
    finally:
        await table.close()


HOLD = """
import asyncio, sys
from syncengine.workers.leases import PartitionTable
async def main():
    table = PartitionTable(sys.argv[1], sys.argv[2])
    await table.open(2)
    lease = await table.lease()
    print(lease.partition, flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_a_killed_workers_partition_is_leased_again(schema: str) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD, DSN, schema, stdout=asyncio.subprocess.PIPE
    )
    table = PartitionTable(DSN, schema)
    held = []
    try:
        assert worker.stdout is not None
        taken = int((await worker.stdout.readline()).decode())
        other = await table.lease()
        assert other is not None
        assert other.partition != taken
        held.append(other)
        assert await table.lease() is None
        os.kill(worker.pid, signal.SIGKILL)
        await worker.wait()
        for _ in range(50):
            freed = await table.lease()
            if freed is not None:
                held.append(freed)
                break
            await asyncio.sleep(0.1)
        assert [lease.partition for lease in held] == [other.partition, taken]
    finally:
        if worker.returncode is None:
            worker.kill()
        await worker.wait()
        for lease in held:
            await lease.abandon()
            await lease.connection.close()
        await table.close()


async def test_a_held_lease_keeps_no_transaction_open(schema: str, pg: asyncpg.Connection) -> None:
    """A lease is a session lock, not a transaction left open: a long one would hold back
    the server's oldest transaction for as long as a partition is worked, stalling
    VACUUM and any feed that waits for older transactions (the outbox recipe with keys)."""
    table = PartitionTable(DSN, schema)
    leases = []
    try:
        await table.open(2)
        lease = await table.lease()
        assert lease is not None
        leases.append(lease)
        pid = await lease.connection.fetchval("SELECT pg_backend_pid()")
        await asyncio.sleep(0.05)  # the claim's statements have ended
        row = await pg.fetchrow(
            "SELECT state, backend_xid, backend_xmin FROM pg_stat_activity WHERE pid = $1", pid
        )
        assert row is not None
        assert (row["state"], row["backend_xid"], row["backend_xmin"]) == ("idle", None, None)
        locks = await pg.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND granted",
            pid,
        )
        assert locks >= 1  # the lease itself
        other = await table.lease()  # the other partition: this one stays held
        assert other is not None
        leases.append(other)
        assert other.partition != lease.partition
    finally:
        for held in leases:
            await held.abandon()
        await table.close()
