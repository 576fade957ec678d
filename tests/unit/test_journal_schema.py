"""The journal file: its mode, its schema version, upgrades and refusals."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncengine.errors import FatalError
from syncengine.journal import Journal
from syncengine.journal.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    migrate,
    prepare_file,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    return {name for (name,) in rows}


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """Run the test under umask 000, as a careless service manager might."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def test_new_journal_has_current_version_and_tables(tmp_path: Path) -> None:
    """A fresh file gets every table, the current user_version and our application id."""
    path = tmp_path / "j.db"
    async with await Journal.open(path):
        pass
    assert _pragma(path, "user_version") == SCHEMA_VERSION
    assert _pragma(path, "application_id") == APPLICATION_ID
    assert {"records", "checkpoints", "runs", "tokens"} <= _tables(path)


async def test_journal_is_in_wal_mode(tmp_path: Path) -> None:
    """The file is switched to WAL, so readers can work beside a run."""
    path = tmp_path / "j.db"
    async with await Journal.open(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.usefixtures("lax_umask")
async def test_files_are_owner_only_under_a_lax_umask(tmp_path: Path) -> None:
    """Journal, -wal, -shm and lock files are 0600 even with umask 000."""
    path = tmp_path / "j.db"
    async with await Journal.open(path, holder="test"):
        sidecars = [tmp_path / "j.db-wal", tmp_path / "j.db-shm", tmp_path / "j.db.lock"]
        assert all(p.exists() for p in sidecars)
        modes = {p.name: _mode(p) for p in [path, *sidecars]}
    assert modes == dict.fromkeys(modes, 0o600)


async def test_existing_lax_journal_is_tightened(tmp_path: Path) -> None:
    """A journal left world-readable by another tool is made 0600 on open."""
    path = tmp_path / "j.db"
    path.touch()
    path.chmod(0o644)
    async with await Journal.open(path):
        pass
    assert _mode(path) == 0o600


async def test_version_0_file_is_migrated(tmp_path: Path) -> None:
    """An empty SQLite file at user_version 0, made by hand, is upgraded and usable."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.commit()
    conn.close()
    async with await Journal.open(path) as journal:
        assert await journal.counts() == {"synced": 0, "pending": 0, "failed": 0}
    assert _pragma(path, "user_version") == SCHEMA_VERSION


def test_migrations_run_from_the_found_version(tmp_path: Path) -> None:
    """Only the steps above the file's version run, in order, and keep its data."""
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path) == 0
    conn.execute("INSERT INTO runs (command, started_at) VALUES ('run', 1.0)")
    later = (
        *MIGRATIONS,
        ("ALTER TABLE runs ADD COLUMN note TEXT",),
        ("UPDATE runs SET note = 'x'",),
    )
    assert migrate(conn, path, migrations=later) == SCHEMA_VERSION
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 2
    assert conn.execute("SELECT command, note FROM runs").fetchall() == [("run", "x")]
    conn.close()


def test_failed_migration_keeps_the_old_version(tmp_path: Path) -> None:
    """A migration that fails part-way leaves neither its tables nor a new version."""
    path = tmp_path / "j.db"
    conn = sqlite3.connect(path, isolation_level=None)
    broken = (("CREATE TABLE half (x)", "CREATE TABLE nonsense ("),)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, path, migrations=broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert not conn.in_transaction
    conn.close()
    assert _tables(path) == set()


async def test_newer_version_is_refused(tmp_path: Path) -> None:
    """A file from a newer engine is refused, naming the file and both versions."""
    path = tmp_path / "j.db"
    async with await Journal.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    conn.commit()
    conn.close()
    with pytest.raises(FatalError) as caught:
        await Journal.open(path)
    message = str(caught.value)
    assert str(path) in message
    assert str(SCHEMA_VERSION + 3) in message
    assert str(SCHEMA_VERSION) in message


async def test_other_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    """An SQLite file with foreign tables (a feed table, say) is refused, not altered."""
    path = tmp_path / "feed.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE changes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(FatalError, match="another program"):
        await Journal.open(path)
    assert _tables(path) == {"changes"}


async def test_non_database_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite gives a FatalError naming it, not a raw sqlite3 error."""
    path = tmp_path / "notes.db"
    path.write_text("this is not a database, just some notes\n" * 100)
    with pytest.raises(FatalError, match=r"notes\.db"):
        await Journal.open(path)


async def test_missing_directory_is_fatal(tmp_path: Path) -> None:
    """A journal path in a folder that does not exist fails with the path named."""
    path = tmp_path / "missing" / "j.db"
    with pytest.raises(FatalError, match="missing"):
        await Journal.open(path, holder="test")


async def test_concurrent_first_opens_both_succeed(tmp_path: Path) -> None:
    """Two opens racing on a fresh file upgrade it once and both get a working journal."""
    path = tmp_path / "j.db"
    first, second = await asyncio.gather(Journal.open(path), Journal.open(path, holder="run"))
    try:
        await second.start_run("run", now=1.0)
        last = await first.last_run()
        assert last is not None
        assert last.command == "run"
    finally:
        await first.close()
        await second.close()


def test_many_racing_first_opens_never_refuse_a_fresh_file(tmp_path: Path) -> None:
    """Four threads preparing each of many fresh files at once all succeed.

    The race is between separate reads of the header (a fresh file could look
    foreign) and two connections switching it to WAL at once (an immediate
    "database is locked"); one round rarely hits it, so this runs many.
    """
    failures: list[BaseException] = []
    for round_number in range(150):
        path = tmp_path / f"j{round_number}.db"
        start = threading.Barrier(4, timeout=30)

        def prepare(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                prepare_file(path, busy_timeout_s=10)
            except BaseException as error:  # collected, asserted below
                failures.append(error)

        threads = [threading.Thread(target=prepare) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _pragma(path, "user_version") == SCHEMA_VERSION
    assert failures == []


async def test_lax_wal_files_of_another_tool_are_tightened(tmp_path: Path) -> None:
    """World-readable -wal/-shm files found at open are made 0600 (they can hold the token)."""
    path = tmp_path / "j.db"
    async with await Journal.open(path):
        pass
    other = sqlite3.connect(path)  # another tool keeps the WAL files alive
    try:
        other.execute("SELECT count(*) FROM runs").fetchall()
        sidecars = [tmp_path / "j.db-wal", tmp_path / "j.db-shm"]
        for sidecar in sidecars:
            sidecar.chmod(0o644)
        async with await Journal.open(path):
            assert [_mode(sidecar) for sidecar in sidecars] == [0o600, 0o600]
    finally:
        other.close()
