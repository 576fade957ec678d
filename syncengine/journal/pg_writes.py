"""A group commit's statements for a PostgreSQL journal (pure; see `writes` for SQLite's).

The commit worker gets the same message either way (`writes.row_runs`);
here each run of rows becomes one statement that reads the whole run as one
`jsonb` parameter (`jsonb_array_elements`): one round trip per run, whatever
its size.

PostgreSQL refuses an upsert that changes one row twice in a statement,
which SQLite allows (a later row then wins). `fold` merges repeats of a key
within a run first, exactly as applying them in order would: the later
row's values, but a column the upsert keeps when the later row has none
(`coalesce(excluded.x, records.x)`) keeps the earlier row's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncengine.journal.writes import (
    CHECKPOINT_ON_CONFLICT,
    RECORD_ON_CONFLICT,
    SYNCED_ON_CONFLICT,
    RowRun,
)

_RECORD_COLUMNS = (
    "key, module, record_id, operation, state, attempts, code, message, details,"
    " next_attempt_at, payload, position, updated_at, source, accepted"
)

UPSERT_RECORDS = (
    f"""
INSERT INTO records ({_RECORD_COLUMNS})
SELECT r->>0, r->>1, r->>2, r->>3, r->>4, (r->>5)::integer, r->>6, r->>7, r->>8,
       (r->>9)::double precision, convert_to(r->>10, 'UTF8'), nullif(r->11, 'null'::jsonb),
       (r->>12)::double precision, r->>13, r->>14
FROM jsonb_array_elements($1::jsonb) AS r
"""
    + RECORD_ON_CONFLICT
)

UPSERT_SYNCED = (
    """
INSERT INTO records (key, module, record_id, operation, state, attempts, code, position,
                     source, updated_at)
SELECT r->>0, r->>1, r->>2, r->>3, 'synced', (r->>4)::integer, 'SUCCESS',
       nullif(r->5, 'null'::jsonb), r->>6, $2::double precision
FROM jsonb_array_elements($1::jsonb) AS r
"""
    + SYNCED_ON_CONFLICT
)

UPSERT_CHECKPOINT = (
    """
INSERT INTO checkpoints (source_id, resume_after, display, updated_at, generation)
VALUES ($1, $2, $3, $4, $5)
"""
    + CHECKPOINT_ON_CONFLICT
)

UPSERT_HIGH_WATER = UPSERT_CHECKPOINT.replace("checkpoints", "high_water")

#: Columns an upsert keeps when the new row has none: (record rows, synced rows).
_KEPT_RECORD = (11, 13)  # position, source
_KEPT_SYNCED = (2, 5, 6)  # record_id, position, source


def fold(rows: Sequence[Sequence[Any]], kept: Sequence[int]) -> list[list[Any]]:
    """`rows` with each key (column 0) once, as applying them in order would leave it."""
    merged: dict[Any, list[Any]] = {}
    for row in rows:
        new = list(row)
        old = merged.get(row[0])  # a folded row keeps its first place: new rows' order
        if old is not None:
            for column in kept:
                if new[column] is None:
                    new[column] = old[column]
        merged[row[0]] = new
    return list(merged.values())


def statements_for(runs: Sequence[RowRun], now: float) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements, with their parameters, that write `runs` in order."""
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for synced, rows in runs:
        if synced:
            statements.append((UPSERT_SYNCED, (fold(rows, _KEPT_SYNCED), now)))
        else:
            statements.append((UPSERT_RECORDS, (fold(rows, _KEPT_RECORD),)))
    return statements
