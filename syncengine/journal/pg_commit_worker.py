"""The commit worker for a PostgreSQL journal: the same protocol, asyncpg underneath.

Why still a process: building a thousand-row commit's parameters costs the
event loop of a busy pass as much on PostgreSQL as on SQLite, and the
protocol, the deadline (`commit_timeout_s`) and the order of answers are
then those of `group_commit` unchanged. The DSN arrives as the first frame
on standard input, never as an argument (any user can read a process's
arguments); the worker's environment holds no secret either.

Each message is one transaction on the worker's own connection; a failed
one is rolled back and every later one refused, as for SQLite. A message
may carry holds (`pg_fence`): its transaction first checks, under their
fences, that the sessions that sent it still hold the journal (or the
partition) and is refused otherwise, so no commit lands after a successor
took over.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from syncengine.journal.commit_worker import ERROR_PREFIX, read_frame, serve_with
from syncengine.journal.pg_fence import Hold, HoldLost, enter
from syncengine.journal.pg_writes import UPSERT_CHECKPOINT, UPSERT_HIGH_WATER, statements_for

if TYPE_CHECKING:
    import asyncpg


async def commit(connection: asyncpg.Connection, message: bytes) -> None:
    """Writes one message in one transaction; rolled back and re-raised on any error."""
    now, runs, checkpoints, high_water, *rest = orjson.loads(message)
    holds = [Hold.decode(hold) for hold in rest[0]] if rest else []
    statements = statements_for([(bool(synced), rows) for synced, rows in runs], now)
    async with connection.transaction():
        await enter(connection, holds)  # first: see `pg_fence`
        for statement, params in statements:
            await connection.execute(statement, *params)
        if checkpoints:
            await connection.executemany(UPSERT_CHECKPOINT, checkpoints)
        if high_water:
            await connection.executemany(UPSERT_HIGH_WATER, high_water)


def serve_postgres(schema: str, requests: BinaryIO, answers: Any) -> int:
    """Reads the DSN, connects, then commits messages until `requests` ends."""
    import asyncpg

    from syncengine.errors import FatalError
    from syncengine.journal.pg_connection import connect, scrub

    dsn_frame = read_frame(requests)
    if dsn_frame is None:
        return 0
    url = dsn_frame.decode()
    loop = asyncio.new_event_loop()
    try:
        try:
            connection = loop.run_until_complete(connect(url, schema, purpose="group commits"))
        except FatalError as exc:
            answers.write(ERROR_PREFIX + " ".join(str(exc).split()).encode() + b"\n")
            answers.flush()
            return 1

        def commit_one(message: bytes) -> None:
            try:
                loop.run_until_complete(commit(connection, message))
            except HoldLost as exc:
                raise _Refused(str(exc)) from None
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # Refused by the server, or the connection lost: rolled back either way.
                raise _Refused(scrub(f"{type(exc).__name__}: {exc}", url)) from None

        try:
            serve_with(
                commit_one,
                (_Refused, orjson.JSONDecodeError, ValueError, TypeError),
                requests,
                answers,
            )
        finally:
            with contextlib.suppress(Exception):  # a lost connection has nothing to close
                loop.run_until_complete(connection.close(timeout=5))
    finally:
        loop.close()
    return 0


class _Refused(Exception):
    """The server refused a commit (the reason, DSN masked, is the message)."""
