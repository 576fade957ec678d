"""The single-holder rule on a PostgreSQL journal: a session advisory lock keyed by schema.

The same rule as the SQLite journal's `flock` (`lock`): one `run`,
`migrate` or `daemon` per journal, the others refused (exit 4) naming the
holder. The server drops a session's advisory locks when its connection
ends, so a holder killed with SIGKILL (or cut off, once TCP keepalive gives
up on it: `KEEPALIVE_SETTINGS`) never leaves a stale lock. The holder writes
one line into the `holder` table (what runs, pid, host, since when) for the
refused process to name.

`acquire` either tries once or waits (polling, so a waiting process keeps
its connection usable and can give up): the building block of a standby
that takes over when the active holder's session ends. Once it holds the
lock it waits out the last holder's commits still under way (`pg_fence`)
and returns its own hold, which its group commits carry.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from syncengine.errors import JournalLockedError
from syncengine.journal.pg_fence import Hold, hold_of, journal_fence_key, wait_out
from syncengine.journal.pg_schema import lock_key

if TYPE_CHECKING:
    import asyncpg

#: Between tries while waiting for the lock.
POLL_S = 0.5

#: How the server notices a dead peer (10 s idle, then 3 probes 5 s apart).
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


def holder_key(schema: str) -> int:
    """The advisory-lock key of the journal in `schema` (one per database and schema)."""
    return lock_key(schema, "holder")


async def try_acquire(connection: asyncpg.Connection, schema: str) -> bool:
    """Take the journal's lock for this session if free; True when it is now held."""
    held: bool = await connection.fetchval("SELECT pg_try_advisory_lock($1)", holder_key(schema))
    return held


async def acquire(
    connection: asyncpg.Connection,
    schema: str,
    description: str,
    *,
    where: str,
    wait: bool = False,
    poll_s: float = POLL_S,
) -> Hold:
    """Hold the journal for this session and write `description` as its holder.

    Returns the hold the session's group commits carry (`pg_fence`), once
    every commit of an earlier holder that could still land has ended.

    With `wait`, try every `poll_s` until the lock is free (cancel to give
    up); without, one try.

    Raises:
        JournalLockedError: not `wait`, and another session holds it; the
            message names the holder as it wrote itself.
    """
    while not await try_acquire(connection, schema):
        if not wait:
            holder = await current_holder(connection)
            raise JournalLockedError(f"journal {where} is in use by {holder}")
        await asyncio.sleep(poll_s)
    await connection.execute(
        "INSERT INTO holder (id, description) VALUES (1, $1)"
        " ON CONFLICT (id) DO UPDATE SET description = excluded.description",
        description,
    )
    return await fence_as_new_holder(connection, schema, "the journal")


async def fence_as_new_holder(connection: asyncpg.Connection, schema: str, name: str) -> Hold:
    """After taking the holder lock (either mode): wait out older commits; this session's hold."""
    fence = journal_fence_key(schema)
    await wait_out(connection, fence)
    return await hold_of(connection, holder_key(schema), fence, name)


async def release(connection: asyncpg.Connection, schema: str) -> None:
    """Clear the holder line and drop the lock (closing the connection drops it too)."""
    await connection.execute("DELETE FROM holder")
    await connection.execute("SELECT pg_advisory_unlock($1)", holder_key(schema))


async def current_holder(connection: asyncpg.Connection) -> str:
    """The holder's line, or a placeholder while it is being written."""
    line: str | None = await connection.fetchval("SELECT description FROM holder WHERE id = 1")
    return line or "another process (holder not written yet)"
