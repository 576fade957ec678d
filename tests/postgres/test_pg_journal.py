"""The journal in a PostgreSQL schema: config, the holder lock, group commits, jobs, secrets.

The operations shared with SQLite run on both backends in
tests/unit/test_journal_store.py; here is what is PostgreSQL's own. Each
test has a schema of its own (`pg_journal_config`), dropped after it.
"""

# ruff: noqa: F811 - `pg_journal_config` is a fixture imported from tests.journal_backends

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import asyncpg
import pytest

import syncengine
from syncengine.config import JournalConfig, load_config
from syncengine.errors import ConfigError, FatalError, JournalLockedError
from syncengine.journal import Journal, RecordUpdate, SyncedRow
from syncengine.journal.database import changed_rows, numbered
from syncengine.journal.pg_schema import SCHEMA_VERSION
from syncengine.journal.pg_writes import fold
from syncengine.model import Checkpoint, Operation, RecordState
from tests.journal_backends import DSN, admin_connection, pg_journal_config  # noqa: F401

_ROOT = Path(syncengine.__file__).resolve().parent.parent


def _synced(n: int, attempts: int = 1) -> SyncedRow:
    return (f"Leads:{n}", "Leads", f"crm-{n}", "update", attempts, n + 1, "feed")


class _Lost:
    """A state the schema's CHECK constraint rejects."""

    value = "lost"


def _failed(n: int, state: str = "failed") -> RecordUpdate:
    known = state in {"failed", "pending", "synced"}
    return RecordUpdate(
        f"Leads:{n}", "Leads", str(n), Operation.UPDATE,
        RecordState(state) if known else cast(RecordState, _Lost()),
        2, "INVALID_DATA", "bad value", {"api_name": "Email"}, 100.0, b'{"id":"1"}', n + 1,
    )  # fmt: skip


# -- config -------------------------------------------------------------------


def _config(tmp_path: Path, journal: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(
        '[source]\ntype = "jsonl"\npath = "f.jsonl"\n'
        '[crm]\napi_domain = "https://www.zohoapis.com"\naccounts_url = "https://accounts.zoho.com"\n'
        'client_id = "i"\nclient_secret = "s"\nrefresh_token = "r"\nmodule = "Leads"\n'
        f"[journal]\n{journal}\n",
        encoding="utf-8",
    )
    return path


def test_config_takes_url_and_schema(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, f'url = "{DSN}"\nschema = "Sync_1"'))
    assert (config.journal.url, config.journal.schema) == (DSN, "Sync_1")
    default = load_config(_config(tmp_path, f'url = "{DSN}"'))
    assert default.journal.schema == "syncengine_journal"
    assert load_config(_config(tmp_path, "")).journal.url is None


@pytest.mark.parametrize(
    ("journal", "message"),
    [
        ('url = "postgresql://u:pw@h/db"\npath = "j.db"', "journal.url: and journal.path exclude"),
        ('schema = "s"', "journal.schema: applies only with journal.url"),
        ('url = "postgresql://u:pw@h/db"\nschema = "a-b"', "journal.schema: 'a-b' is not a valid"),
        ('url = "mysql://u:pw@h/db"', "journal.url: must be a postgresql:// URL"),
        ('url = "postgresql://u:pw@h:99999/db"', "journal.url: has an invalid port"),
        (
            'url = "postgresql://u:pw@h/db"\nschema = "syncengine"\n'
            '[limits]\nshared = "postgresql://u:pw@h/db"',
            "journal.schema: 'syncengine' is also limits.shared_schema",
        ),
    ],
)
def test_config_refuses_bad_journal_tables(tmp_path: Path, journal: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, journal))
    assert message in str(caught.value)
    assert "pw" not in str(caught.value)


def test_default_journal_schema_differs_from_the_shared_one(tmp_path: Path) -> None:
    """Both defaults together are a valid config: a user sets only the two URLs."""
    config = load_config(
        _config(
            tmp_path, 'url = "postgresql://u:pw@h/db"\n[limits]\nshared = "postgresql://u:pw@h/db"'
        )
    )
    assert config.journal.schema != config.limits.shared_schema


def test_config_does_not_show_the_dsn_in_its_repr(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, 'url = "postgresql://u:hunter2@h/db"'))
    assert "hunter2" not in repr(config)
    assert config.journal.where == "postgresql://u:***@h/db (schema syncengine_journal)"


def test_the_example_config_loads() -> None:
    """configs/postgres-journal.toml is a config the engine accepts."""
    example = _ROOT / "configs" / "postgres-journal.toml"
    environ = {
        "ZOHO_CLIENT_ID": "id",
        "ZOHO_CLIENT_SECRET": "secret",
        "ZOHO_REFRESH_TOKEN": "refresh",
        "SYNCENGINE_JOURNAL_DSN": "postgresql://syncengine:pw@db.internal:5432/syncengine",
    }
    config = load_config(example, environ=environ)
    assert config.journal.url == environ["SYNCENGINE_JOURNAL_DSN"]
    assert config.journal.schema == "leads_sync"


# -- pure parts ---------------------------------------------------------------


def test_placeholders_are_numbered_outside_literals() -> None:
    sql = "SELECT coalesce(code, '?') FROM t WHERE a = ? AND b IN (?, ?)"
    assert numbered(sql) == "SELECT coalesce(code, '?') FROM t WHERE a = $1 AND b IN ($2, $3)"
    assert changed_rows("UPDATE 12") == 12
    assert changed_rows("BEGIN") == 0


def test_fold_leaves_a_key_as_applying_its_rows_in_order_would() -> None:
    rows = [["a", 1, None], ["b", 2, "x"], ["a", 3, None], ["a", None, None]]
    # Column 1 is kept by the upsert when a later row has none; column 2 is not.
    assert fold(rows, kept=(1,)) == [["a", 3, None], ["b", 2, "x"]]


# -- opening, the holder lock -------------------------------------------------


async def test_a_fresh_schema_is_created_and_versioned(pg_journal_config: JournalConfig) -> None:
    async with await Journal.open(pg_journal_config) as journal:
        assert journal.path is None
        assert pg_journal_config.schema in journal.where
        assert await journal.counts() == {"synced": 0, "pending": 0, "failed": 0}
    admin = await admin_connection()
    try:
        version = await admin.fetchval(
            f'SELECT value FROM "{pg_journal_config.schema}".journal_meta WHERE name = $1',
            "version",
        )
    finally:
        await admin.close()
    assert version == str(SCHEMA_VERSION)


async def test_a_newer_or_foreign_schema_is_refused(pg_journal_config: JournalConfig) -> None:
    schema = pg_journal_config.schema
    async with await Journal.open(pg_journal_config):
        pass
    admin = await admin_connection()
    try:
        await admin.execute(
            f"UPDATE \"{schema}\".journal_meta SET value = '99' WHERE name = 'version'"
        )
        with pytest.raises(FatalError, match="schema version 99, newer than"):
            await Journal.open(pg_journal_config)
        await admin.execute(f'DROP TABLE "{schema}".journal_meta')
        with pytest.raises(FatalError, match="tables of another program"):
            await Journal.open(pg_journal_config)
    finally:
        await admin.close()


#: A process that holds the journal (`JournalConfig` fields as arguments) until killed.
_HOLDER = """
import asyncio, sys
from pathlib import Path
from syncengine.config import JournalConfig
from syncengine.journal import Journal, RecordUpdate
from syncengine.model import Checkpoint, RecordState

def row(n):
    return RecordUpdate(f"k{n}", "Leads", str(n), None, RecordState.FAILED, 1, "C",
                        "m", None, None, b"{}", n)

async def main(url, schema, holder):
    target = JournalConfig(path=Path("unused"), url=url, schema=schema)
    journal = await Journal.open(target, holder=holder, commit_process=True)
    batch = 0
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        await journal.submit([row(batch * 100 + i) for i in range(100)],
                             {"feed": Checkpoint(batch, batch)})
        batch += 1
        if batch == 1:
            print("ready", flush=True)
        await asyncio.sleep(0.005)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _start_holder(config: JournalConfig, holder: str) -> subprocess.Popen[bytes]:
    assert config.url is not None
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, config.url, config.schema, holder],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
    )
    assert process.stdout is not None
    while (line := process.stdout.readline()) != b"ready\n":  # past the log lines
        assert line, "the holder ended before it was ready"
    return process


async def test_a_second_holder_is_refused_naming_the_first_and_readers_work_beside(
    pg_journal_config: JournalConfig, holders: list[subprocess.Popen[bytes]]
) -> None:
    holders.append(_start_holder(pg_journal_config, "syncengine run -c cron.toml"))
    with pytest.raises(JournalLockedError) as caught:
        await Journal.open(pg_journal_config, holder="syncengine migrate -c cron.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert f"schema {pg_journal_config.schema}" in message
    assert "syncengine run -c cron.toml" in message
    assert f"pid {holders[0].pid}" in message
    async with await Journal.open(pg_journal_config) as reader:
        first = (await reader.counts())["failed"]
        assert first > 0
        assert len(await reader.failures(limit=5)) == 5
        assert (await reader.requeue_failed(ids=["0", "1", "2"], now=time.time())).requeued == 3
        await asyncio.sleep(0.2)
        assert (await reader.counts())["failed"] + 3 > first
        assert await reader.checkpoint("feed") is not None


async def test_the_lock_is_free_once_the_holder_is_killed_and_a_waiter_takes_it(
    pg_journal_config: JournalConfig, holders: list[subprocess.Popen[bytes]]
) -> None:
    holders.append(_start_holder(pg_journal_config, "syncengine daemon"))
    waiter = asyncio.ensure_future(
        Journal.open(pg_journal_config, holder="standby", commit_process=True, wait=True)
    )
    await asyncio.sleep(1.0)
    assert not waiter.done()
    holders[0].send_signal(signal.SIGKILL)
    journal = await asyncio.wait_for(waiter, 10)
    async with journal:
        assert (await journal.counts())["failed"] > 0
        await journal.submit([_synced(1)], {"feed": Checkpoint(10**6, 10**6)})
        assert await journal.checkpoint("feed") == Checkpoint(10**6, 10**6)
    # A clean close lets the next holder in at once.
    async with await Journal.open(pg_journal_config, holder="next"):
        pass


# -- group commits ------------------------------------------------------------


async def test_a_refused_commit_is_fatal_and_no_later_one_is_made(
    pg_journal_config: JournalConfig,
) -> None:
    async with await Journal.open(pg_journal_config, holder="t", commit_process=True) as journal:
        sent = [
            journal.submit([_synced(n) for n in range(k * 100, k * 100 + 100)]) for k in range(3)
        ]
        sent.append(journal.submit([_failed(900, "lost")], {"feed": Checkpoint(9, 9)}))
        sent.append(journal.submit([_synced(1000)], {"feed": Checkpoint(10, 10)}))
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        assert outcomes[:3] == [None] * 3
        assert all(isinstance(outcome, FatalError) for outcome in outcomes[3:])
        assert "check constraint" in str(outcomes[3])
        assert pg_journal_config.schema in str(outcomes[3])
        assert (await journal.counts())["synced"] == 300
        assert await journal.checkpoint("feed") is None


async def test_repeated_keys_in_one_commit_end_as_written_in_order(
    pg_journal_config: JournalConfig,
) -> None:
    """PostgreSQL refuses to upsert a row twice in one statement: the repeats are folded."""
    no_position = dataclasses.replace(_failed(5), position=None, source_id=None)
    async with await Journal.open(pg_journal_config, holder="t", commit_process=True) as journal:
        await journal.submit(
            [_synced(5), _synced(6), _synced(5, attempts=3), _failed(5), no_position, _synced(7)],
            {"feed": Checkpoint(42, 7)},
            {"feed": Checkpoint(50, 8)},
        )
        rows = {
            key: (state, position)
            for key, state, position in await journal._database.fetch(
                "SELECT key, state, position FROM records ORDER BY seq"
            )
        }
        assert list(rows) == ["Leads:5", "Leads:6", "Leads:7"]  # first journaled, first in line
        assert rows["Leads:5"] == ("failed", 6)  # the last row had no position: kept
        assert (await journal.checkpoint("feed"), await journal.high_water("feed")) == (
            Checkpoint(42, 7),
            Checkpoint(50, 8),
        )


async def test_a_stopped_worker_fails_its_commit_at_the_deadline(
    pg_journal_config: JournalConfig,
) -> None:
    async with await Journal.open(
        pg_journal_config, holder="t", commit_process=True, commit_timeout_s=1.0
    ) as journal:
        await journal.submit([_synced(1)], {"feed": Checkpoint(1, 1)})
        committer = journal._committer
        assert committer is not None
        os.kill(committer._process.pid, signal.SIGSTOP)
        waiting = journal.submit([_synced(2)], {"feed": Checkpoint(2, 2)})
        with pytest.raises(FatalError, match=r"not made within 1 s \(journal.commit_timeout_s\)"):
            await asyncio.wait_for(waiting, 10)
        assert await asyncio.wait_for(committer._process.wait(), 10) == -signal.SIGKILL
        assert await journal.checkpoint("feed") == Checkpoint(1, 1)


async def test_a_holder_whose_session_ends_commits_nothing_more(
    pg_journal_config: JournalConfig,
) -> None:
    """Its lock went with its session: another process may hold the journal by now."""
    async with await Journal.open(pg_journal_config, holder="t", commit_process=True) as journal:
        await journal.submit([_synced(1)], {"feed": Checkpoint(1, 1)})
        admin = await admin_connection()
        try:
            pid = journal._db.get_server_pid()
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
        with pytest.raises(FatalError, match="database session ended"):
            await journal.submit([_synced(2)], {"feed": Checkpoint(2, 2)})
        assert journal.commit_stall() is not None
    async with await Journal.open(pg_journal_config, holder="next") as journal:
        assert await journal.checkpoint("feed") == Checkpoint(1, 1)


# -- secrets ------------------------------------------------------------------


async def test_the_dsn_password_is_in_no_error_and_no_command_line(
    pg_journal_config: JournalConfig,
) -> None:
    secret = "s3cret-pw"
    unreachable = dataclasses.replace(
        pg_journal_config, url=f"postgresql://postgres:{secret}@127.0.0.1:9/test"
    )
    with pytest.raises(FatalError) as caught:
        await Journal.open(unreachable)
    assert secret not in str(caught.value)
    assert "postgres:***@127.0.0.1:9/test" in str(caught.value)
    # Trust authentication takes any password: the worker gets it, never on its command line.
    assert pg_journal_config.url is not None
    with_password = dataclasses.replace(
        pg_journal_config, url=pg_journal_config.url.replace("postgres@", f"postgres:{secret}@")
    )
    async with await Journal.open(with_password, holder="t", commit_process=True) as journal:
        await journal.submit([_synced(1)])
        assert secret not in journal.where
        committer = journal._committer
        assert committer is not None
        cmdline = Path(f"/proc/{committer._process.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline
        environ = Path(f"/proc/{committer._process.pid}/environ").read_bytes()
        assert secret.encode() not in environ


# -- bulk jobs ----------------------------------------------------------------


async def test_bulk_jobs_are_journaled_in_the_schema(pg_journal_config: JournalConfig) -> None:
    from syncengine.bulk.jobs_journal import JobLine

    async with await Journal.open(pg_journal_config, holder="t", commit_process=True) as journal:
        await journal.submit([_failed(3)])
        jobs = await asyncio.to_thread(journal.jobs)
        try:
            lines = [JobLine(f"Leads:{n}", n + 1, "feed", b'{"n":%d}' % n) for n in range(3)]
            job = jobs.plan(
                source="feed",
                module="Leads",
                operation=Operation.UPSERT,
                find_by="Email",
                lines=lines,
                last=Checkpoint("cur-9", 9, "g1"),
            )
            jobs.uploaded(job, "file-1")
            jobs.created(job, "job-1")
            [found] = jobs.unfinished()
            assert (found.id, found.state, found.file_id, found.job_id) == (
                job.id, "created", "file-1", "job-1",
            )  # fmt: skip
            assert found.last == Checkpoint("cur-9", 9, "g1")
            assert jobs.lines(found) == lines
            assert jobs.owed_keys() == {"Leads:3"}
            jobs.ended(job, "done")
            assert jobs.unfinished() == []
        finally:
            jobs.close()


async def test_status_reads_beside_a_closed_holder(pg_journal_config: JournalConfig) -> None:
    """Runs, a killed run and the last run read back as on SQLite."""
    async with await Journal.open(pg_journal_config) as gone:  # its session ends: killed
        killed = await gone.start_run("run", now=10.0)
    async with await Journal.open(pg_journal_config, holder="t") as journal:
        for _ in range(100):  # the closed session's backend ends a moment after its close
            if await journal.killed_runs_since() is not None:
                break
            await asyncio.sleep(0.05)
        assert await journal.killed_runs_since() == 10.0
        done = await journal.start_run("run", now=20.0)
        await journal.finish_run(done, now=30.0, exit_status=0, counts={"synced": 1})
        assert await journal.killed_runs_since() is None
        assert [run.run_id for run in await journal.runs()] == [killed, done]
    admin: asyncpg.Connection = await admin_connection()
    try:
        assert (
            await admin.fetchval(f'SELECT count(*) FROM "{pg_journal_config.schema}".holder') == 0
        )
    finally:
        await admin.close()
