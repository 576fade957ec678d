"""The checkpoint journal: what became of every change, and where each feed resumes.

A pass writes it only through group commits (`submit`): a batch of
per-record updates and the checkpoints they allow, in one transaction, so a
checkpoint is never durable without the outcomes (or retry payloads) of the
changes it moves past (design.md invariant 1). The group commits are made by
a process of their own (`group_commit`, `commit_worker`), each with a
deadline, so a stalled disk ends the pass instead of hanging it.

Everything else goes through one session connection (`database`): a `run`
reads its retry queue through `due`; `status`, `failures` and `retry` open
the same journal without the process lock and read (or requeue) beside a live
run; runs and the token cache are small writes. Its writes take an asyncio
lock so that transactions of concurrent callers never interleave, and `due`
takes it for each page, so it never reads inside one of them.

The journal is an SQLite file (`[journal] path`, the default) or a
PostgreSQL schema (`[journal] url`): the same SQL runs on either through
`database.Database`; what differs is how it is opened (`_open_sqlite`,
`_open_postgres`) and held (`lock` or `pg_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiosqlite
import orjson
import structlog

from syncengine.config import JournalConfig
from syncengine.errors import FatalError
from syncengine.journal.database import Database, PostgresDatabase, SqliteDatabase
from syncengine.journal.group_commit import (
    DEFAULT_COMMIT_TIMEOUT_S,
    CommitProcess,
    commit_message,
)
from syncengine.journal.lock import ProcessLock, describe_holder
from syncengine.journal.records import (
    FailureRow,
    RecordUpdate,
    RequeueResult,
    RunRow,
    SyncedRow,
    decode_payload,
    owed_report,
)
from syncengine.journal.schema import prepare_file, tighten_sidecars
from syncengine.journal.timeline import COLUMNS as TIMELINE_COLUMNS
from syncengine.journal.timeline import TimelineRow, thin_statements
from syncengine.keys import split_source_record_key
from syncengine.model import Change, Checkpoint, RecordState

if TYPE_CHECKING:
    from syncengine.bulk.jobs_journal import JobsJournal

log = structlog.get_logger(__name__)

#: How long an open waits for another connection's write transaction. The
#: holder's group commits last milliseconds; this only has to outlast them.
_BUSY_TIMEOUT_S = 10.0

#: Most ids in one `IN (...)` list, well under SQLite's variable limit.
_IDS_PER_STATEMENT = 500

_NO_CHECKPOINTS: Mapping[str, Checkpoint] = MappingProxyType({})

#: A row the id map lists: it has a CRM id and its latest change is not a delete
#: the CRM took (a record whose delete failed still exists).
_MAPPED = "record_id IS NOT NULL AND NOT (state = 'synced' AND operation = 'delete')"

# Keyset paging on rowid walks the partial index `records_pending` in order:
# each page costs its own size, and since an upsert keeps a row's rowid, a row
# that a group commit changes or reschedules between pages is never met twice, while
# the rows not yet reached neither shift nor hide.
_DUE_PAGE = """
SELECT {order}, payload, attempts, key FROM records
WHERE state = 'pending' AND next_attempt_at <= ? AND {order} > ?
ORDER BY {order} LIMIT ?
"""


class Journal:
    """One open journal: records, checkpoints, runs and the token cache.

    Open with `Journal.open`; close with `close` or `async with`.
    """

    def __init__(
        self,
        db: Database,
        where: str,
        lock: ProcessLock | None,
        committer: CommitProcess | None = None,
        *,
        path: Path | None = None,
        postgres: tuple[str, str] | None = None,
        holds_pg_lock: bool = False,
        holds: Sequence[Sequence[object]] = (),
    ) -> None:
        #: The SQLite file; None for a PostgreSQL journal.
        self.path = path
        #: The journal as messages name it: its file, or its masked DSN and schema.
        self.where = where
        self._database = db
        #: The driver's own connection (aiosqlite or asyncpg), for tests that look inside.
        self._db: Any = db.db if isinstance(db, SqliteDatabase) else getattr(db, "connection", None)
        self._lock = lock
        self._committer = committer
        self._write_lock = asyncio.Lock()
        self._postgres = postgres
        self._holds_pg_lock = holds_pg_lock
        self._order = db.dialect.row_order
        #: What every group commit checks it still holds (`pg_fence`); none on SQLite.
        self._holds = tuple(holds)

    @property
    def postgres(self) -> tuple[str, str] | None:
        """(DSN, schema) of a PostgreSQL journal; None for an SQLite file."""
        return self._postgres

    @classmethod
    async def open(
        cls,
        target: Path | JournalConfig,
        *,
        holder: str | None = None,
        commit_process: bool = False,
        commit_timeout_s: float = DEFAULT_COMMIT_TIMEOUT_S,
        wait: bool = False,
    ) -> Journal:
        """Open (creating and upgrading as needed) the journal `target` names.

        `target` is an SQLite file, or a `[journal]` table: its `url` (a
        PostgreSQL schema) when set, else its `path`.

        With `holder` (such as "syncengine run -c cron.toml"), first take the
        process lock, as `run`, `migrate` and `daemon` must. Without it, open
        beside any holder, for reading and small writes. With
        `commit_process`, the journal takes group commits (`submit`), made by
        a process of their own (see `commit_worker`), each of which must be
        answered within `commit_timeout_s`. With `wait` (PostgreSQL only),
        a `holder` waits for the journal's lock instead of being refused.

        Raises:
            JournalLockedError: `holder` was given and another process holds
                the journal; the message names it.
            FatalError: the file (or database) cannot be created or opened,
                is not a journal, or is from a newer version; the message
                names it (a DSN with its password masked).
        """
        if isinstance(target, JournalConfig):
            if target.url is not None:
                return await _open_postgres(
                    cls,
                    target.url,
                    target.schema,
                    holder=holder,
                    commit_process=commit_process,
                    commit_timeout_s=commit_timeout_s,
                    wait=wait,
                )
            target = target.path
        path = target
        lock = None
        try:
            if holder is not None:
                lock = ProcessLock(path)
                lock.acquire(describe_holder(holder, now=time.time()))
            db = await _connect(path)
        except OSError as exc:
            _release(lock)
            raise FatalError(f"cannot open journal {path}: {exc.strerror or exc}") from exc
        except BaseException:
            _release(lock)
            raise
        committer = None
        if commit_process:
            try:
                committer = await CommitProcess.start(path, timeout_s=commit_timeout_s)
            except BaseException:
                await db.close()
                _release(lock)
                raise
        log.debug("journal.opened", path=str(path), locked=lock is not None)
        return cls(SqliteDatabase(db), str(path), lock, committer, path=path)

    def _session_lost(self) -> None:
        """A PostgreSQL holder's session ended, and its lock with it: commit nothing more.

        Another process may hold the journal by now, so the commit process is
        stopped at once and every commit still waiting (and any later one)
        fails: the pass ends (exit 3), its journal consistent.
        """
        if not self._holds_pg_lock:
            return  # closed on purpose
        self._holds_pg_lock = False
        reason = f"journal {self.where}: the database session ended, and the hold on the journal"
        log.error("journal.session_lost", journal=self.where)
        if self._committer is not None:
            self._committer.abandon(reason)

    async def close(self) -> None:
        """End the commit process, close the connection, release the lock; safe to call twice."""
        try:
            if self._committer is not None:
                await self._committer.close()
                self._committer = None
        finally:
            try:
                if self._holds_pg_lock and self._postgres is not None:
                    self._holds_pg_lock = False
                    with contextlib.suppress(Exception):
                        await _pg_release(self._database, self._postgres[1])
                await self._database.close()
            finally:
                _release(self._lock)
                self._lock = None

    def fenced(self, holds: Sequence[Sequence[object]]) -> Journal:
        """This journal, whose group commits also check `holds` (encoded `pg_fence.Hold`s).

        The same connection and commit process: for one worker's partition,
        whose commits must not land once its lease is gone. Close the
        original, not this view.
        """
        view = copy.copy(self)
        view._holds = (*self._holds, *holds)
        return view

    def jobs(self) -> JobsJournal:
        """The bulk-write jobs' tables of this journal, on a connection of their own."""
        from syncengine.bulk.jobs_journal import JobsJournal

        if self._postgres is not None:
            return JobsJournal.postgres(*self._postgres)
        assert self.path is not None
        return JobsJournal(self.path)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def submit(
        self,
        updates: Sequence[RecordUpdate | SyncedRow],
        checkpoints: Mapping[str, Checkpoint] = _NO_CHECKPOINTS,
        high_water: Mapping[str, Checkpoint] = _NO_CHECKPOINTS,
    ) -> asyncio.Future[None]:
        """Sends one group commit now; the future completes once it is durable.

        Record updates and checkpoints are written in one transaction: either
        all of it is durable or none of it, and a later update to the same
        key wins. `high_water` records, per feed, the furthest position
        settled so far (see `settled_positions`). `updates` may mix
        `RecordUpdate`s and lean `SyncedRow` tuples (the bulk of a
        migration); they are written in their order.

        Group commits are made in the order sent and after one fails none
        later is, so a caller may send the next before the last is answered.
        The future fails with FatalError, naming the journal, when the commit
        was refused, an earlier one failed, the commit process is gone, or it
        did not answer within its deadline. It does not depend on anyone
        awaiting it; shield it where the awaiting task may be cancelled.
        Only a journal opened with `commit_process` takes group commits.
        """
        if self._committer is None:
            raise RuntimeError(f"journal {self.where} was opened without a commit process")
        message = commit_message(updates, checkpoints, high_water, time.time(), self._holds)
        return self._committer.send(message)

    def commit_stall(self) -> str | None:
        """Why group commits are not being made (late or stopped), or None while they are.

        For liveness checks: None too when this journal takes no group commits.
        """
        return None if self._committer is None else self._committer.stall()

    async def high_water(self, source_id: str) -> Checkpoint | None:
        """The furthest position of `source_id` whose outcome is journaled, or None."""
        row = await self._fetch_one(
            "SELECT resume_after, display, generation FROM high_water WHERE source_id = ?",
            (source_id,),
        )
        return None if row is None else Checkpoint(*row)

    async def settled_positions(self, source_id: str, keys: Sequence[str]) -> dict[str, int | str]:
        """For each of `keys` journaled from `source_id`, the position of its latest change.

        A change re-read after a crash whose key shows a position at or past
        its own was settled before the crash (it, or a later change to the
        same record that absorbed it, has a durable outcome), so it need not
        be sent again.
        """
        found: dict[str, int | str] = {}
        if not keys:
            return found
        for group in _id_groups(keys):
            marks = ",".join("?" * len(group))
            rows = await self._database.fetch(
                f"SELECT key, position FROM records WHERE source = ? AND key IN ({marks})"
                " AND position IS NOT NULL",
                (source_id, *group),
            )
            found.update({key: position for key, position in rows})
        return found

    async def checkpoint(self, source_id: str) -> Checkpoint | None:
        """Where the feed `source_id` resumes, or None before its first checkpoint."""
        row = await self._fetch_one(
            "SELECT resume_after, display, generation FROM checkpoints WHERE source_id = ?",
            (source_id,),
        )
        return None if row is None else Checkpoint(*row)

    async def checkpoints(self) -> dict[str, Checkpoint]:
        """Every source's checkpoint, by source id (for `status`)."""
        rows = await self._database.fetch(
            "SELECT source_id, resume_after, display, generation FROM checkpoints"
            f" ORDER BY source_id{self._database.dialect.bytewise}"
        )
        return {sid: Checkpoint(after, shown, generation) for sid, after, shown, generation in rows}

    async def due(self, now: float, *, page: int = 1000) -> AsyncIterator[Change]:
        """Pending records due at `now` (epoch seconds; `math.inf` for all), oldest first.

        Oldest is first journaled (rowid order). Each change is decoded from
        its payload with its stored `attempts` and its journal key as `key`.
        Reads `page` rows per query; group commits may land between pages: a row it
        updates is not yielded twice in one iteration, and a row it adds is
        yielded at the end if due.
        """
        after = 0
        while True:
            async with self._write_lock:  # never inside this connection's own write
                rows = await self._database.fetch(
                    _DUE_PAGE.format(order=self._order), (now, after, page)
                )
            for _rowid, payload, attempts, key in rows:
                if payload is None:
                    log.warning("journal.pending_without_payload", key=key)
                    continue
                yield decode_payload(payload, attempts=attempts)
            if len(rows) < page:
                return
            after = rows[-1][0]

    async def counts(self) -> dict[str, int]:
        """Records by state: always the keys synced, pending and failed."""
        result = {state.value: 0 for state in RecordState}
        rows = await self._database.fetch("SELECT state, count(*) FROM records GROUP BY state")
        for state, count in rows:
            result[state] = count
        return result

    async def failures(
        self, *, code: str | None = None, limit: int | None = None
    ) -> list[FailureRow]:
        """Failed records with their last error, in feed order (then by time)."""
        where, params = _failed_filter(code, ())
        rows = await self._database.fetch(
            "SELECT module, record_id, position, code, message, attempts, details, payload, key "
            f"FROM records WHERE {where}"
            f" ORDER BY {self._database.dialect.position_order}, updated_at, key LIMIT ?",
            (*params, self._database.dialect.no_limit if limit is None else limit),
        )
        failures = []
        for module, rid, pos, code_, message, attempts, details, payload, key in rows:
            blamed, owed = owed_report(payload)
            position = pos if blamed is None else blamed
            positions = tuple(owed) if owed else (() if pos is None else (pos,))
            split = split_source_record_key(key)
            failures.append(
                FailureRow(
                    module,
                    rid,
                    position,
                    code_,
                    message,
                    attempts,
                    _load_json(details),
                    positions,
                    None if split is None else split[1],
                )
            )
        return failures

    async def failure_groups(self) -> list[tuple[str, str | None, int]]:
        """Failed records counted by (code, field the CRM named), most frequent first."""
        code, field = "coalesce(code, '?')", self._database.dialect.details_api_name
        bytewise = self._database.dialect.bytewise
        rows = await self._database.fetch(
            f"SELECT {code}, {field}, count(*) FROM records WHERE state = 'failed' GROUP BY 1, 2"
            f" ORDER BY 3 DESC, {code}{bytewise}, {field}{bytewise}"
        )
        return [(code, None if field is None else str(field), count) for code, field, count in rows]

    async def failed_keys(self) -> set[str]:
        """The keys of every failed record: their owed state is read back when they change."""
        rows = await self._database.fetch(
            "SELECT key FROM records WHERE state = 'failed' AND payload IS NOT NULL"
        )
        return {key for (key,) in rows}

    async def mapped_ids(self, keys: Sequence[str]) -> dict[str, str]:
        """The CRM id each of `keys` (source record keys) maps to; unmapped keys are left out."""
        return await self._column_by_key("record_id", keys, _MAPPED)

    async def accepted_values(self, keys: Sequence[str]) -> dict[str, str]:
        """For each of `keys` that is synced with digests, the digests (`engine.unchanged`)."""
        return await self._column_by_key(
            "accepted", keys, "state = 'synced' AND accepted IS NOT NULL"
        )

    async def synced_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` whose record the journal holds as synced (the CRM has it)."""
        return set(await self._column_by_key("key", keys, "state = 'synced'"))

    async def _column_by_key(
        self, column: str, keys: Sequence[str], condition: str
    ) -> dict[str, Any]:
        """`column` of each row of `keys` that meets `condition` (SQL of this module only)."""
        found: dict[str, Any] = {}
        if not keys:
            return found
        for group in _id_groups(keys):
            marks = ",".join("?" * len(group))
            rows = await self._database.fetch(
                f"SELECT key, {column} FROM records WHERE key IN ({marks}) AND {condition}",
                tuple(group),
            )
            found.update({key: value for key, value in rows})
        return found

    async def id_map(
        self, module: str | None = None, *, page: int = 5000
    ) -> AsyncIterator[tuple[str, str, str]]:
        """(module, source key, CRM id) of every mapped record, by module and key.

        Read in pages (keyset on the primary key), so a map of millions of
        records streams in bounded memory.
        """
        low, high = (f"{module}/", f"{module}0") if module is not None else ("", "\uffff")
        after = low
        while True:
            rows = list(
                await self._database.fetch(
                    f"SELECT key, record_id FROM records WHERE key > ? AND key < ? AND {_MAPPED}"
                    " ORDER BY key LIMIT ?",
                    (after, high, page),
                )
            )
            for key, record_id in rows:
                split = split_source_record_key(key)
                if split is not None and (module is None or split[0] == module):
                    yield split[0], split[1], record_id
            if len(rows) < page:
                return
            after = rows[-1][0]

    async def owed_changes(self, keys: Sequence[str]) -> dict[str, Change]:
        """For each of `keys` still failed or pending, the change it owes the CRM.

        A later change to such a record absorbs it (interface.md, "What
        `synced` and `failed` mean"). Keys with nothing owed are left out.
        """
        found: dict[str, Change] = {}
        for group in _id_groups(keys):
            marks = ",".join("?" * len(group))
            rows = await self._database.fetch(
                f"SELECT key, payload, attempts FROM records WHERE key IN ({marks})"
                " AND state IN ('failed', 'pending') AND payload IS NOT NULL",
                tuple(group),
            )
            for key, payload, attempts in rows:
                found[key] = decode_payload(payload, attempts=attempts)
        return found

    async def requeue_failed(
        self, *, code: str | None = None, ids: Sequence[str] = (), now: float
    ) -> RequeueResult:
        """Put failed records back in line for the next pass (`syncengine retry`).

        Selects failures by `code` and by CRM record id (`ids`), both when
        given, all failures when neither is. A selected record with a payload
        becomes pending, due at `now`, with attempts back at 0; one without
        (a line that could not be parsed) stays failed and is counted apart.
        """
        requeued = stuck = 0
        async with self._transaction():
            for id_group in _id_groups(ids):
                where, params = _failed_filter(code, id_group)
                requeued += await self._database.execute(
                    "UPDATE records SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                    f"updated_at = ? WHERE {where} AND payload IS NOT NULL",
                    (now, now, *params),
                )
                row = await self._fetch_one(
                    f"SELECT count(*) FROM records WHERE {where} AND payload IS NULL", params
                )
                stuck += 0 if row is None else int(row[0])
        log.info("journal.requeued", requeued=requeued, not_redrivable=stuck)
        return RequeueResult(requeued=requeued, not_redrivable=stuck)

    async def start_run(self, command: str, *, now: float) -> int:
        """Record the start of a run; returns its id for `finish_run`."""
        async with self._write_lock:
            return await self._database.insert(
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, now)
            )

    async def finish_run(
        self, run_id: int, *, now: float, exit_status: int, counts: Mapping[str, object]
    ) -> None:
        """Record the end of run `run_id`, its exit status and its final counts."""
        await self._write(
            "UPDATE runs SET finished_at = ?, exit_status = ?, counts = ? WHERE id = ?",
            (now, exit_status, orjson.dumps(dict(counts)).decode(), run_id),
        )

    async def killed_runs_since(self) -> float | None:
        """When the earliest of the unfinished runs since the last finished one began.

        A run with no end was killed: requests it had sent may have been
        applied with their answers lost (None when the last run ended). On
        PostgreSQL a run with no end counts only once the session that
        recorded it is gone: workers, or a daemon beside its standby, have
        runs open at once, and a live process's answers are not lost.
        """
        alive = (
            " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
            " WHERE a.pid = runs.backend_pid"
            " AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = runs.backend_start_us)"
            if self._database.dialect.postgres
            else ""
        )
        row = await self._fetch_one(
            "SELECT min(started_at) FROM runs WHERE finished_at IS NULL AND id > "
            "(SELECT coalesce(max(id), 0) FROM runs WHERE finished_at IS NOT NULL)" + alive
        )
        return None if row is None or row[0] is None else float(row[0])

    async def last_run(self) -> RunRow | None:
        """The most recently started run, finished or not; None before the first."""
        row = await self._fetch_one(
            "SELECT id, command, started_at, finished_at, exit_status, counts "
            "FROM runs ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            return None
        run_id, command, started_at, finished_at, exit_status, counts = row
        return RunRow(run_id, command, started_at, finished_at, exit_status, _load_json(counts))

    async def runs(self, *, since: float | None = None, run_id: int | None = None) -> list[RunRow]:
        """Runs in start order: all, those started at or after `since`, or the one `run_id`."""
        sql = "SELECT id, command, started_at, finished_at, exit_status, counts FROM runs"
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql, params = sql + " WHERE id = ?", (run_id,)
        elif since is not None:
            sql, params = sql + " WHERE started_at >= ?", (since,)
        rows = await self._database.fetch(sql + " ORDER BY id", params)
        return [
            RunRow(rid, command, started, finished, status, _load_json(counts))
            for rid, command, started, finished, status, counts in rows
        ]

    async def add_timeline(self, run_id: int, row: TimelineRow) -> None:
        """Append one span to run `run_id`'s timeline."""
        await self._write(_TIMELINE_INSERT, (run_id, *row.as_tuple()))

    async def timeline(self, run_id: int) -> list[TimelineRow]:
        """Run `run_id`'s timeline in time order."""
        rows = await self._database.fetch(
            f"SELECT {', '.join(TIMELINE_COLUMNS)} FROM timeline WHERE run_id = ? ORDER BY t",
            (run_id,),
        )
        return [TimelineRow(*row) for row in rows]

    async def thin_timeline(self, *, now: float) -> None:
        """Merge old timeline rows into longer spans and drop expired ones, in one transaction."""
        async with self._transaction():
            for sql, params in thin_statements(now, postgres=self._database.dialect.postgres):
                await self._database.execute(sql, params)

    # -- for the token cache of this package ---------------------------------

    async def _fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        """The first row of a query, or None."""
        return await self._database.fetch_one(sql, params)

    async def _write(self, sql: str, params: Sequence[Any]) -> None:
        """One statement in its own (autocommit) transaction."""
        async with self._write_lock:
            await self._database.execute(sql, params)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One transaction of this connection's, rolled back on any error or cancellation."""
        async with self._write_lock, self._database.transaction():
            yield


_TIMELINE_INSERT = (
    f"INSERT INTO timeline (run_id, {', '.join(TIMELINE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(TIMELINE_COLUMNS) + 1))})"
)


async def _connect(path: Path) -> aiosqlite.Connection:
    """Prepare the file (0600, WAL, schema) and open the session connection.

    WAL lets `status` read while a run writes. synchronous=NORMAL skips the
    fsync at each commit: a commit is in the WAL file (the OS page cache) when
    COMMIT returns, so a process crash, even SIGKILL, loses nothing and
    invariant 1 holds. A power loss or OS crash can lose the last commits but
    never split one: records and checkpoint roll back together, the feed is
    re-read from the older checkpoint, and only changes the CRM already
    accepted are sent again (updates are idempotent; an insert can repeat).
    """
    try:
        await asyncio.to_thread(prepare_file, path, busy_timeout_s=_BUSY_TIMEOUT_S)
        db = await aiosqlite.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise FatalError(f"cannot open journal {path}: {exc}") from exc
    try:
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute_fetchall("SELECT 1 FROM records LIMIT 1")  # maps -wal/-shm
        tighten_sidecars(path)
    except BaseException:
        await db.close()
        raise
    return db


def _release(lock: ProcessLock | None) -> None:
    if lock is not None:
        lock.release()


def _failed_filter(code: str | None, ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause (placeholders only) selecting failed rows by code and ids."""
    clauses = ["state = 'failed'"]  # a literal, so the partial index applies
    params: list[Any] = []
    if code is not None:
        clauses.append("code = ?")
        params.append(code)
    if ids:
        clauses.append(f"record_id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    return " AND ".join(clauses), tuple(params)


def _id_groups(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    """`ids` without repeats in groups small enough for one statement; `[()]` for none."""
    unique = list(dict.fromkeys(ids))
    if not unique:
        return [()]
    return [unique[i : i + _IDS_PER_STATEMENT] for i in range(0, len(unique), _IDS_PER_STATEMENT)]


def _load_json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


async def _open_postgres(
    cls: type[Journal],
    url: str,
    schema: str,
    *,
    holder: str | None,
    commit_process: bool,
    commit_timeout_s: float,
    wait: bool = False,
) -> Journal:
    """The journal in PostgreSQL schema `schema` (see `Journal.open`).

    The session connection creates or upgrades the schema, then, with
    `holder`, takes the journal's advisory lock (`pg_lock`) and keeps it as
    long as it is open: the server drops it with the session, SIGKILL
    included. Without `holder` it reads (and makes small writes) beside
    any holder, as MVCC allows.
    """
    from syncengine.journal import pg_connection, pg_lock, pg_schema

    where = pg_connection.where(url, schema)
    connection = await pg_connection.connect(url, schema, purpose="session")
    db = PostgresDatabase(connection, where=where, url=url)
    committer = None
    holds: list[list[object]] = []
    try:
        try:
            found = await pg_schema.migrate(connection, schema, where)
            if holder is not None:
                hold = await pg_lock.acquire(
                    connection,
                    schema,
                    describe_holder(holder, now=time.time()),
                    where=where,
                    wait=wait,
                )
                holds.append(hold.encode())
        except _pg_errors() as exc:
            detail = pg_connection.scrub(f"{type(exc).__name__}: {exc}", url)
            raise FatalError(f"cannot open journal {where}: {detail}"[:400]) from None
        if found < pg_schema.SCHEMA_VERSION:
            log.info(
                "journal.migrated",
                journal=where,
                from_version=found,
                to_version=pg_schema.SCHEMA_VERSION,
            )
        if commit_process:
            committer = await CommitProcess.start_postgres(
                url, schema, where=where, timeout_s=commit_timeout_s
            )
    except BaseException:
        await connection.close()
        raise
    log.debug("journal.opened", journal=where, locked=holder is not None)
    journal = cls(
        db,
        where,
        None,
        committer,
        postgres=(url, schema),
        holds_pg_lock=holder is not None,
        holds=holds,
    )
    if holder is not None:
        connection.add_termination_listener(lambda _connection: journal._session_lost())
    return journal


def _pg_errors() -> tuple[type[BaseException], ...]:
    """What asyncpg raises for a statement the server (or the link to it) failed."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def _pg_release(db: Database, schema: str) -> None:
    """Clear the holder line and drop the advisory lock before the session ends."""
    from syncengine.journal import pg_lock

    assert isinstance(db, PostgresDatabase)
    await pg_lock.release(db.connection, schema)
