"""`syncengine worker`: take partitions of the pass, a few at a time, until none is left.

Each worker opens the journal beside the others (the journal's holder lock
in shared mode; the partition leases keep them apart), one HTTP session,
token provider and limiter, and for each partition it leases runs the
ordinary engine over that partition's share of the feed
(`PartitionSource`) and of the journal's pending records (the engine's key
filter), from the partition's own checkpoint. When every unfinished
partition is leased by others, it waits: one of them may die, and its
partition is then this worker's to finish.

A worker whose lease's connection fails stops its partition (the server
may have freed the lease, and another worker may be taking it over), so a
partition is worked by at most one worker but for `LeaseTiming.self_fence_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import dataclass

import structlog

from syncengine.config import Config, mask_dsn
from syncengine.engine import Engine, PassCounts
from syncengine.errors import ConfigError, FatalError
from syncengine.exit_status import EXIT_FATAL
from syncengine.failover.lease import DEFAULT_TIMING, LeaseTiming
from syncengine.journal import Journal
from syncengine.journal.lock import describe_holder
from syncengine.runner import LiveParts, engine_settings, exit_status_for, open_engine, record_end
from syncengine.sources import Source, open_source
from syncengine.workers.leases import PartitionLease, PartitionTable, watch_lease
from syncengine.workers.partition import PartitionSource, key_filter
from syncengine.workers.shared_read import SharedPartitionSource, SharedRead

log = structlog.get_logger("syncengine.workers")


#: Partitions a worker works at a time: one partition's pass ends with a
#: tail of partly filled chunks and a last commit; several overlap theirs.
DEFAULT_AT_ONCE = 4


@dataclass(slots=True)
class Outcome:
    """The partitions a worker worked: counts, how many it finished, one it lost."""

    counts: PassCounts
    done: int = 0
    lost: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one worker did: its counts over every partition it finished."""

    counts: PassCounts
    partitions_done: int
    interrupted: bool
    exit_status: int
    elapsed_s: float


def worker_name() -> str:
    """How the partitions table names this worker (host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def journal_database(config: Config) -> tuple[str, str]:
    """The journal's DSN and schema; ConfigError when the journal is not on PostgreSQL."""
    url = config.journal.url
    if url is None:
        raise ConfigError(
            'workers need the journal on PostgreSQL ([journal] url = "postgresql://..."):'
            " the partitions and their leases live beside it"
        )
    return url, config.journal.schema


def add_counts(total: PassCounts, more: PassCounts) -> None:
    """Adds `more` into `total`, field by field."""
    for name, value in more.as_dict().items():
        setattr(total, name, getattr(total, name) + value)


async def run_worker(
    config: Config,
    *,
    stop: asyncio.Event,
    partitions: int,
    at_once: int = DEFAULT_AT_ONCE,
    join_only: bool = False,
    timing: LeaseTiming = DEFAULT_TIMING,
) -> WorkerResult:
    """Works partitions until the pass has none left; the exit status as for `run`.

    Up to `at_once` partitions are worked at a time, each by an engine of
    its own, all sharing the worker's client, token and limiter (so the
    worker never has more than `[limits] concurrency` requests in flight).

    With `join_only`, a worker that finds the last pass finished does not
    begin another (the `migrate --workers` launcher began it already).
    """
    dsn, schema = journal_database(config)
    try:
        return await _run_worker(config, dsn, schema, stop, partitions, at_once, join_only, timing)
    except database_errors() as exc:
        raise FatalError(
            f"workers: the journal's database {mask_dsn(dsn)} (schema {schema}) failed:"
            f" {type(exc).__name__}"
        ) from None


def database_errors() -> tuple[type[BaseException], ...]:
    """What asyncpg raises when the server (or the link to it) fails a statement."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def _run_worker(
    config: Config,
    dsn: str,
    schema: str,
    stop: asyncio.Event,
    partitions: int,
    at_once: int,
    join_only: bool,
    timing: LeaseTiming,
) -> WorkerResult:
    """`run_worker`, its database errors left to it."""
    started = time.monotonic()
    table = PartitionTable(dsn, schema, timing=timing)
    total = PassCounts()
    done = 0
    interrupted = False
    try:
        async with open_engine(
            config, command="worker", settings=engine_settings(config), exclusive=False
        ) as parts:
            await table.open(partitions)
            await table.share_journal(
                describe_holder(
                    f"syncengine worker {worker_name()}, one of a pass's workers", now=time.time()
                ),
                where=parts.journal.where,
            )
            if not join_only and await table.begin_pass_if_complete():
                log.info("workers.pass_begun", partitions=partitions)
            run_id = await parts.journal.start_run("worker", now=time.time())
            exit_status = EXIT_FATAL
            try:
                outcome = await _work_partitions(
                    parts, config, table, partitions, at_once, stop, timing
                )
                add_counts(total, outcome.counts)
                done = outcome.done
                if outcome.lost is not None:
                    raise FatalError(
                        f"workers: lost the lease of partition {outcome.lost}; "
                        "another worker takes it over from its checkpoint"
                    )
                interrupted = stop.is_set()
                exit_status = exit_status_for(total, interrupted=interrupted)
            finally:
                await record_end(
                    parts.journal,
                    run_id,
                    exit_status=exit_status,
                    counts=total,
                    failing=exit_status == EXIT_FATAL,
                )
    finally:
        await table.close()
    elapsed_s = time.monotonic() - started
    log.info(
        "workers.summary",
        partitions_done=done,
        exit_status=exit_status,
        elapsed_s=round(elapsed_s, 3),
        **total.as_dict(),
    )
    return WorkerResult(total, done, interrupted, exit_status, elapsed_s)


async def _work_partitions(
    parts: LiveParts,
    config: Config,
    table: PartitionTable,
    partitions: int,
    at_once: int,
    stop: asyncio.Event,
    timing: LeaseTiming,
) -> Outcome:
    """Leases and works partitions, `at_once` at most, until none is left or `stop`.

    While every unfinished partition is leased by others, polls every
    `poll_s`: a worker that dies frees its partitions for this one. After a
    lost lease no partition is begun; the ones running finish.
    """
    outcome = Outcome(PassCounts())
    running: dict[asyncio.Task[tuple[PassCounts, bool]], int] = {}
    reads: list[SharedRead] = []
    try:
        while True:
            wanted = 0 if stop.is_set() or outcome.lost is not None else at_once - len(running)
            leases = await _lease_up_to(table, wanted)
            sources = await _sources(parts.journal, config, leases, partitions, reads)
            for lease in leases:
                source = sources[lease.partition]
                fenced = parts.journal.fenced(table.holds_for(lease))
                task = asyncio.create_task(
                    _work(parts, fenced, config, lease, source, stop, timing)
                )
                running[task] = lease.partition
            if not running:
                if stop.is_set() or outcome.lost is not None or await table.unfinished() == 0:
                    return outcome
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timing.poll_s):
                        await stop.wait()
                continue
            finished, _ = await asyncio.wait(
                running, timeout=timing.poll_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                number = running.pop(task)
                counts, done = task.result()
                add_counts(outcome.counts, counts)
                outcome.done += done
                if not done and not stop.is_set():
                    outcome.lost = number
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for read in reads:
            await read.close()


async def _lease_up_to(table: PartitionTable, wanted: int) -> list[PartitionLease]:
    """Up to `wanted` partitions nobody holds, leased now (fewer when fewer are free)."""
    leases: list[PartitionLease] = []
    while len(leases) < wanted:
        lease = await table.lease()
        if lease is None:
            break
        leases.append(lease)
    return leases


async def _sources(
    journal: Journal,
    config: Config,
    leases: list[PartitionLease],
    partitions: int,
    reads: list[SharedRead],
) -> dict[int, Source]:
    """Each newly leased partition's feed: one read shared by those that start at the top.

    A partition with neither checkpoint nor high water (a pass's first read)
    starts at the top of the feed, as do the others leased with it; they
    share one `SharedRead` (appended to `reads`). The rest read on their own.
    """
    fresh: list[int] = []
    sources: dict[int, Source] = {}
    for lease in leases:
        source = PartitionSource(open_source(config), lease.partition, partitions)
        untouched = (
            await journal.checkpoint(source.source_id) is None
            and await journal.high_water(source.source_id) is None
        )
        if untouched:
            fresh.append(lease.partition)
        else:
            sources[lease.partition] = source
    if len(fresh) == 1:
        sources[fresh[0]] = PartitionSource(open_source(config), fresh[0], partitions)
    elif fresh:
        shared = SharedRead(open_source(config), partitions, fresh)
        reads.append(shared)
        sources.update((number, shared.source(number)) for number in fresh)
    return sources


async def _work(
    parts: LiveParts,
    journal: Journal,
    config: Config,
    lease: PartitionLease,
    source: Source,
    stop: asyncio.Event,
    timing: LeaseTiming,
) -> tuple[PassCounts, bool]:
    """One partition through the engine; (its counts, True when finished and marked done).

    `journal` is the worker's, fenced by the partition's lease: its group
    commits are refused once the lease is gone (`journal.pg_fence`).
    """
    number, partitions = lease.partition, lease.partitions
    log.info(
        "workers.partition_leased",
        partition=number,
        partitions=partitions,
        shared_read=isinstance(source, SharedPartitionSource),
    )
    engine = Engine(
        journal=journal,
        writer=parts.validator or parts.client,
        settings=engine_settings(config),
        source=source,
        keys=key_filter(number, partitions),
    )
    partition_stop = asyncio.Event()
    lost: list[str] = []

    async def stop_on_signal() -> None:
        await stop.wait()
        partition_stop.set()

    async def stop_on_lost_lease() -> None:
        lost.append(await watch_lease(lease, timing))
        log.error("workers.lease_lost", partition=number, reason=lost[-1])
        partition_stop.set()

    watchers = [
        asyncio.create_task(stop_on_signal()),
        asyncio.create_task(stop_on_lost_lease()),
    ]
    try:
        counts = await engine.run(partition_stop)
    except BaseException:
        await lease.abandon()
        raise
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    if engine.stopped_early or lost:
        await lease.abandon()
        with contextlib.suppress(Exception):
            await lease.connection.close()
        return counts, False
    try:
        await lease.finish(worker_name())
    except Exception as exc:  # noqa: BLE001 - the lease's session failed: treat it as lost
        log.warning("workers.lease_lost", partition=number, reason=type(exc).__name__)
        lease.connection.terminate()
        return counts, False
    await lease.connection.close()
    log.info("workers.partition_done", partition=number, **counts.as_dict())
    return counts, True
