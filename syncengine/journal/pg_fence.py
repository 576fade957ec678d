"""Fencing on a PostgreSQL journal: no group commit of a holder lands after its successor began.

Why: group commits are made on the commit process's own connection, not on
the session that holds the journal (`pg_lock`) or a worker's partition
(`workers.leases`). When that session ends (the daemon killed with SIGKILL
while a COMMIT was already on its way to the server, or its session ended by
the server while its event loop was stalled and its commit process went on),
a commit already queued could otherwise land after a standby or another
worker took over and read the journal: an older "synced" replacing a newer
failure, a checkpoint moved back under the new holder's feet.

The rule, per *hold* (a session advisory lock that says who may write: the
journal's holder lock, or a worker's partition lock; plus a *fence key*):

- every group commit's transaction first takes `pg_advisory_xact_lock_shared`
  on the fence key of each of its holds, then checks, in the same
  transaction, that each hold's lock is still granted to the session that
  took it (its backend pid and start time, read by that session and passed
  with the commit): otherwise it rolls back and the commit process refuses
  it and every later commit (`HoldLost`; the pass ends, exit 3);
- a new holder, once it holds the lock and before it reads anything (the
  checkpoint above all), takes the fence key exclusively and lets it go
  (`wait_out`).

Why that suffices: a commit whose check passed saw the old holder's lock
granted, so it took its shared fence lock before the new holder got that
lock, and so before the new holder asked for the fence exclusively; the new
holder therefore waits until that commit has landed (or rolled back). A
commit that asks for its shared fence lock later checks later, when the old
session's lock is gone (the server drops a session's advisory locks when it
ends, and a dead backend never holds a lock again; the start time tells a
reused pid apart), so it is refused. The shared locks never wait for each
other, and the exclusive one is held for an instant by a session that holds
no row lock, so none of this can deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncengine.journal.pg_schema import lock_key

if TYPE_CHECKING:
    import asyncpg

#: This session's backend pid and start time (microseconds since the epoch).
SESSION_SQL = (
    "SELECT pg_backend_pid(), (extract(epoch FROM backend_start) * 1000000)::bigint"
    " FROM pg_catalog.pg_stat_activity WHERE pid = pg_backend_pid()"
)

#: How many of the holds (lock halves, pid, start) are granted to their session now.
_CHECK_SQL = """
SELECT count(*) FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[])
    AS h(classid, objid, pid, start_us)
WHERE EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND l.classid = h.classid::oid AND l.objid = h.objid::oid AND l.pid = h.pid
      AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = h.start_us
)
"""


class HoldLost(Exception):
    """A commit's hold is no longer its session's: it was rolled back."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A session advisory lock (`lock_key`) held by one session, and its fence key."""

    lock_key: int
    pid: int
    start_us: int
    fence_key: int
    #: How messages name it ("the journal", "partition 3").
    name: str

    def encode(self) -> list[Any]:
        """As a commit message carries it (JSON)."""
        return [self.lock_key, self.pid, self.start_us, self.fence_key, self.name]

    @classmethod
    def decode(cls, value: Sequence[Any]) -> Hold:
        lock, pid, start_us, fence, name = value
        return cls(int(lock), int(pid), int(start_us), int(fence), str(name))


def journal_fence_key(schema: str) -> int:
    """The fence key of the journal's holder lock (exclusive holders and workers alike)."""
    return lock_key(schema, "fence")


def partition_lock_key(schema: str, partition: int) -> int:
    """The lock a worker's partition lease holds for as long as its lease transaction is open."""
    return lock_key(schema, f"partition/{partition}")


def partition_fence_key(schema: str, partition: int) -> int:
    """The fence key of partition `partition`'s lease."""
    return lock_key(schema, f"fence/partition/{partition}")


def lock_halves(key: int) -> tuple[int, int]:
    """The (classid, objid) pair `pg_locks` shows for a one-bigint advisory lock `key` (pure)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


async def hold_of(connection: asyncpg.Connection, lock: int, fence: int, name: str) -> Hold:
    """The hold of lock `lock`, which `connection`'s session has just taken."""
    row: Any = await connection.fetchrow(SESSION_SQL)
    return Hold(lock, int(row[0]), int(row[1]), fence, name)


async def wait_out(connection: asyncpg.Connection, fence: int) -> None:
    """Wait until every commit that passed its check under `fence` has ended (a new holder)."""
    await connection.execute("SELECT pg_advisory_lock($1)", fence)
    await connection.execute("SELECT pg_advisory_unlock($1)", fence)


async def enter(connection: asyncpg.Connection, holds: Iterable[Hold]) -> None:
    """In a commit's transaction: take the fences shared, then check every hold.

    Raises:
        HoldLost: a hold's lock is no longer granted to its session.
    """
    holds = list(holds)
    if not holds:
        return
    for fence in sorted({hold.fence_key for hold in holds}):
        await connection.execute("SELECT pg_advisory_xact_lock_shared($1)", fence)
    halves = [lock_halves(hold.lock_key) for hold in holds]
    granted = await connection.fetchval(
        _CHECK_SQL,
        [classid for classid, _ in halves],
        [objid for _, objid in halves],
        [hold.pid for hold in holds],
        [hold.start_us for hold in holds],
    )
    if granted != len(holds):
        names = ", ".join(hold.name for hold in holds)
        raise HoldLost(
            f"the hold on {names} ended before this commit (another process may hold it now);"
            " nothing of it was written"
        )
