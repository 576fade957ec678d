"""Partitions handed to workers with `SELECT ... FOR UPDATE SKIP LOCKED`.

One row per partition in the journal's schema (`worker_partitions`) says
whether the current pass has finished it. A worker claims an unfinished
partition in a short transaction on a connection of its own: it locks the
open rows nobody is claiming (`FOR UPDATE SKIP LOCKED`) and takes the first
one's session advisory lock that is free. That lock is the lease, held
while the worker works the partition and ended when it marks the row done:
the server frees it when the worker's session ends (at once when its
process dies; when its machine is cut off, once TCP keepalive gives up on
it), so the next worker to look takes the partition and resumes it from the
partition's own checkpoint.

No transaction stays open while a partition is worked: a long one would hold
back the server's oldest transaction horizon, which stalls VACUUM and any
feed that reads only rows older than the oldest open transaction (the
README's outbox recipe with keys), on the whole server.

Fencing (`journal.pg_fence`): the lease's lock is the partition's advisory
lock, and the lease waits out any commit of the last lessee still
under way before the partition's checkpoint is read; each group commit for
the partition checks, under the partition's fence, that the lease that sent
it is still open (and that the worker still shares the journal), so a
worker whose lease is gone commits nothing more for it.

A pass ends when every row is done. The first worker to start after that
begins the next pass (every row open again), as a new `run` would.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncengine.config import mask_dsn
from syncengine.errors import ConfigError, FatalError, JournalLockedError
from syncengine.failover.lease import DEFAULT_TIMING, LeaseTiming
from syncengine.journal.pg_fence import (
    Hold,
    hold_of,
    partition_fence_key,
    partition_lock_key,
    wait_out,
)

if TYPE_CHECKING:
    import asyncpg

TABLE = "worker_partitions"


def quoted(identifier: str) -> str:
    """A PostgreSQL identifier in double quotes (the config allows only plain names)."""
    return '"' + identifier.replace('"', '""') + '"'


def setup_lock_key(schema: str) -> int:
    """The transaction advisory lock under which the table is made and a pass begun."""
    digest = hashlib.sha256(f"syncengine worker partitions\0{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def connect(dsn: str, timing: LeaseTiming = DEFAULT_TIMING) -> asyncpg.Connection:
    """A connection whose session the server ends soon after its peer goes silent."""
    import asyncpg  # lazily: only a PostgreSQL journal needs the driver

    settings = timing.keepalive_settings("syncengine worker")
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            dsn, timeout=timing.check_timeout_s, server_settings=settings
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise FatalError(
            f"workers: cannot connect to {mask_dsn(dsn)}: {type(exc).__name__}"
        ) from None
    return connection


@dataclass(slots=True)
class PartitionLease:
    """One partition held by this worker: its advisory lock on the lease's own session."""

    partition: int
    partitions: int
    connection: asyncpg.Connection
    _lock_key: int
    _table: str
    #: What the partition's group commits check they still hold (`journal.pg_fence`).
    hold: Hold | None = None

    async def finish(self, worker: str) -> None:
        """Mark the partition done for this pass, then let it go.

        The row is done before the lock goes, so no worker claims it again.
        """
        await self.connection.execute(
            f"UPDATE {self._table} SET state = 'done', worker = $2, finished_at = now() "
            "WHERE partition = $1",
            self.partition,
            worker,
        )
        await self.connection.execute("SELECT pg_advisory_unlock($1)", self._lock_key)

    async def abandon(self) -> None:
        """Let the partition go unfinished (another worker may take it at once).

        Closing the session ends the lock; a session that does not answer is
        cut, which ends it on the server as well.
        """
        try:
            async with asyncio.timeout(5):
                await self.connection.close()
        except Exception:  # noqa: BLE001 - whatever failed, the session must end
            self.connection.terminate()


class PartitionTable:
    """The partitions of the journal in `schema` and their leases."""

    def __init__(self, dsn: str, schema: str, *, timing: LeaseTiming = DEFAULT_TIMING) -> None:
        self._dsn = dsn
        self._schema = schema
        self._table = f"{quoted(schema)}.{TABLE}"
        self._timing = timing
        self._connection: asyncpg.Connection | None = None
        #: The worker's share of the journal, once `share_journal` took it.
        self.hold: Hold | None = None

    def holds_for(self, lease: PartitionLease) -> list[list[object]]:
        """What a group commit for `lease`'s partition checks (encoded for `Journal.fenced`)."""
        return [hold.encode() for hold in (self.hold, lease.hold) if hold is not None]

    async def open(self, partitions: int) -> int:
        """Make the table (and its rows) if needed; returns the journal's partition count.

        The journal must exist already (its schema holds this table beside its own).

        The count is the journal's for good once its first pass begins: each
        partition's checkpoint is under a name that includes it. A worker
        asked for another count than the table has raises ConfigError.
        """
        connection = await self._conn()
        async with connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1)", setup_lock_key(self._schema)
            )
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                " partition integer PRIMARY KEY,"
                " partitions integer NOT NULL,"
                " state text NOT NULL DEFAULT 'open',"
                " worker text,"
                " finished_at timestamptz)"
            )
            known = await connection.fetchval(f"SELECT max(partitions) FROM {self._table}")
            if known is not None and known != partitions:
                raise ConfigError(
                    f"workers: the journal's passes are split into {known} partitions, not"
                    f" {partitions}; keep --partitions {known} (each partition has its checkpoint)"
                )
            await connection.executemany(
                f"INSERT INTO {self._table} (partition, partitions) VALUES ($1, $2)"
                " ON CONFLICT (partition) DO NOTHING",
                [(number, partitions) for number in range(partitions)],
            )
        return partitions

    async def share_journal(self, description: str, *, where: str) -> None:
        """Hold the journal beside the other workers, refusing `run`, `migrate` and `daemon`.

        Workers take the journal's holder lock (`journal.pg_lock`) in shared
        mode for as long as this table's connection is open: a holder's
        exclusive lock and theirs exclude each other, so a `run` beside
        workers is refused (exit 4) as beside any holder, and a worker
        beside a `run` or a daemon is refused the same way.

        Raises:
            JournalLockedError: a `run`, `migrate` or `daemon` holds the
                journal; the message names it.
        """
        from syncengine.journal.pg_lock import fence_as_new_holder, holder_key

        connection = await self._conn()
        held = await connection.fetchval(
            "SELECT pg_try_advisory_lock_shared($1)", holder_key(self._schema)
        )
        holder_table = f"{quoted(self._schema)}.holder"
        if not held:
            line = await connection.fetchval(f"SELECT description FROM {holder_table} WHERE id = 1")
            raise JournalLockedError(f"journal {where} is in use by {line or 'another process'}")
        await connection.execute(
            f"INSERT INTO {holder_table} (id, description) VALUES (1, $1)"
            " ON CONFLICT (id) DO UPDATE SET description = excluded.description",
            description,
        )
        self.hold = await fence_as_new_holder(connection, self._schema, "the journal")

    async def begin_pass_if_complete(self) -> bool:
        """Open every partition again when the last pass finished them all; True if it did.

        A pass under way (some partition still open) is joined instead.
        """
        connection = await self._conn()
        async with connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1)", setup_lock_key(self._schema)
            )
            open_rows = await connection.fetchval(
                f"SELECT count(*) FROM {self._table} WHERE state = 'open'"
            )
            if open_rows:
                return False
            await connection.execute(
                f"UPDATE {self._table} SET state = 'open', worker = NULL, finished_at = NULL"
            )
        return True

    async def unfinished(self) -> int:
        """Partitions of this pass not yet done (leased by a worker or not)."""
        connection = await self._conn()
        count: int = await connection.fetchval(
            f"SELECT count(*) FROM {self._table} WHERE state = 'open'"
        )
        return count

    async def lease(self) -> PartitionLease | None:
        """Lease an unfinished partition nobody holds; None when there is none now.

        The claim is one short transaction: the open rows no other worker is
        claiming right now, locked `FOR UPDATE SKIP LOCKED`, and the first
        whose advisory lock is free. The lock is taken on the session, so it
        outlives the claim and ends with the lease (or the session).
        """
        connection = await connect(self._dsn, self._timing)
        try:
            claimed = await self._claim(connection)
            if claimed is None:
                await connection.close()
                return None
            partition, partitions, lock = claimed
            hold = await self._fence(connection, partition, lock)
        except BaseException:
            connection.terminate()
            raise
        return PartitionLease(partition, partitions, connection, lock, self._table, hold)

    async def _claim(self, connection: asyncpg.Connection) -> tuple[int, int, int] | None:
        """(partition, partitions, lock key) of the partition claimed, or None."""
        async with connection.transaction():
            rows = await connection.fetch(
                f"SELECT partition, partitions FROM {self._table} WHERE state = 'open'"
                " ORDER BY partition FOR UPDATE SKIP LOCKED"
            )
            for partition, partitions in rows:
                lock = partition_lock_key(self._schema, partition)
                # A lessee marks its row done before its lock goes, and that
                # update waits for this claim's row lock: a free lock on an open
                # row is a partition nobody works.
                if await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                    return partition, partitions, lock
        return None

    async def _fence(self, connection: asyncpg.Connection, partition: int, lock: int) -> Hold:
        """Wait out the last lessee's commits to the partition; the lease's hold.

        The last lessee's lock is gone (this session has it), but a commit it
        made may still be under way: the fence waits for it.
        """
        fence = partition_fence_key(self._schema, partition)
        await wait_out(connection, fence)
        return await hold_of(connection, lock, fence, f"partition {partition}")

    async def close(self) -> None:
        """Close the table's own connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _conn(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await connect(self._dsn, self._timing)
        return self._connection


async def watch_lease(lease: PartitionLease, timing: LeaseTiming = DEFAULT_TIMING) -> str:
    """Returns, with the reason, once the lease's session is no longer certainly alive."""
    while True:
        await asyncio.sleep(timing.check_s)
        connection = lease.connection
        if connection.is_closed():
            return "the lease's connection closed"
        try:
            async with asyncio.timeout(timing.check_timeout_s):
                await connection.fetchval("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure: the lease may be gone
            return f"the lease's connection failed: {type(exc).__name__}"
