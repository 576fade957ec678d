"""The journal's tables in a PostgreSQL schema: connection, version and upgrades.

The same tables as the SQLite file (`schema`, version 7; runs also name
their session, version 2), with PostgreSQL
types: positions and checkpoint positions are `jsonb`, so an int stays an
int and a cursor string a string, as SQLite's untyped columns keep them;
journal keys are `COLLATE "C"`, so they compare byte-wise as in SQLite
(`Journal.id_map` pages on key ranges); `seq` orders rows by first insertion
as SQLite's rowid does (the retry queue's order).

The version is a row of `journal_meta`; `MIGRATIONS[i]` takes a schema from
version `i` to `i + 1`, so a later change is one more entry. An upgrade runs
in one transaction under a transaction-level advisory lock keyed by the
schema, so two processes opening a fresh schema at once cannot both create
it. A schema that holds tables but no `journal_meta` belongs to some other
program and is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from syncengine.errors import FatalError

if TYPE_CHECKING:
    import asyncpg

#: Marks a schema's `journal_meta` as a syncengine journal's.
APPLICATION = "syncengine journal"

#: Version 1: every table of the SQLite journal at its version 7.
_V1 = (
    """
    CREATE TABLE records (
        seq             bigserial NOT NULL,
        key             text COLLATE "C" PRIMARY KEY,
        module          text,
        record_id       text,
        operation       text,
        state           text NOT NULL CHECK (state IN ('pending', 'synced', 'failed')),
        attempts        integer NOT NULL DEFAULT 0,
        code            text,
        message         text,
        details         text,
        next_attempt_at double precision,
        payload         bytea,
        position        jsonb,
        updated_at      double precision NOT NULL,
        source          text,
        accepted        text
    )
    """,
    # As in SQLite: partial indexes as small as the work they serve (the retry
    # queue in first-journaled order, failures by code); synced rows are in neither.
    "CREATE INDEX records_pending ON records (seq) WHERE state = 'pending'",
    "CREATE INDEX records_failed ON records (code) WHERE state = 'failed'",
    """
    CREATE TABLE checkpoints (
        source_id    text PRIMARY KEY,
        resume_after jsonb NOT NULL,
        display      jsonb NOT NULL,
        updated_at   double precision NOT NULL,
        generation   text
    )
    """,
    """
    CREATE TABLE high_water (
        source_id    text PRIMARY KEY,
        resume_after jsonb NOT NULL,
        display      jsonb NOT NULL,
        updated_at   double precision NOT NULL,
        generation   text
    )
    """,
    """
    CREATE TABLE runs (
        id          bigserial PRIMARY KEY,
        command     text NOT NULL,
        started_at  double precision NOT NULL,
        finished_at double precision,
        exit_status integer,
        counts      text
    )
    """,
    """
    CREATE TABLE tokens (
        key          text PRIMARY KEY,
        access_token text,
        api_domain   text,
        expires_at   double precision NOT NULL,
        minted_at    double precision NOT NULL,
        mint_times   text NOT NULL
    )
    """,
    """
    CREATE TABLE timeline (
        run_id        bigint NOT NULL,
        t             double precision NOT NULL,
        span_s        double precision NOT NULL,
        read          bigint NOT NULL,
        synced        bigint NOT NULL,
        failed        bigint NOT NULL,
        retried       bigint NOT NULL,
        requests      bigint NOT NULL,
        throttled     bigint NOT NULL,
        in_flight     double precision NOT NULL,
        limit_        bigint NOT NULL,
        queue_depth   bigint NOT NULL,
        sync_lag_s    double precision NOT NULL,
        credits       bigint
    )
    """,
    "CREATE INDEX timeline_by_time ON timeline (t)",
    "CREATE INDEX timeline_by_run ON timeline (run_id, t)",
    """
    CREATE TABLE field_metadata (
        module     text PRIMARY KEY,
        fields     bytea NOT NULL,
        fetched_at double precision NOT NULL
    )
    """,
    """
    CREATE TABLE bulk_jobs (
        id               bigserial PRIMARY KEY,
        source           text NOT NULL,
        module           text NOT NULL,
        operation        text NOT NULL,
        find_by          text,
        state            text NOT NULL
                         CHECK (state IN ('planned', 'uploaded', 'created', 'done', 'abandoned')),
        file_id          text,
        job_id           text,
        rows             integer NOT NULL,
        last_resume_after jsonb,
        last_display     jsonb,
        last_generation  text,
        created_at       double precision NOT NULL,
        updated_at       double precision NOT NULL
    )
    """,
    "CREATE INDEX bulk_jobs_open ON bulk_jobs (state) WHERE state NOT IN ('done', 'abandoned')",
    """
    CREATE TABLE bulk_rows (
        job      bigint NOT NULL,
        row      integer NOT NULL,
        key      text COLLATE "C" NOT NULL,
        position jsonb,
        source   text,
        payload  bytea NOT NULL,
        PRIMARY KEY (job, row)
    )
    """,
    # Who holds the journal (`pg_lock`): one line, so a refused process can name it.
    """
    CREATE TABLE holder (
        id          integer PRIMARY KEY CHECK (id = 1),
        description text NOT NULL
    )
    """,
)

#: Version 2: each run names the session that recorded it (its backend pid and
#: start time), so a run is taken as killed only once that session is gone
#: (`Journal.killed_runs_since`): beside workers or a standby, other live
#: processes' open runs are not killed ones. The columns are filled by their
#: defaults, so the INSERT is the same SQL as on SQLite; rows from before
#: stay NULL and count as killed when unfinished, as they did. The defaults
#: are set after the columns are added: a default given in ADD COLUMN would
#: fill the old rows with the upgrading session's identity.
_V2 = (
    """
    CREATE FUNCTION backend_start_us() RETURNS bigint LANGUAGE sql STABLE AS $$
        SELECT (extract(epoch FROM backend_start) * 1000000)::bigint
        FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()
    $$
    """,
    "ALTER TABLE runs ADD COLUMN backend_pid integer, ADD COLUMN backend_start_us bigint",
    "ALTER TABLE runs ALTER COLUMN backend_pid SET DEFAULT pg_backend_pid(),"
    " ALTER COLUMN backend_start_us SET DEFAULT backend_start_us()",
)

#: `MIGRATIONS[i]` holds the statements that take a schema from version i to i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)

#: The version this engine writes; schemas above it are refused.
SCHEMA_VERSION = len(MIGRATIONS)

_META = """
CREATE TABLE IF NOT EXISTS journal_meta (
    name  text PRIMARY KEY,
    value text NOT NULL
)
"""


def quoted(identifier: str) -> str:
    """`identifier` as a quoted SQL name (the config allows letters, digits and `_` only)."""
    return '"' + identifier.replace('"', '""') + '"'


def lock_key(schema: str, purpose: str) -> int:
    """A stable signed 64-bit advisory-lock key for `purpose` on the journal in `schema`."""
    digest = hashlib.sha256(f"syncengine.journal/{purpose}/{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def init_connection(connection: asyncpg.Connection) -> None:
    """jsonb as Python values (ints stay ints, strings strings) through orjson."""
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
        format="text",
    )


async def migrate(
    connection: asyncpg.Connection,
    schema: str,
    where: str,
    *,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
) -> int:
    """Create or upgrade the journal in `schema` to `len(migrations)`; return the version found.

    A schema already current is only read. Raises FatalError (naming `where`)
    for a schema of a newer engine or of another program.
    """
    target = len(migrations)
    found = await _version(connection, schema, where, target)
    if found == target:
        return found
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, "migrate"))
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")
        found = await _version(connection, schema, where, target)
        await connection.execute(_META)
        for statements in migrations[found:]:
            for statement in statements:
                await connection.execute(statement)
        if found < target:
            await connection.executemany(
                "INSERT INTO journal_meta (name, value) VALUES ($1, $2)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [("application", APPLICATION), ("version", str(target))],
            )
    return found


async def _version(connection: asyncpg.Connection, schema: str, where: str, target: int) -> int:
    """The schema's journal version (0 when absent), after checking that we may upgrade it."""
    row: Any = await connection.fetchrow(
        "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = $1),"
        " to_regclass($2) IS NOT NULL",
        schema,
        f"{quoted(schema)}.journal_meta",
    )
    tables, has_meta = int(row[0]), bool(row[1])
    if not has_meta:
        if tables > 0:
            raise FatalError(
                f"journal {where}: the schema holds tables of another program; "
                "name a new schema in [journal] schema"
            )
        return 0
    meta = dict(await connection.fetch(f"SELECT name, value FROM {quoted(schema)}.journal_meta"))
    if meta.get("application") != APPLICATION:
        raise FatalError(f"journal {where} is not a syncengine journal")
    found = int(meta.get("version", "0"))
    if found > target:
        raise FatalError(
            f"journal {where} has schema version {found}, newer than this engine's "
            f"{target}: upgrade syncengine or name another [journal] schema"
        )
    return found
