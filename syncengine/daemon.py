"""`syncengine daemon`: follow the feed until told to stop.

The same engine as `run`, in follow mode: the source waits for the feed to
grow instead of ending, a partial chunk goes out after `[daemon] linger_ms`,
retries run on their schedule, and the recorder checkpoints continuously. An
optional loopback port serves Prometheus metrics and health checks, read from
the live objects at scrape time (`LiveView`), so the hot path pays nothing.

SIGTERM/SIGINT stop intake; in-flight requests finish (or are journaled as
pending) within `[daemon] grace_s`; the exit status is 0. A fatal error
(credentials revoked, scope refused) ends the daemon with exit 3 instead of
spinning on it.

On a PostgreSQL journal any number of daemons may run: the one holding the
journal's lease (`failover.lease`) is active, the others stand by
(`failover.standby`) and take over, from the checkpoint, once it is gone.
A daemon that loses the lease while active stops with exit 3, so it never
goes on syncing beside its successor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from functools import partial

import structlog

from syncengine.config import Config
from syncengine.errors import FatalError, JournalLockedError
from syncengine.exit_status import EXIT_FATAL, EXIT_OK
from syncengine.failover.lease import Lease
from syncengine.failover.standby import standby_ops
from syncengine.metrics import EngineView
from syncengine.ops_server import SharedCheck, serve_ops
from syncengine.runner import LiveParts, daemon_settings, open_engine, record_end
from syncengine.sampler import reading_of, sampled
from syncengine.sources import Source, open_source

log = structlog.get_logger("syncengine.daemon")


class LiveView:
    """The daemon's state as the metrics collector sees it (an `EngineView`)."""

    def __init__(self, parts: LiveParts) -> None:
        self._parts = parts

    @property
    def records_by_outcome(self) -> Mapping[str, int]:
        """Records settled since the daemon started, by outcome."""
        counts = self._parts.engine.counts
        return {
            "synced": counts.synced,
            "failed": counts.failed - counts.bad_input,
            "retry_scheduled": counts.retries_scheduled,
            "bad_input": counts.bad_input,
        }

    @property
    def requests_by_status_code(self) -> Mapping[tuple[str, str], int]:
        """Records-API answers by (HTTP status, whole-request code)."""
        stats = self._parts.client.stats.by_status_code
        return {(str(status), code): count for (status, code), count in stats.items()}

    @property
    def requests_in_flight(self) -> int:
        """Requests the limiter has let out and not yet seen answered."""
        return self._parts.limiter.in_flight

    @property
    def concurrency_limit(self) -> int:
        """The limiter's current adaptive limit."""
        return self._parts.limiter.limit

    @property
    def queue_depth(self) -> int:
        """Changes read and not yet handed to a sender."""
        return self._parts.engine.queue_depth

    @property
    def token_refreshes(self) -> int:
        """Tokens this process minted."""
        return self._parts.tokens.mints

    @property
    def throttled(self) -> int:
        """429 answers seen."""
        return self._parts.client.stats.throttled

    @property
    def credits_remaining(self) -> int | None:
        """The CRM's last credits figure, when it sent one."""
        return self._parts.client.stats.credits_remaining

    @property
    def sync_lag_s(self) -> float:
        """Age of the oldest change read and not yet settled."""
        return self._parts.engine.sync_lag_s()

    @property
    def credits_spent(self) -> int:
        """Credits this process's answered calls cost, by the cost model."""
        return self._parts.client.stats.credits_spent

    @property
    def credits_saved(self) -> Mapping[str, float]:
        """Credits the daemon did not spend: records folded, found unchanged or refused
        before sending."""
        counts, model = self._parts.engine.counts, self._parts.client.credit_model
        return {
            "coalescing": model.records_cost(counts.coalesced),
            "skip_unchanged": model.records_cost(counts.unchanged),
            "validation": model.records_cost(self._parts.locally_refused),
        }


class ReadinessChecks:
    """`/readyz`: is the token usable and the feed reachable?

    The feed is asked through its own `check_reachable` (a PostgreSQL feed
    opens one connection, a file feed looks at its folder). The daemon wraps
    this in `SharedCheck`, so those connections are one at a time, at most
    one per `READY_CACHE_S`, however many probes arrive.
    """

    def __init__(self, parts: LiveParts, config: Config) -> None:
        self._parts = parts
        self._source: Source = open_source(config)  # opens nothing until asked

    async def __call__(self) -> dict[str, str | None]:
        """Check name → None when fine, else a short reason (never a secret)."""
        return {"token": await self._token(), "source": await self._source.check_reachable()}

    async def _token(self) -> str | None:
        left_s = self._parts.tokens.valid_for_s()
        if left_s is not None and left_s > 0:
            return None
        try:
            await self._parts.tokens.token()
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as a reason
            return f"no valid access token: {type(exc).__name__}"
        return None


class LeaseCheck:
    """An active daemon's readiness with its lease: the checks, plus `lease`."""

    def __init__(self, checks: ReadinessChecks, lease: Lease) -> None:
        self._checks = checks
        self._lease = lease

    async def __call__(self) -> dict[str, str | None]:
        """The usual checks, and whether the lease is still held."""
        answers = await self._checks()
        answers["lease"] = None if self._lease.held else "the lease was lost"
        return answers


@contextlib.asynccontextmanager
async def _ops(config: Config, parts: LiveParts, lease: Lease | None) -> AsyncIterator[None]:
    port = config.daemon.metrics_port
    if port is None:
        yield
        return
    view: EngineView = LiveView(parts)  # checked against the protocol by mypy
    checks = ReadinessChecks(parts, config)
    async with serve_ops(
        port=port,
        view=view,
        check_ready=SharedCheck(checks if lease is None else LeaseCheck(checks, lease)),
        check_live=parts.journal.commit_stall,
        role=None if lease is None else "active",
    ) as server:
        log.info("daemon.ops_listening", url=server.url)
        yield


async def run_daemon(config: Config, *, stop: asyncio.Event) -> int:
    """Follows the feed until `stop` is set; returns the exit status (0 on a clean stop).

    On a PostgreSQL journal, first waits (standby) for the journal's lease.
    FatalError and JournalLockedError propagate to the CLI (exit 3 and 4).
    """
    url = config.journal.url
    if url is None:
        return await _run_active(config, stop=stop, lease=None)
    lease = Lease(url, config.journal.schema)
    try:
        async with standby_ops(config.daemon.metrics_port):
            if not await lease.acquire(stop):
                log.info("daemon.stopped", exit_status=EXIT_OK, role="standby")
                return EXIT_OK
        log.info("failover.active", schema=config.journal.schema)
        return await _active_with_lease(config, stop=stop, lease=lease)
    finally:
        await lease.release()


async def _active_with_lease(config: Config, *, stop: asyncio.Event, lease: Lease) -> int:
    """Runs the daemon while the lease is held; a lost lease ends it with FatalError.

    A lost lease cancels the pass at once rather than draining it: a
    standby may be taking over, and whatever this daemon read but did not
    journal stays before the checkpoint for it. The journal may still be
    held for a moment by the last holder's session (a machine cut off,
    until the server drops it) or by a `run`: the daemon holds the lease
    and tries again every poll until it gets the journal.
    """
    lost: list[str] = []
    active = asyncio.create_task(_run_holding(config, stop=stop, lease=lease))

    async def watch() -> None:
        lost.append(await lease.watch())
        active.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await active
    except asyncio.CancelledError:
        if not lost:
            raise
        raise FatalError(f"daemon: lost the journal's lease ({lost[0]}); stopped") from None
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _run_holding(config: Config, *, stop: asyncio.Event, lease: Lease) -> int:
    """The daemon, once the journal is free for it (retried every poll until then)."""
    while True:
        try:
            return await _run_active(config, stop=stop, lease=lease)
        except JournalLockedError as exc:
            if stop.is_set():
                return EXIT_OK
            log.warning("failover.journal_still_held", detail=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease.timing.poll_s):
                    await stop.wait()


async def _run_active(config: Config, *, stop: asyncio.Event, lease: Lease | None) -> int:
    """The daemon proper: follows the feed until `stop` is set."""
    started = time.monotonic()
    async with open_engine(config, command="daemon", settings=daemon_settings(config)) as parts:
        journal = parts.journal
        run_id = await journal.start_run("daemon", now=time.time())
        exit_status = EXIT_FATAL
        try:
            async with (
                _ops(config, parts, lease),
                sampled(journal, run_id, partial(reading_of, parts)),
            ):
                log.info("daemon.started", linger_ms=config.daemon.linger_ms)
                await parts.engine.run(stop)
            exit_status = EXIT_OK
        finally:
            counts = parts.engine.counts
            await record_end(
                journal,
                run_id,
                exit_status=exit_status,
                counts=counts,
                failing=exit_status != EXIT_OK,
            )
            log.info(
                "daemon.stopped",
                exit_status=exit_status,
                uptime_s=round(time.monotonic() - started, 3),
                **counts.as_dict(),
            )
    return exit_status
