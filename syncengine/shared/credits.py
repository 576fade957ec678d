"""The org's credits remaining, shared: every process pauses at the reserve together.

Credits are counted per org by the CRM, so the last `X-API-CREDITS-REMAINING`
any process saw is the truth for all of them. Each process publishes the
values it sees (the latest one, at most every `interval_s`) to one row per
org, and applies the row's value when another process wrote it since it last
looked (`adopt`), so a Contacts sync stops at the reserve that a Leads sync
reached. A value older than `max_age_s` is stale (credits are replenished
over the day) and is not applied.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from syncengine.errors import FatalError
from syncengine.shared.connection import SerialConnection

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Report:
    """The org's row: the credits one process saw, how long ago, and who."""

    remaining: int
    age_s: float
    reporter: str
    serial: float  # the report's server time, to tell a new report from one applied


def adopt(report: Report | None, *, me: str, applied: float, max_age_s: float) -> bool:
    """Whether this process should apply `report` (pure).

    Only another process's report, newer than the last one applied, and
    fresh: our own values reached our limiter when we saw them.
    """
    if report is None or report.reporter == me:
        return False
    return report.serial > applied and report.age_s <= max_age_s


class CreditsBoard:
    """Publishes this process's credit headers and applies the others'."""

    def __init__(
        self,
        connection: SerialConnection,
        *,
        org: str,
        schema: str,
        me: str,
        interval_s: float = 0.5,
        max_age_s: float = 600.0,
    ) -> None:
        self._connection = connection
        self._org = org
        self._me = me
        self._interval_s = interval_s
        self._max_age_s = max_age_s
        self._seen: int | None = None
        self._published: int | None = None
        self._applied = 0.0
        self._task: asyncio.Task[None] | None = None
        self._publish_sql = (
            f'INSERT INTO "{schema}".org_credits (org, remaining, reported_at, reporter) '
            "VALUES ($1, $2, clock_timestamp(), $3) ON CONFLICT (org) DO UPDATE SET "
            "remaining = excluded.remaining, reported_at = excluded.reported_at, "
            "reporter = excluded.reporter"
        )
        self._read_sql = (
            "SELECT remaining, extract(epoch FROM clock_timestamp() - reported_at) AS age_s, "
            "reporter, extract(epoch FROM reported_at) AS serial "
            f'FROM "{schema}".org_credits WHERE org = $1'
        )

    def report(self, remaining: int | None) -> None:
        """The limiter's credits listener: remember the latest value for the next publish."""
        if remaining is not None:
            self._seen = remaining

    def start(self, apply: Callable[[int | None], None]) -> None:
        """Follow the board in the background, handing others' values to `apply`."""
        self._task = asyncio.create_task(self._follow(apply), name="shared-credits")

    async def stop(self) -> None:
        """Stop following (the last value seen is published first)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(FatalError):  # a lost database already ended the pass
            await self._publish()

    async def sync_once(self, apply: Callable[[int | None], None]) -> None:
        """Publish what is new here, then apply what is new elsewhere."""
        await self._publish()
        row = await self._connection.run(lambda c: c.fetchrow(self._read_sql, self._org))
        report = _report(row)
        if adopt(report, me=self._me, applied=self._applied, max_age_s=self._max_age_s):
            assert report is not None
            self._applied = report.serial
            log.info("limits.shared_credits", remaining=report.remaining)
            apply(report.remaining)

    async def _publish(self) -> None:
        seen = self._seen
        if seen is None or seen == self._published:
            return
        await self._connection.run(
            lambda c: c.execute(self._publish_sql, self._org, seen, self._me)
        )
        self._published = seen

    async def _follow(self, apply: Callable[[int | None], None]) -> None:
        """Sync every `interval_s`; a lost database is the slots' to report, not ours."""
        try:
            while True:
                await self.sync_once(apply)
                await asyncio.sleep(self._interval_s)
        except FatalError as exc:
            log.warning("limits.shared_credits_stopped", reason=str(exc))


def _report(row: asyncpg.Record | None) -> Report | None:
    if row is None:
        return None
    return Report(
        remaining=int(row["remaining"]),
        age_s=float(row["age_s"]),
        reporter=str(row["reporter"]),
        serial=float(row["serial"]),
    )
