"""Killed runs on a PostgreSQL journal: an unfinished run counts only once its session is gone.

`Journal.killed_runs_since` feeds the client's read-back of lost answers (a
re-sent insert met by DUPLICATE_DATA taken as its own earlier insert). With
workers, or a standby beside a live daemon, other processes' runs are open
at once: taking them for killed would let a real duplicate pass for our own
insert. The other process here is real, and is killed with SIGKILL.
"""

# ruff: noqa: F811 - `pg_journal_config` is a fixture imported from tests.journal_backends

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from syncengine.config import JournalConfig
from syncengine.journal import Journal
from syncengine.journal.pg_connection import connect
from syncengine.journal.pg_schema import MIGRATIONS, migrate
from tests.journal_backends import pg_journal_config  # noqa: F401

_OTHER = r"""
import asyncio, sys, time
from syncengine.config import JournalConfig
from syncengine.journal import Journal

async def main():
    url, schema, path = sys.argv[1:4]
    journal = await Journal.open(JournalConfig(path=path, url=url, schema=schema))
    print("@", await journal.start_run("worker", now=1000.0), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _start_other(config: JournalConfig) -> subprocess.Popen[str]:
    """Another process with a run open on the journal (as a worker, or an active daemon)."""
    return subprocess.Popen(
        [sys.executable, "-c", _OTHER, str(config.url), config.schema, str(config.path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


async def _word(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    while True:
        line = await asyncio.to_thread(process.stdout.readline)
        if not line or line.startswith("@ "):
            return line[2:].strip()


async def _killed_within(journal: Journal, seconds: float) -> float | None:
    deadline = time.monotonic() + seconds
    while True:
        since = await journal.killed_runs_since()
        if since is not None or time.monotonic() > deadline:
            return since
        await asyncio.sleep(0.05)


async def test_a_live_processs_open_run_is_not_killed_until_it_is(
    pg_journal_config: JournalConfig,
) -> None:
    config = pg_journal_config
    await (await Journal.open(config)).close()
    other = _start_other(config)
    try:
        assert await _word(other)  # its run is recorded, and it lives on
        async with await Journal.open(config) as journal:
            assert await journal.killed_runs_since() is None
            other.kill()
            other.wait()
            assert await _killed_within(journal, 10.0) == 1000.0
    finally:
        other.kill()
        other.wait()
        if other.stdout is not None:
            other.stdout.close()


async def test_an_open_run_of_this_process_elsewhere_and_a_closed_session(
    pg_journal_config: JournalConfig,
) -> None:
    """Two sessions in one process: the open run lives with its session, not its process."""
    config = pg_journal_config
    first = await Journal.open(config)
    try:
        await first.start_run("worker", now=2000.0)
        async with await Journal.open(config) as second:
            assert await second.killed_runs_since() is None
            await first.close()
            assert await _killed_within(second, 10.0) == 2000.0
    finally:
        await first.close()


async def test_runs_from_before_the_upgrade_still_count_as_killed(
    pg_journal_config: JournalConfig,
) -> None:
    """A version 1 schema's unfinished run (no session recorded) counts as killed, as it did."""
    config, schema = pg_journal_config, pg_journal_config.schema
    connection = await connect(str(config.url), schema, purpose="test")
    try:
        await migrate(connection, schema, "test", migrations=MIGRATIONS[:1])
        await connection.execute("INSERT INTO runs (command, started_at) VALUES ('run', 3000.0)")
    finally:
        await connection.close()
    async with await Journal.open(config) as journal:  # upgrades the schema
        assert await journal.killed_runs_since() == 3000.0
        await journal.start_run("run", now=4000.0)  # alive: not counted
        assert await journal.killed_runs_since() == 3000.0
