"""The journal's tables, its schema version, and the upgrades between versions.

The version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades a file
from version `i` to `i + 1`, so a newer engine can open an older journal and a
later change to the schema is one more list entry, never an edit of an old
one. `PRAGMA application_id` marks the file as ours, so the engine refuses to
write its tables into some other SQLite database (for instance the feed table
of a `sqlite` source) that a config points at by mistake.

`migrate` runs on a plain `sqlite3` connection (aiosqlite runs it on its
thread): opening is rare, and one synchronous function keeps the upgrade a
single transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from syncengine.errors import FatalError

#: "SYNC" in ASCII: identifies a syncengine journal among SQLite files.
APPLICATION_ID = 0x53594E43

#: Version 1, the first released schema.
_V1 = (
    # One row per journal key (the change key, or "@" + display position for a
    # record with no identity). `position` and the checkpoint columns have no
    # declared type on purpose: SQLite then keeps an int as INTEGER and a
    # cursor string as TEXT, so positions round-trip with their type and sort
    # numerically (a JSON text column would sort "10" before "9").
    """
    CREATE TABLE records (
        key             TEXT PRIMARY KEY,
        module          TEXT,
        record_id       TEXT,
        operation       TEXT,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'synced', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        code            TEXT,
        message         TEXT,
        details         TEXT,
        next_attempt_at REAL,
        payload         BLOB,
        position,
        updated_at      REAL NOT NULL
    )
    """,
    # Partial indexes stay as small as the work they serve: due retries by
    # time, failures by code; synced rows (the bulk) are in neither.
    "CREATE INDEX records_due ON records (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX records_failed ON records (code) WHERE state = 'failed'",
    """
    CREATE TABLE checkpoints (
        source_id    TEXT PRIMARY KEY,
        resume_after NOT NULL,
        display      NOT NULL,
        updated_at   REAL NOT NULL
    )
    """,
    """
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        command     TEXT NOT NULL,
        started_at  REAL NOT NULL,
        finished_at REAL,
        exit_status INTEGER,
        counts      TEXT
    )
    """,
    """
    CREATE TABLE tokens (
        key          TEXT PRIMARY KEY,
        access_token TEXT,
        api_domain   TEXT,
        expires_at   REAL NOT NULL,
        minted_at    REAL NOT NULL,
        mint_times   TEXT NOT NULL
    )
    """,
)

#: `MIGRATIONS[i]` holds the statements that take a file from version i to i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)

#: The version this engine writes; files above it are refused.
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    *,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
) -> int:
    """Bring the file at `path` up to `len(migrations)`; return the version found.

    Runs in one `BEGIN IMMEDIATE` transaction (DDL and `user_version` are
    transactional in SQLite), so two processes opening a fresh file at once
    cannot both upgrade it, and a crash mid-upgrade leaves the old version.
    `conn` must be in autocommit mode (`isolation_level=None`).

    Raises:
        FatalError: the file is from a newer engine, or is some other
            application's SQLite database; the message names the file.
    """
    target = len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _check_file(conn, path, target)
        for statements in migrations[found:]:
            for statement in statements:
                conn.execute(statement)
        if found < target:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {target}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found


def _check_file(conn: sqlite3.Connection, path: Path, target: int) -> int:
    """The file's schema version, after checking that we may upgrade it."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id not in (0, APPLICATION_ID):
        raise FatalError(f"journal {path} is not a syncengine journal (application_id {app_id})")
    if found > target:
        raise FatalError(
            f"journal {path} has schema version {found}, newer than this engine's "
            f"{target}: upgrade syncengine or point [journal] path at another file"
        )
    if found == 0 and _has_tables(conn):
        raise FatalError(
            f"journal {path} is an SQLite database of another program; "
            "point [journal] path at a new file"
        )
    return found


def _has_tables(conn: sqlite3.Connection) -> bool:
    """True when the file already holds tables (so it is not a fresh journal)."""
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    return int(row[0]) > 0
