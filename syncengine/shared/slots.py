"""The org's request slots: session advisory locks, shared by every process of the org.

Slot `n` of an org is the advisory lock `(lock_class(org), n)` for
`0 ≤ n < concurrency`; a write of more than 10 records also holds one of
the heavy slots `HEAVY_BASE + j` (`j < 10`, Zoho's heavy-call cap). A
request takes its slots in one round trip (the first free number, tried in
order, `pg_try_advisory_lock` stopping at the first success) and gives them
back in another, which also NOTIFYs the org's processes so their waiters
retry at once. Without a notification waiters retry every `poll_s`, which
is also how slots of a killed process are found: its session ends when its
socket closes, and the server frees its locks.

The org's limit is the largest `concurrency` among its configs: give them
all the same. The locks live in the database's advisory-lock space, visible
in `pg_locks`; another application using the same (class, number) pairs in
the same database would collide with them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from syncengine.limits import HEAVY_CONCURRENCY
from syncengine.shared.connection import SerialConnection
from syncengine.shared.keys import HEAVY_BASE, free_numbers, lock_class, release_channel

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger(__name__)

# No ORDER BY: a sort would run the filter, and take the lock, on every row. The
# scan yields the array's order and LIMIT stops it at the first lock taken.
_TAKE = """
SELECT n FROM unnest($2::int[]) AS n WHERE pg_try_advisory_lock($1, n) LIMIT 1
"""

# The heavy slot is tried first; the ordinary one only once a heavy one is held.
_TAKE_HEAVY = """
WITH heavy AS MATERIALIZED (
    SELECT n FROM unnest($2::int[]) AS n WHERE pg_try_advisory_lock($1, n) LIMIT 1
), ordinary AS MATERIALIZED (
    SELECT n FROM unnest($3::int[]) AS n
    WHERE (SELECT count(*) FROM heavy) > 0 AND pg_try_advisory_lock($1, n) LIMIT 1
)
SELECT (SELECT n FROM heavy) AS heavy, (SELECT n FROM ordinary) AS ordinary
"""

# Undoing half an attempt frees nothing anyone waits for: no NOTIFY, or heavy waiters
# would wake each other in a loop while the ordinary slots stay full.
_UNDO = """
SELECT count(*) FILTER (WHERE pg_advisory_unlock($1, n)) FROM unnest($2::int[]) AS n
"""

_GIVE_BACK = """
SELECT count(*) FILTER (WHERE pg_advisory_unlock($1, n)), pg_notify($3, '')
FROM unnest($2::int[]) AS n
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """The lock numbers one request holds (an ordinary slot, and a heavy one or none)."""

    numbers: tuple[int, ...]


class PostgresSlots:
    """`limits.SharedSlots` over advisory locks held on the process's shared connection."""

    def __init__(
        self, connection: SerialConnection, *, org: str, concurrency: int, poll_s: float = 0.2
    ) -> None:
        self._connection = connection
        self._class = lock_class(org)
        self._channel = release_channel(org)
        self._concurrency = concurrency
        self._poll_s = poll_s
        self._held: set[int] = set()
        self._freed: asyncio.Future[None] | None = None
        self._late: set[asyncio.Task[Any]] = set()

    async def listen(self) -> None:
        """Hear other processes' releases (their waiters' wake-up call is ours too)."""
        await self._connection.run(
            lambda c: c.add_listener(self._channel, lambda *_args: self._on_freed())
        )

    def _on_freed(self) -> None:
        """Wake every waiter of the current round (each retries once)."""
        freed, self._freed = self._freed, None
        if freed is not None and not freed.done():
            freed.set_result(None)

    def _next_freed(self) -> asyncio.Future[None]:
        """The future the next release completes (shared by all waiters until then)."""
        if self._freed is None:
            self._freed = asyncio.get_running_loop().create_future()
        return self._freed

    async def take(self, *, heavy: bool) -> object:
        """Wait until the org has a free slot (and heavy slot when `heavy`), then hold it."""
        while True:
            freed = self._next_freed()  # before trying: a release during the try counts
            attempt = asyncio.ensure_future(self._connection.run(lambda c: self._try(c, heavy)))
            try:
                lease = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                attempt.add_done_callback(self._give_back_late)
                raise
            if lease is not None:
                return lease
            # asyncio.wait, not wait_for: it never swallows this task's cancellation.
            await asyncio.wait((freed,), timeout=self._poll_s)

    async def give_back(self, lease: object) -> None:
        """Free the lease's locks and tell the org's waiters; finishes even if cancelled."""
        assert isinstance(lease, Lease)
        release = asyncio.ensure_future(self._connection.run(lambda c: self._release(c, lease)))
        self._late.add(release)
        release.add_done_callback(self._late.discard)
        await asyncio.shield(release)

    @property
    def held(self) -> int:
        """Lock numbers (ordinary and heavy) this process holds now."""
        return len(self._held)

    async def _try(self, connection: asyncpg.Connection, heavy: bool) -> Lease | None:
        """One attempt, under the connection's lock (so `_held` is current)."""
        held = frozenset(self._held)
        ordinary = free_numbers(self._concurrency, held)
        if not heavy:
            number = await connection.fetchval(_TAKE, self._class, ordinary)
            numbers: tuple[int, ...] = () if number is None else (number,)
        else:
            heavy_numbers = free_numbers(HEAVY_CONCURRENCY, held, base=HEAVY_BASE)
            row = await connection.fetchrow(_TAKE_HEAVY, self._class, heavy_numbers, ordinary)
            numbers = tuple(n for n in (row["heavy"], row["ordinary"]) if n is not None)
            if len(numbers) == 1:  # a heavy slot but no ordinary one: not enough
                await connection.fetchval(_UNDO, self._class, list(numbers))
                numbers = ()
        self._held.update(numbers)
        return Lease(numbers) if numbers else None

    async def _release(self, connection: asyncpg.Connection, lease: Lease) -> None:
        """Unlock the lease's numbers and notify, under the connection's lock."""
        self._held.difference_update(lease.numbers)
        await connection.fetchval(_GIVE_BACK, self._class, list(lease.numbers), self._channel)

    def _give_back_late(self, attempt: asyncio.Future[Lease | None]) -> None:
        """An attempt finished after its caller was cancelled: free what it took."""
        if attempt.cancelled() or attempt.exception() is not None:
            return
        lease = attempt.result()
        if lease is not None:
            task = asyncio.ensure_future(self.give_back(lease))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
