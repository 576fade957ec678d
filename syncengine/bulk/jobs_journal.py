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
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from syncengine.model import Checkpoint, Operation

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


class JobsJournal:
    """The `bulk_jobs` and `bulk_rows` tables of one journal file (schema version 6)."""

    def __init__(self, path: Path) -> None:
        """`path` is a journal `Journal.open` prepared (mode, links and schema checked)."""
        self._db = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)

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
        with self._transaction():
            cursor = self._db.execute(
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
            job = cursor.lastrowid
            assert job is not None
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
        with self._transaction():
            self._db.execute(
                "UPDATE bulk_jobs SET state = ?, updated_at = ? WHERE id = ?",
                (state, time.time(), job.id),
            )
            self._db.execute("DELETE FROM bulk_rows WHERE job = ?", (job.id,))
        job.state = state

    def unfinished(self) -> list[JobRow]:
        """Jobs a pass left between steps, oldest first."""
        rows = self._db.execute(
            "SELECT id, source, module, operation, find_by, state, file_id, job_id, rows,"
            " last_resume_after, last_display, last_generation FROM bulk_jobs"
            " WHERE state NOT IN ('done', 'abandoned') ORDER BY id"
        ).fetchall()
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
        rows = self._db.execute(
            "SELECT key, position, source, payload FROM bulk_rows"
            " WHERE job = ? AND row >= ? AND row < ? ORDER BY row",
            (job.id, start, job.rows if stop is None else stop),
        ).fetchall()
        return [
            JobLine(key, position, source, bytes(payload))
            for key, position, source, payload in rows
        ]

    def owed_keys(self) -> set[str]:
        """Keys of records rows still owed (pending or failed): their changes stay on the
        records path, which merges them (design.md invariant 3)."""
        found: set[str] = set()
        for state in ("pending", "failed"):  # literals, so the partial indexes apply
            rows = self._db.execute(f"SELECT key FROM records WHERE state = '{state}'")
            found.update(key for (key,) in rows)
        return found

    def _set(self, job: JobRow, state: str, assignment: str, params: Iterable[object]) -> None:
        self._db.execute(
            f"UPDATE bulk_jobs SET state = ?, {assignment}, updated_at = ? WHERE id = ?",
            (state, *params, time.time(), job.id),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
