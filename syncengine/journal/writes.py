"""The journal's write statements: what one group commit sends to SQLite.

Pure: `statement_runs` turns a flush's record updates into as few statements
as possible, in order, because each statement costs the journal thread two
takes of the GIL from a busy event loop (see the notes below); the SQL text
and its parameters are all that leave this module.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from syncengine.journal.records import RecordUpdate, SyncedRow
from syncengine.model import RecordState

_UPSERT_RECORD = """
INSERT INTO records (key, module, record_id, operation, state, attempts, code, message,
                     details, next_attempt_at, payload, position, updated_at, source)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    module = excluded.module, record_id = excluded.record_id,
    operation = excluded.operation, state = excluded.state, attempts = excluded.attempts,
    code = excluded.code, message = excluded.message, details = excluded.details,
    next_attempt_at = excluded.next_attempt_at, payload = excluded.payload,
    position = coalesce(excluded.position, records.position), updated_at = excluded.updated_at,
    source = coalesce(excluded.source, records.source)
"""

# The bulk of a migration: rows that became synced. A narrower statement than
# `_UPSERT_RECORD` because a synced row keeps no payload, message or details.
_UPSERT_SYNCED = """
INSERT INTO records (key, module, record_id, operation, state, attempts, code, position,
                     source, updated_at)
VALUES (?, ?, ?, ?, 'synced', ?, 'SUCCESS', ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    module = excluded.module, record_id = coalesce(excluded.record_id, records.record_id),
    operation = excluded.operation, state = 'synced', attempts = excluded.attempts,
    code = 'SUCCESS', message = NULL, details = NULL, next_attempt_at = NULL, payload = NULL,
    position = coalesce(excluded.position, records.position),
    source = coalesce(excluded.source, records.source), updated_at = excluded.updated_at
"""

# The general upsert takes a whole run of rows as one JSON array parameter
# (json_each, in array order). One statement per run instead of one step per
# row matters more than it seems: Python's sqlite3 releases the GIL around
# every step, and with the event loop busy on the main thread each re-take of
# the GIL waits for its switch interval. Measured with a busy main thread:
# 20,000 rows took 61 s through executemany and 0.3 s through json_each.
_FROM_JSON = "FROM json_each(?) AS r WHERE true ORDER BY r.key"

# Synced rows go as one multi-row VALUES statement per run: still one
# step, and binding parameters costs SQLite far less than re-parsing each
# row's JSON for every column (half the journal thread's time at 300,000
# rows). Parameters are numbered: ?1 is the shared `updated_at`, then seven
# per row, so a run's parameters are its rows laid end to end.
_SYNCED_ROW_PARAMS = 7
_SYNCED_ROW_VALUES = "(?, ?, ?, ?, 'synced', ?, 'SUCCESS', ?, ?, ?)"
#: Rows per statement, within SQLite's default limit on parameter numbers
#: (32,766 since 3.32, 999 before).
SYNCED_ROWS_PER_STATEMENT = (
    (32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999) - 1
) // _SYNCED_ROW_PARAMS

_UPSERT_RECORD_JSON = _UPSERT_RECORD.replace(
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "SELECT "
    + ", ".join("CAST(r.value->>10 AS BLOB)" if n == 10 else f"r.value->>{n}" for n in range(14))
    + f" {_FROM_JSON}",
)

UPSERT_HIGH_WATER = """
INSERT INTO high_water (source_id, resume_after, display, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (source_id) DO UPDATE SET resume_after = excluded.resume_after,
    display = excluded.display, updated_at = excluded.updated_at
"""

UPSERT_CHECKPOINT = """
INSERT INTO checkpoints (source_id, resume_after, display, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (source_id) DO UPDATE SET resume_after = excluded.resume_after,
    display = excluded.display, updated_at = excluded.updated_at
"""


def statement_runs(
    updates: Sequence[RecordUpdate | SyncedRow], now: float
) -> list[tuple[str, tuple[Any, ...]]]:
    """Consecutive updates of one kind as statements with their parameters, in order."""
    runs: list[tuple[bool, list[Any]]] = []
    for update in updates:
        synced = isinstance(update, tuple)
        if not runs or runs[-1][0] is not synced:
            runs.append((synced, []))
        runs[-1][1].append(update if isinstance(update, tuple) else _record_row(update, now))
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for synced, rows in runs:
        if not synced:
            statements.append((_UPSERT_RECORD_JSON, (orjson.dumps(rows),)))
            continue
        for start in range(0, len(rows), SYNCED_ROWS_PER_STATEMENT):
            part = rows[start : start + SYNCED_ROWS_PER_STATEMENT]
            params = (now, *itertools.chain.from_iterable(part))
            statements.append((_synced_upsert(len(part)), params))
    return statements


def _synced_upsert(rows: int) -> str:
    """The synced-row upsert for `rows` rows of parameters (a later row wins its key).

    A prefix of one VALUES list written once for the largest statement, so a
    flush of any size costs a slice rather than building the text again.
    """
    head, tail = _UPSERT_SYNCED.split(_SYNCED_ROW_VALUES)
    return head + _SYNCED_VALUES[: _SYNCED_VALUES_ENDS[rows - 1]] + tail


def _row_values(row: int) -> str:
    first = 2 + row * _SYNCED_ROW_PARAMS
    numbered = [f"?{first + column}" for column in range(_SYNCED_ROW_PARAMS)]
    return "({}, {}, {}, {}, 'synced', {}, 'SUCCESS', {}, {}, ?1)".format(*numbered)


_SYNCED_VALUES = ", ".join(_row_values(row) for row in range(SYNCED_ROWS_PER_STATEMENT))
_SYNCED_VALUES_ENDS = [
    index for index, character in enumerate(_SYNCED_VALUES, start=1) if character == ")"
]


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
    )


def _dump_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
