"""The journal file on disk: its mode, WAL, tables, version and upgrades.

The file holds the cached access token, so it is created 0600 before SQLite
ever sees it (SQLite would honour the umask), and its -wal/-shm companions
are checked too. None of them is ever opened or changed through a symbolic
link, and each must be the user's own regular file (`private_file`): a
refusal is a ConfigError naming the path.

The version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades a file
from version `i` to `i + 1`, so a newer engine can open an older journal and a
later change to the schema is one more list entry, never an edit of an old
one. `PRAGMA application_id` marks the file as ours, so the engine refuses to
write its tables into some other SQLite database (for instance the feed table
of a `sqlite` source) that a config points at by mistake.

`prepare_file` runs on a plain `sqlite3` connection, in a worker thread:
opening is rare, and one synchronous function keeps the upgrade a single
transaction.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from syncengine.errors import FatalError
from syncengine.journal.private_file import PRIVATE_MODE, check_existing, open_private

log = structlog.get_logger(__name__)

#: Pause between tries of the WAL switch on a file another process is creating.
_WAL_RETRY_PAUSE_S = 0.01

#: The journal holds the cached access token: owner read/write only.
FILE_MODE = PRIVATE_MODE

#: SQLite's companions of a WAL-mode database file.
_SIDECAR_SUFFIXES = ("-wal", "-shm")

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
    # Partial indexes stay as small as the work they serve: the retry queue in
    # rowid order (its entries are (state, rowid), so `due` pages by rowid
    # without a sort), failures by code; synced rows (the bulk) are in neither.
    "CREATE INDEX records_pending ON records (state) WHERE state = 'pending'",
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

#: Version 2: the replay window. After a crash the feed is read again from the
#: checkpoint (the low watermark); changes between it and the highest position
#: already settled (the high water) were often journaled already. Rows now
#: carry the feed they came from, so a re-read change can be recognised as
#: settled and skipped instead of being sent to the CRM twice.
_V2 = (
    "ALTER TABLE records ADD COLUMN source TEXT",
    """
    CREATE TABLE high_water (
        source_id    TEXT PRIMARY KEY,
        resume_after NOT NULL,
        display      NOT NULL,
        updated_at   REAL NOT NULL
    )
    """,
)

#: Version 3: feed generations. A file feed's checkpoint and high water name
#: the file they were taken in (a fingerprint, `sources.generation`), so a
#: file replaced at the same path (rotated, truncated and rewritten, exported
#: again) is read from its start and the old file's replay window never
#: applies to it. NULL in rows written before: such a checkpoint is checked
#: the old way (its line count at its offset).
_V3 = (
    "ALTER TABLE checkpoints ADD COLUMN generation TEXT",
    "ALTER TABLE high_water ADD COLUMN generation TEXT",
)

#: Version 4: the timeline of each run, for `syncengine report`. One row per
#: few seconds of a pass (`span_s` long, `t` its end): counts are what
#: happened within the span, gauges are readings at its end (in-flight is a
#: mean over the span). Old rows are thinned into longer spans and dropped at
#: last (`syncengine.journal.timeline`), so a daemon running for months keeps a
#: bounded table.
_V4 = (
    """
    CREATE TABLE timeline (
        run_id        INTEGER NOT NULL,
        t             REAL NOT NULL,
        span_s        REAL NOT NULL,
        read          INTEGER NOT NULL,
        synced        INTEGER NOT NULL,
        failed        INTEGER NOT NULL,
        retried       INTEGER NOT NULL,
        requests      INTEGER NOT NULL,
        throttled     INTEGER NOT NULL,
        in_flight     REAL NOT NULL,
        limit_        INTEGER NOT NULL,
        queue_depth   INTEGER NOT NULL,
        sync_lag_s    REAL NOT NULL,
        credits       INTEGER
    )
    """,
    "CREATE INDEX timeline_by_time ON timeline (t)",
    "CREATE INDEX timeline_by_run ON timeline (run_id, t)",
)

_V5 = (
    # `[crm] skip_unchanged`: digests of the field values the CRM last accepted
    # for the record (`engine.unchanged`). Every write of the row that does not
    # carry them clears them, so they are never older than the row.
    "ALTER TABLE records ADD COLUMN accepted TEXT",
)

#: Version 6: the field-metadata cache, for validating records before they are
#: sent (`journal.field_cache`). One row per module: the `fields` list the CRM
#: served (JSON) and when it was read, so runs within its expiry spend no
#: credit on it.
_V6_FIELD_METADATA = (
    """
    CREATE TABLE field_metadata (
        module     TEXT PRIMARY KEY,
        fields     BLOB NOT NULL,
        fetched_at REAL NOT NULL
    )
    """,
)

#: Version 7: bulk-write jobs of `migrate` (`syncengine.bulk.jobs_journal`). A job and
#: its rows (each row's change as a retry payload) are journaled before the
#: file is uploaded, then its file id and job id as the CRM answers them, so a
#: pass killed at any step resumes the job it knows instead of uploading its
#: rows again. A job's rows are deleted once their outcomes are records rows.
_V7_BULK_JOBS = (
    """
    CREATE TABLE bulk_jobs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        source           TEXT NOT NULL,
        module           TEXT NOT NULL,
        operation        TEXT NOT NULL,
        find_by          TEXT,
        state            TEXT NOT NULL
                         CHECK (state IN ('planned', 'uploaded', 'created', 'done', 'abandoned')),
        file_id          TEXT,
        job_id           TEXT,
        rows             INTEGER NOT NULL,
        last_resume_after,
        last_display,
        last_generation  TEXT,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL
    )
    """,
    "CREATE INDEX bulk_jobs_open ON bulk_jobs (state) WHERE state NOT IN ('done', 'abandoned')",
    """
    CREATE TABLE bulk_rows (
        job      INTEGER NOT NULL,
        row      INTEGER NOT NULL,
        key      TEXT NOT NULL,
        position,
        source   TEXT,
        payload  BLOB NOT NULL,
        PRIMARY KEY (job, row)
    ) WITHOUT ROWID
    """,
)

#: `MIGRATIONS[i]` holds the statements that take a file from version i to i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _V5,
    _V6_FIELD_METADATA,
    _V7_BULK_JOBS,
)

#: The version this engine writes; files above it are refused.
SCHEMA_VERSION = len(MIGRATIONS)


def prepare_file(path: Path, *, busy_timeout_s: float) -> int:
    """Create `path` 0600 if needed, switch it to WAL, migrate it; return the version found.

    Raises OSError (cannot create), ConfigError (the file or a companion is
    a link or not the user's own regular file), sqlite3.Error (not a
    database, busy past `busy_timeout_s`) and the FatalError of `migrate`.
    """
    create_private_file(path)
    for sidecar in sidecar_paths(path):
        check_existing(sidecar)  # SQLite would follow a planted link
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
    try:
        _switch_to_wal(conn, busy_timeout_s)
        found = migrate(conn, path)
    finally:
        conn.close()
    if found == 0:
        log.debug("journal.created", path=str(path), version=SCHEMA_VERSION)
    elif found < SCHEMA_VERSION:
        log.info("journal.migrated", path=str(path), from_version=found, to_version=SCHEMA_VERSION)
    return found


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Set WAL mode (persistent: later opens find it set), retrying a busy file.

    Two connections switching a fresh rollback-journal file at once can both
    hold a shared lock and want the exclusive one; SQLite then answers
    "database is locked" at once instead of calling the busy handler, so the
    `timeout` of `connect` does not cover it. Retry until `busy_timeout_s`.
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_PAUSE_S)
        else:
            return


def create_private_file(path: Path) -> None:
    """Create `path` with mode 0600 whatever the umask, or tighten an existing file.

    SQLite would create it 0644 under a usual umask; `os.open(..., 0o600)`
    first closes that window (a umask can only remove bits). Raises OSError,
    or ConfigError for a link or a file that is not the user's own.
    """
    fd = open_private(path)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            os.fchmod(fd, FILE_MODE)
            log.warning("journal.mode_tightened", path=str(path), was=oct(mode))
    finally:
        os.close(fd)


def tighten_sidecars(path: Path) -> None:
    """Make the -wal and -shm files 0600 if they are laxer.

    SQLite gives them the main file's mode, so this only acts on files left
    by another tool; it costs two stats per open. Never through a link:
    raises ConfigError for a companion that is a link or not the user's own.
    """
    for sidecar in sidecar_paths(path):
        try:
            info = os.lstat(sidecar)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077:
            check_existing(sidecar)
            continue
        fd = open_private(sidecar, create=False)
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        log.warning("journal.mode_tightened", path=str(sidecar), was=oct(mode))


def sidecar_paths(path: Path) -> tuple[Path, ...]:
    """The -wal and -shm companions SQLite keeps beside the journal at `path`."""
    return tuple(path.with_name(path.name + suffix) for suffix in _SIDECAR_SUFFIXES)


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    *,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
) -> int:
    """Bring the file at `path` up to `len(migrations)`; return the version found.

    An upgrade runs in one `BEGIN IMMEDIATE` transaction (DDL and
    `user_version` are transactional in SQLite), so two processes opening a
    fresh file at once cannot both upgrade it, and a crash mid-upgrade leaves
    the old version. A file already current is only read.
    `conn` must be in autocommit mode (`isolation_level=None`).

    Raises:
        FatalError: the file is from a newer engine, or is some other
            application's SQLite database; the message names the file.
    """
    target = len(migrations)
    found = _check_file(conn, path, target)
    if found == target:
        return found  # the usual open: no write lock taken beside a running holder
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _check_file(conn, path, target)  # again: another process may have won
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
    """The file's schema version, after checking that we may upgrade it.

    The version, the application id and the table count are read in one
    statement, so from one snapshot: read one by one, another process's
    first upgrade could commit in between and make a fresh journal look
    like a foreign database (version 0 with tables).
    """
    found, app_id, tables = _read_header(conn)
    if app_id not in (0, APPLICATION_ID):
        raise FatalError(f"journal {path} is not a syncengine journal (application_id {app_id})")
    if found > target:
        raise FatalError(
            f"journal {path} has schema version {found}, newer than this engine's "
            f"{target}: upgrade syncengine or point [journal] path at another file"
        )
    if found == 0 and tables > 0:
        raise FatalError(
            f"journal {path} is an SQLite database of another program; "
            "point [journal] path at a new file"
        )
    return found


def _read_header(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """`user_version`, `application_id` and the table count, from one snapshot."""
    row = conn.execute(
        "SELECT (SELECT user_version FROM pragma_user_version),"
        " (SELECT application_id FROM pragma_application_id),"
        " (SELECT count(*) FROM sqlite_master WHERE type = 'table')"
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])
