"""The journal's write statements: what one group commit sends to SQLite.

Pure: `row_runs` turns a flush's record updates into plain rows (the pass's
side, sent to the commit process) and `statements_for` turns those into as
few statements as possible, in order (the commit worker's side), because
each statement has a cost of its own (see the notes below); the SQL text and
its parameters are all that leave this module.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from syncengine.journal.records import RecordUpdate, SyncedRow
from syncengine.model import RecordState

#: The upserts' conflict clauses, the same in SQLite and PostgreSQL (`pg_writes`):
#: what a later write of a key keeps of the row it replaces.
RECORD_ON_CONFLICT = """
ON CONFLICT (key) DO UPDATE SET
    module = excluded.module, record_id = excluded.record_id,
    operation = excluded.operation, state = excluded.state, attempts = excluded.attempts,
    code = excluded.code, message = excluded.message, details = excluded.details,
    next_attempt_at = excluded.next_attempt_at, payload = excluded.payload,
    position = coalesce(excluded.position, records.position), updated_at = excluded.updated_at,
    source = coalesce(excluded.source, records.source), accepted = excluded.accepted
"""
SYNCED_ON_CONFLICT = """
ON CONFLICT (key) DO UPDATE SET
    module = excluded.module, record_id = coalesce(excluded.record_id, records.record_id),
    operation = excluded.operation, state = 'synced', attempts = excluded.attempts,
    code = 'SUCCESS', message = NULL, details = NULL, next_attempt_at = NULL, payload = NULL,
    position = coalesce(excluded.position, records.position),
    source = coalesce(excluded.source, records.source), updated_at = excluded.updated_at,
    accepted = NULL
"""
CHECKPOINT_ON_CONFLICT = """
ON CONFLICT (source_id) DO UPDATE SET resume_after = excluded.resume_after,
    display = excluded.display, updated_at = excluded.updated_at,
    generation = excluded.generation
"""

_UPSERT_RECORD = (
    """
INSERT INTO records (key, module, record_id, operation, state, attempts, code, message,
                     details, next_attempt_at, payload, position, updated_at, source, accepted)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
    + RECORD_ON_CONFLICT
)

# The bulk of a migration: rows that became synced. A narrower statement than
# `_UPSERT_RECORD` because a synced row keeps no payload, message or details.
_UPSERT_SYNCED = (
    """
INSERT INTO records (key, module, record_id, operation, state, attempts, code, position,
                     source, updated_at)
VALUES (?, ?, ?, ?, 'synced', ?, 'SUCCESS', ?, ?, ?)
"""
    + SYNCED_ON_CONFLICT
)

# The general upsert takes a whole run of rows as one JSON array parameter
# (json_each, in array order). One statement per run instead of one step per
# row matters more than it seems: Python's sqlite3 releases the GIL around
# every step, and with the event loop busy on the main thread each re-take of
# the GIL waits for its switch interval. Measured with a busy main thread:
# 20,000 rows took 61 s through executemany and 0.3 s through json_each.
_FROM_JSON = "FROM json_each(?) AS r WHERE true ORDER BY r.key"

# Synced rows go as multi-row VALUES statements: one step per statement, and
# binding parameters costs SQLite far less than re-parsing each row's JSON for
# every column. Only a few statement sizes exist, because preparing a VALUES
# list costs time quadratic in its rows (a 1,000-row one: ~90 ms, against
# ~4 ms to run it once prepared): a run is cut into blocks of the largest
# size, and its tail is padded to the next size up by repeating its last row,
# which changes nothing (the upsert is idempotent and that row stays last).
# Parameters are numbered: ?1 is the shared `updated_at`, then seven per row.
_SYNCED_ROW_PARAMS = 7
_SYNCED_ROW_VALUES = "(?, ?, ?, ?, 'synced', ?, 'SUCCESS', ?, ?, ?)"
#: The statement sizes, within SQLite's default limit on parameter numbers
#: (32,766 since 3.32, 999 before: then 128 rows at most).
SYNCED_STATEMENT_ROWS = tuple(
    rows
    for rows in (16, 128, 512)
    if 1 + rows * _SYNCED_ROW_PARAMS
    <= (32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999)
)

_UPSERT_RECORD_JSON = _UPSERT_RECORD.replace(
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "SELECT "
    + ", ".join("CAST(r.value->>10 AS BLOB)" if n == 10 else f"r.value->>{n}" for n in range(15))
    + f" {_FROM_JSON}",
)

UPSERT_HIGH_WATER = (
    """
INSERT INTO high_water (source_id, resume_after, display, updated_at, generation)
VALUES (?, ?, ?, ?, ?)
"""
    + CHECKPOINT_ON_CONFLICT
)

UPSERT_CHECKPOINT = (
    """
INSERT INTO checkpoints (source_id, resume_after, display, updated_at, generation)
VALUES (?, ?, ?, ?, ?)
"""
    + CHECKPOINT_ON_CONFLICT
)


#: Consecutive rows of one kind: (True, synced rows) or (False, record rows),
#: plain JSON values either way, so a run can travel to the commit process.
RowRun = tuple[bool, list[Any]]


def row_runs(updates: Sequence[RecordUpdate | SyncedRow], now: float) -> list[RowRun]:
    """Consecutive updates of one kind, as rows of plain values, in order."""
    runs: list[RowRun] = []
    for update in updates:
        synced = isinstance(update, tuple)
        if not runs or runs[-1][0] is not synced:
            runs.append((synced, []))
        runs[-1][1].append(update if isinstance(update, tuple) else _record_row(update, now))
    return runs


def statements_for(runs: Sequence[RowRun], now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements, with their parameters, that write `runs` in order."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for synced, rows in runs:
        if not synced:
            statements.append((_UPSERT_RECORD_JSON, (orjson.dumps(rows),)))
            continue
        block = SYNCED_STATEMENT_ROWS[-1]
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            size = next(size for size in SYNCED_STATEMENT_ROWS if size >= len(part))
            part.extend(itertools.repeat(part[-1], size - len(part)))
            statements.append((_synced_upsert(size), (now, *itertools.chain.from_iterable(part))))
    return statements


@functools.cache
def _synced_upsert(rows: int) -> str:
    """The synced-row upsert taking `rows` rows of parameters (a later row wins its key)."""
    values = []
    for row in range(rows):
        first = 2 + row * _SYNCED_ROW_PARAMS
        numbered = [f"?{first + column}" for column in range(_SYNCED_ROW_PARAMS)]
        values.append("({}, {}, {}, {}, 'synced', {}, 'SUCCESS', {}, {}, ?1)".format(*numbered))
    return _UPSERT_SYNCED.replace(_SYNCED_ROW_VALUES, ", ".join(values))


def _record_row(update: RecordUpdate, now: float) -> tuple[Any, ...]:
    """The row for `update`, enforcing what each state keeps (see `RecordUpdate`)."""
    state = update.state
    due_at = None
    if state is RecordState.PENDING:
        due_at = now if update.next_attempt_at is None else update.next_attempt_at
    return (
        update.key,
        update.module,
        update.record_id,
        None if update.operation is None else update.operation.value,
        state.value,
        update.attempts,
        update.code,
        update.message,
        None if update.details is None else _dump_json(update.details),
        due_at,
        # As text: the payload is orjson's UTF-8, and rows travel as JSON.
        None if state is RecordState.SYNCED or update.payload is None else update.payload.decode(),
        update.position,
        now,
        update.source_id,
        update.accepted if state is RecordState.SYNCED else None,
    )


def _dump_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
