"""The org's access token in PostgreSQL: a `TokenStore` and a refresh lock across processes.

Every process of the org (with the same refresh token) reads and writes one
row per credential key, so a token minted by one is used by all, and the
mint history the accounts server limits (ten per ten minutes) is counted
across them. `refresh_guard` is the provider's cross-process single flight:
an advisory lock held on a connection of its own while the slow path runs,
so one process mints and the others wait, then find its token in the row.
A process that dies while minting frees the lock with its session.

The row holds a live access token: the database must be guarded like the
journal file (which holds the same token, mode 0600).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from syncengine.crm.token_store import TokenState
from syncengine.errors import FatalError
from syncengine.shared.connection import SerialConnection
from syncengine.shared.keys import TOKEN_LOCK, lock_class

if TYPE_CHECKING:
    import asyncpg


class PostgresTokenStore:
    """`TokenStore` in `<schema>.tokens`, plus the cross-process refresh lock."""

    def __init__(
        self, connection: SerialConnection, lock_connection: asyncpg.Connection, *, schema: str
    ) -> None:
        self._connection = connection
        self._lock_connection = lock_connection
        self._load_sql = (
            "SELECT access_token, api_domain, expires_at, minted_at, mint_times "
            f'FROM "{schema}".tokens WHERE key = $1'
        )
        self._save_sql = (
            f'INSERT INTO "{schema}".tokens '
            "(key, access_token, api_domain, expires_at, minted_at, mint_times) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET "
            "access_token = excluded.access_token, api_domain = excluded.api_domain, "
            "expires_at = excluded.expires_at, minted_at = excluded.minted_at, "
            "mint_times = excluded.mint_times"
        )

    async def load(self, key: str) -> TokenState | None:
        """The stored state for `key`, or None when nothing is stored."""
        row = await self._connection.run(lambda c: c.fetchrow(self._load_sql, key))
        if row is None:
            return None
        return TokenState(
            access_token=row["access_token"],
            api_domain=row["api_domain"],
            expires_at=row["expires_at"],
            minted_at=row["minted_at"],
            mint_times=tuple(row["mint_times"]),
        )

    async def save(self, key: str, state: TokenState) -> None:
        """Store `state` for `key`, replacing what was there."""
        values = (
            key,
            state.access_token,
            state.api_domain,
            state.expires_at,
            state.minted_at,
            list(state.mint_times),
        )
        await self._connection.run(lambda c: c.execute(self._save_sql, *values))

    @asynccontextmanager
    async def refresh_guard(self, key: str) -> AsyncIterator[None]:
        """Hold the refresh lock of `key` across processes while the body runs.

        The lock connection serves only this lock and the provider enters one
        guard at a time, so on any failure or cancellation unlocking all of
        the session's advisory locks is exact: a lock granted just as its wait
        was cancelled is never left behind.
        """
        import asyncpg  # lazily, as everywhere: only [limits] shared needs the driver

        connection = self._lock_connection
        try:
            try:
                await connection.execute(
                    "SELECT pg_advisory_lock($1, $2)", lock_class(key), TOKEN_LOCK
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise FatalError(
                    f"limits.shared: the token's refresh lock failed ({type(exc).__name__})"
                ) from exc
            yield
        finally:
            await asyncio.shield(_unlock_all(connection))


async def _unlock_all(connection: asyncpg.Connection) -> None:
    """Free every advisory lock of the lock connection's session (none on a dead one).

    When the session cannot take the statement (a wait for the lock was just
    cancelled and the driver is still busy with it), the connection is
    dropped: the server then frees the session's locks itself, and the next
    refresh fails with a clear reason rather than waiting on a lost lock.
    """
    if connection.is_closed():
        return
    try:
        await connection.execute("SELECT pg_advisory_unlock_all()")
    except Exception:  # noqa: BLE001 - whatever failed, ending the session frees the lock
        connection.terminate()
