"""The bulk-write jobs of `migrate`, journaled step by step in the journal file.

A job's life: `planned` (its rows and their payloads journaled, nothing
sent), `uploaded` (the CRM holds its file: `file_id`), `created` (the CRM
runs it: `job_id`), then `done` (its rows' outcomes are records rows) or
`abandoned` (its rows were handed to the records path). Each step is
journaled before the next request, so a pass killed anywhere finds, on the
next start, the furthest step the CRM is known to have taken: a `created`
job is polled and read, never sent again; a `planned` one was never created.

Own connection: these are small writes between long waits, outside the
pass's group commits; SQLite's WAL lets them sit beside those. The job's
rows are deleted when it ends, so the table holds only work under way.

The calls are synchronous, as the pass makes them between long waits. On
a PostgreSQL journal (`JobsJournal.postgres`) the same SQL runs through
asyncpg on a thread of its own (`_PostgresConnection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from syncengine.model import Checkpoint, Operation

if TYPE_CHECKING:
    import asyncpg

_T = TypeVar("_T")

_BUSY_TIMEOUT_S: Final = 10.0


@dataclass(slots=True)
class JobRow:
    """One journaled job: what it sends, how far it got, the last feed position it covers."""

    id: int
    source: str
    module: str
    operation: Operation
    find_by: str | None
    state: str
    file_id: str | None
    job_id: str | None
    rows: int
    last: Checkpoint | None


@dataclass(frozen=True, slots=True)
class JobLine:
    """One row of a job's file: its record's journal key, position, feed file and change."""

    key: str
    position: int | str | None
    source: str | None
    payload: bytes


class _Connection(Protocol):
    """What the jobs' SQL needs of a connection (SQL in SQLite's spelling, `?` placeholders)."""

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def insert(self, sql: str, params: Sequence[Any]) -> int: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


class _SqliteConnection:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return self._db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        job = self._db.execute(sql, params).lastrowid
        assert job is not None
        return job

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


class _PostgresConnection:
    """An asyncpg connection driven from synchronous code, on a thread and loop of its own."""

    def __init__(self, url: str, schema: str) -> None:
        from syncengine.journal.pg_connection import connect

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="journal.bulk_jobs", daemon=True
        )
        self._thread.start()
        try:
            self._connection: asyncpg.Connection = self._call(
                connect(url, schema, purpose="bulk jobs")
            )
        except BaseException:
            self._stop()
            raise

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        from syncengine.journal.database import numbered

        return list(self._call(self._connection.fetch(numbered(sql), *params)))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        from syncengine.journal.database import numbered

        self._call(self._connection.execute(numbered(sql), *params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        from syncengine.journal.database import numbered

        self._call(self._connection.executemany(numbered(sql), list(rows)))

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        from syncengine.journal.database import numbered

        job: int = self._call(self._connection.fetchval(numbered(sql) + " RETURNING id", *params))
        return job

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        try:
            self._call(self._connection.close(timeout=5))
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class JobsJournal:
    """The `bulk_jobs` and `bulk_rows` tables of one journal (file or PostgreSQL schema)."""

    def __init__(self, path: Path | None = None, *, connection: _Connection | None = None) -> None:
        """`path` is a journal `Journal.open` prepared (mode, links and schema checked)."""
        if connection is None:
            assert path is not None
            connection = _SqliteConnection(path)
        self._db = connection

    @classmethod
    def postgres(cls, url: str, schema: str) -> JobsJournal:
        """The jobs of the journal in PostgreSQL schema `schema` (prepared by `Journal.open`)."""
        return cls(connection=_PostgresConnection(url, schema))

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def plan(
        self,
        *,
        source: str,
        module: str,
        operation: Operation,
        find_by: str | None,
        lines: Sequence[JobLine],
        last: Checkpoint,
    ) -> JobRow:
        """Journal a new job and its rows, in file order, in one transaction."""
        now = time.time()
        with self._db.transaction():
            job = self._db.insert(
                "INSERT INTO bulk_jobs (source, module, operation, find_by, state, rows,"
                " last_resume_after, last_display, last_generation, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'planned', ?, ?, ?, ?, ?, ?)",
                (
                    source,
                    module,
                    operation.value,
                    find_by,
                    len(lines),
                    last.resume_after,
                    last.display,
                    last.generation,
                    now,
                    now,
                ),
            )
            self._db.executemany(
                "INSERT INTO bulk_rows (job, row, key, position, source, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (job, row, line.key, line.position, line.source, line.payload)
                    for row, line in enumerate(lines)
                ),
            )
        return JobRow(
            job, source, module, operation, find_by, "planned", None, None, len(lines), last
        )

    def uploaded(self, job: JobRow, file_id: str) -> None:
        """The CRM holds the job's file as `file_id`."""
        self._set(job, "uploaded", "file_id = ?", (file_id,))
        job.state, job.file_id = "uploaded", file_id

    def created(self, job: JobRow, job_id: str) -> None:
        """The CRM runs the job as `job_id`."""
        self._set(job, "created", "job_id = ?", (job_id,))
        job.state, job.job_id = "created", job_id

    def ended(self, job: JobRow, state: str) -> None:
        """The job is `done` or `abandoned`: its rows' outcomes are durable records rows."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE bulk_jobs SET state = ?, updated_at = ? WHERE id = ?",
                (state, time.time(), job.id),
            )
            self._db.execute("DELETE FROM bulk_rows WHERE job = ?", (job.id,))
        job.state = state

    def unfinished(self) -> list[JobRow]:
        """Jobs a pass left between steps, oldest first."""
        rows = self._db.fetchall(
            "SELECT id, source, module, operation, find_by, state, file_id, job_id, rows,"
            " last_resume_after, last_display, last_generation FROM bulk_jobs"
            " WHERE state NOT IN ('done', 'abandoned') ORDER BY id"
        )
        return [
            JobRow(
                job,
                source,
                module,
                Operation(operation),
                find_by,
                state,
                file_id,
                job_id,
                count,
                None if after is None else Checkpoint(after, display, generation),
            )
            for (
                job,
                source,
                module,
                operation,
                find_by,
                state,
                file_id,
                job_id,
                count,
                after,
                display,
                generation,
            ) in rows
        ]

    def lines(self, job: JobRow, start: int = 0, stop: int | None = None) -> list[JobLine]:
        """The job's rows in file order (those from `start` up to `stop`, when given)."""
        rows = self._db.fetchall(
            "SELECT key, position, source, payload FROM bulk_rows"
            " WHERE job = ? AND row >= ? AND row < ? ORDER BY row",
            (job.id, start, job.rows if stop is None else stop),
        )
        return [
            JobLine(key, position, source, bytes(payload))
            for key, position, source, payload in rows
        ]

    def owed_keys(self) -> set[str]:
        """Keys of records rows still owed (pending or failed): their changes stay on the
        records path, which merges them (design.md invariant 3)."""
        found: set[str] = set()
        for state in ("pending", "failed"):  # literals, so the partial indexes apply
            rows = self._db.fetchall(f"SELECT key FROM records WHERE state = '{state}'")
            found.update(key for (key,) in rows)
        return found

    def _set(self, job: JobRow, state: str, assignment: str, params: Iterable[object]) -> None:
        self._db.execute(
            f"UPDATE bulk_jobs SET state = ?, {assignment}, updated_at = ? WHERE id = ?",
            (state, *params, time.time(), job.id),
        )
