"""`migrate --workers N`: N `syncengine worker` processes on this machine, one pass.

The launcher begins the pass (every partition open again, unless a killed
pass left some unfinished, which this one then finishes), starts the
workers, passes SIGINT/SIGTERM on to them and waits. A worker that dies
leaves its partition to the others, so the pass still completes while one
worker lives; the launcher's exit status says whether it did.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from syncengine.config import Config, mask_dsn
from syncengine.errors import FatalError
from syncengine.exit_status import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED
from syncengine.journal import Journal
from syncengine.workers.leases import PartitionTable
from syncengine.workers.worker import database_errors, journal_database

log = structlog.get_logger("syncengine.workers")


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """The workers' exit statuses (negative: killed by that signal) and the pass's end."""

    statuses: tuple[int, ...]
    unfinished: int
    exit_status: int


def launch_status(statuses: tuple[int, ...], unfinished: int, *, interrupted: bool) -> int:
    """The launcher's exit status (pure): as a `migrate`, over all its workers.

    130 when interrupted; 3 when partitions are left unfinished (every
    worker died or stopped on a fatal error); 1 when a worker failed
    records; else 0. A worker killed while others finished its partition
    does not fail the pass.
    """
    if interrupted:
        return EXIT_INTERRUPTED
    if unfinished:
        return EXIT_FATAL
    if EXIT_SOME_FAILED in statuses:
        return EXIT_SOME_FAILED
    return EXIT_OK


def at_once_for(partitions: int, workers: int) -> int:
    """Partitions each of `workers` local workers works at a time: an even share (pure).

    Each worker has one `[limits] concurrency`, so a worker holding more than
    its share would have fewer requests per partition than the others.
    """
    return max(1, -(-partitions // workers))


def worker_command(config_path: Path, partitions: int, at_once: int) -> list[str]:
    """The command line of one worker the launcher starts."""
    return [
        sys.executable,
        "-m",
        "syncengine",
        "worker",
        "-c",
        str(config_path),
        "--partitions",
        str(partitions),
        "--at-once",
        str(at_once),
        "--join",
    ]


async def launch(
    config: Config, config_path: Path, *, workers: int, partitions: int, stop: asyncio.Event
) -> LaunchResult:
    """Runs one pass over `workers` local worker processes; see the module's docstring."""
    dsn, schema = journal_database(config)
    try:
        return await _launch(config, config_path, dsn, schema, workers, partitions, stop)
    except database_errors() as exc:
        raise FatalError(
            f"workers: the journal's database {mask_dsn(dsn)} (schema {schema}) failed:"
            f" {type(exc).__name__}"
        ) from None


async def _launch(
    config: Config,
    config_path: Path,
    dsn: str,
    schema: str,
    workers: int,
    partitions: int,
    stop: asyncio.Event,
) -> LaunchResult:
    """`launch`, its database errors left to it."""
    table = PartitionTable(dsn, schema)
    try:
        async with await Journal.open(config.journal):  # creates the journal's schema if new
            pass
        await table.open(partitions)
        begun = await table.begin_pass_if_complete()
        log.info("workers.launch", workers=workers, partitions=partitions, new_pass=begun)
        processes = [
            await asyncio.create_subprocess_exec(
                *worker_command(config_path, partitions, at_once_for(partitions, workers))
            )
            for _ in range(workers)
        ]

        async def forward_stop() -> None:
            await stop.wait()
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)

        forwarder = asyncio.create_task(forward_stop())
        try:
            statuses = tuple(await asyncio.gather(*(p.wait() for p in processes)))
        finally:
            forwarder.cancel()
        unfinished = await table.unfinished()
    finally:
        await table.close()
    status = launch_status(statuses, unfinished, interrupted=stop.is_set())
    return LaunchResult(statuses, unfinished, status)
