"""One PostgreSQL connection shared by a process's tasks, one statement at a time.

asyncpg refuses concurrent statements on a connection, and the advisory
locks that are the org's slots belong to the session, so every statement of
the process goes through this one connection under an `asyncio.Lock`. A
process that dies closes its socket; the server then ends the session and
frees every lock it held (on loopback at once; across machines when TCP
keepalive gives up on the peer: `KEEPALIVE_SETTINGS`, about 25 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syncengine.config import mask_dsn
from syncengine.errors import FatalError

if TYPE_CHECKING:
    import asyncpg

#: The server drops a silent peer after 10 s idle + 3 probes 5 s apart.
KEEPALIVE_SETTINGS = {
    "application_name": "syncengine shared limits",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
#: A statement on the shared connection that takes longer is a lost database.
STATEMENT_TIMEOUT_S = 30.0


async def connect(dsn: str) -> asyncpg.Connection:
    """A connection for the shared limits; FatalError (DSN masked) when none can be made."""
    import asyncpg  # lazily: only configs with [limits] shared need the driver

    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            dsn, timeout=10, server_settings=KEEPALIVE_SETTINGS
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise FatalError(
            f"limits.shared: cannot connect to {mask_dsn(dsn)}: {type(exc).__name__}: {exc}"[:300]
        ) from None
    return connection


class SerialConnection:
    """Runs statements one at a time on one connection; database loss is fatal."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Future[Any]] = set()

    async def run(self, call: Callable[[asyncpg.Connection], Any]) -> Any:
        """`await call(connection)` alone on the connection, with a timeout.

        The statement runs in a task of its own that keeps the connection
        until the server has answered, even when the caller is cancelled: a
        statement abandoned halfway would leave the driver busy, and the next
        one would fail.
        """
        statement = asyncio.ensure_future(self._run_alone(call))
        self._running.add(statement)
        statement.add_done_callback(self._finished)
        return await asyncio.shield(statement)

    async def _run_alone(self, call: Callable[[asyncpg.Connection], Any]) -> Any:
        async with self._lock:
            try:
                async with asyncio.timeout(STATEMENT_TIMEOUT_S):
                    return await call(self.connection)
            # Any failure, the driver's own state errors after a dropped session included.
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:200]
                raise FatalError(
                    f"limits.shared: the shared-limits database failed ({reason}); "
                    "the org's limits cannot be kept, so the pass stops"
                ) from exc

    def _finished(self, statement: asyncio.Future[Any]) -> None:
        """Forget a finished statement; its error, if its caller left, is not an orphan."""
        self._running.discard(statement)
        if not statement.cancelled():
            statement.exception()

    async def close(self) -> None:
        """Close the connection (its session's locks go with it)."""
        await self.connection.close()
