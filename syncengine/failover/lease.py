"""The active daemon's lease: a session advisory lock the database ends with the session.

Any number of daemons may run on one PostgreSQL journal; the one holding
this lock is active, the others stand by and try for it every
`LeaseTiming.poll_s`. The lock lives on a connection of its own, so the
server frees it the moment that session ends: at once when the holder's
process dies (its socket closes, `kill -9` included), and when its machine
is cut off, once the server's TCP keepalive gives up on the silent peer
(`LeaseTiming.keepalive_settings`, set per session). The holder checks its
connection every `check_s`; a holder that cannot reach the database for
`check_timeout_s` has lost the lease as far as it can tell, and stops, so
two daemons never both believe they are active for longer than that.

The key is a hash of the journal's schema (one lease per journal), in the
one-bigint form of advisory locks, which PostgreSQL keeps apart from the
two-int form the shared limits use.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from syncengine.config import mask_dsn
from syncengine.errors import FatalError

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger("syncengine.failover")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How fast a lease changes hands; every bound below follows from these (pure)."""

    #: A standby tries for the lease this often.
    poll_s: float = 0.5
    #: The holder asks its lease connection whether it is alive this often...
    check_s: float = 2.0
    #: ...and takes no answer within this long as the lease lost.
    check_timeout_s: float = 5.0
    #: The server probes a silent peer after this long idle...
    keepalive_idle_s: int = 10
    #: ...then this often...
    keepalive_interval_s: int = 5
    #: ...and ends its session after this many unanswered probes.
    keepalive_count: int = 3

    @property
    def dead_peer_s(self) -> float:
        """How long the server keeps the session of a machine cut off from it."""
        return self.keepalive_idle_s + self.keepalive_interval_s * self.keepalive_count

    @property
    def takeover_after_exit_s(self) -> float:
        """Most time from the active process's end (any signal) to a standby holding the lease."""
        return self.poll_s

    @property
    def takeover_after_cutoff_s(self) -> float:
        """Most time from the active machine's cut-off to a standby holding the lease."""
        return self.dead_peer_s + self.poll_s

    @property
    def self_fence_s(self) -> float:
        """Most time a holder cut off from the database goes on believing it is active."""
        return self.check_s + self.check_timeout_s

    def keepalive_settings(self, application_name: str) -> dict[str, str]:
        """Server settings of the lease's session: the server's keepalive on this peer."""
        return {
            "application_name": application_name,
            "tcp_keepalives_idle": str(self.keepalive_idle_s),
            "tcp_keepalives_interval": str(self.keepalive_interval_s),
            "tcp_keepalives_count": str(self.keepalive_count),
            # Unacknowledged data to a cut-off peer is given up after as long.
            "tcp_user_timeout": str(int(self.dead_peer_s * 1000)),
        }


DEFAULT_TIMING = LeaseTiming()


def lease_key(schema: str) -> int:
    """The signed 64-bit advisory-lock key of the daemon lease of the journal in `schema`."""
    digest = hashlib.sha256(f"syncengine daemon lease\0{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease:
    """The daemon lease of one journal, on a connection of its own.

    `acquire` waits for it; `watch` returns (or raises) once it is lost.
    """

    def __init__(self, dsn: str, schema: str, *, timing: LeaseTiming = DEFAULT_TIMING) -> None:
        self._dsn = dsn
        self._schema = schema
        self._key = lease_key(schema)
        self.timing = timing
        self._connection: asyncpg.Connection | None = None
        #: True from the moment the lock is taken until it is released or lost.
        self.held = False
        #: True once a connection was made: later failures are waited out.
        self._reached = False

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process now holds it."""
        connection = await self._connect()
        try:
            async with asyncio.timeout(self.timing.check_timeout_s):
                got = await connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key)
        except Exception as exc:  # noqa: BLE001 - any failure: reconnect on the next try
            log.warning("failover.try_failed", error=type(exc).__name__)
            await self._drop()
            return False
        self.held = bool(got)
        return self.held

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until the lease is this process's (True) or `stop` is set (False).

        A database lost after the first connection is tried again each
        `poll_s`: a standby outlives a database restart. One that cannot
        be reached at all raises FatalError (a wrong URL fails at once).
        """
        announced = False
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    return True
            except FatalError as exc:
                if not self._reached:
                    raise  # a wrong URL or a database down at start: say so now (exit 3)
                log.warning("failover.database_unreachable", error=str(exc))
            if not announced:
                log.info("failover.standby", schema=self._schema)
                announced = True
            try:
                async with asyncio.timeout(self.timing.poll_s):
                    await stop.wait()
            except TimeoutError:
                pass
        return False

    async def watch(self) -> str:
        """Returns, with the reason, once the lease is no longer certainly held.

        Asks the lease's connection every `check_s`; an error or no answer
        within `check_timeout_s` means the session may be gone (or about to
        be, for the server), and with it the lease.
        """
        while True:
            await asyncio.sleep(self.timing.check_s)
            connection = self._connection
            if connection is None or connection.is_closed():
                return self._lost("the lease's connection closed")
            try:
                async with asyncio.timeout(self.timing.check_timeout_s):
                    await connection.fetchval("SELECT 1")
            except TimeoutError:
                return self._lost(f"no answer from the database in {self.timing.check_timeout_s} s")
            except Exception as exc:  # noqa: BLE001 - any failure loses the lease
                return self._lost(f"the lease's connection failed: {type(exc).__name__}")

    def _lost(self, reason: str) -> str:
        self.held = False
        log.error("failover.lease_lost", reason=reason)
        return reason

    async def release(self) -> None:
        """Give the lease up (closing its session); safe to call twice."""
        self.held = False
        await self._drop()

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        import asyncpg  # lazily: only a PostgreSQL journal needs the driver

        try:
            self._connection = await asyncpg.connect(
                self._dsn,
                timeout=self.timing.check_timeout_s,
                server_settings=self.timing.keepalive_settings("syncengine daemon lease"),
            )
            self._reached = True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise FatalError(
                f"journal {mask_dsn(self._dsn)} (schema {self._schema}): cannot connect for"
                f" the daemon lease: {type(exc).__name__}"
            ) from None
        return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                async with asyncio.timeout(self.timing.check_timeout_s):
                    await connection.close()
            except Exception:  # noqa: BLE001 - a dead connection is closed by terminating it
                connection.terminate()
