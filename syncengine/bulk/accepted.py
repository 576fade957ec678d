"""What a bulk-write job's synced rows leave for `[crm] skip_unchanged`; pure.

The records path keeps, with each synced row, digests of the field values
the CRM then holds (`engine.unchanged`), so a later pass does not send them
again. A row a job wrote tells the same: the CRM holds the fields of the
row's change over what it held before (an update or upsert of a record the
journal knows), or just those fields (an insert, or a record the journal
has no digests for). Without this, a nightly export after a bulk migration
would re-send every record the migration wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from syncengine.bulk.jobs_journal import JobLine
from syncengine.engine.unchanged import decode, encode, field_digests, may_skip
from syncengine.journal import RecordUpdate, SyncedRow, decode_payload
from syncengine.model import Operation, RecordState


def digest_keys(lines: Sequence[JobLine], updates: Sequence[RecordUpdate | SyncedRow]) -> list[str]:
    """Keys of the synced rows whose digests before the job matter (updates and upserts)."""
    return [
        line.key
        for line, update in zip(lines, updates, strict=True)
        if type(update) is tuple and update[3] != Operation.INSERT.value
    ]


def with_digests(
    lines: Sequence[JobLine],
    updates: Sequence[RecordUpdate | SyncedRow],
    known: Mapping[str, str],
) -> list[RecordUpdate | SyncedRow]:
    """`updates` (one per line, as `outcomes.rows_for` makes them) with each synced row
    carrying the digests of what the CRM now holds; `known` is the journal's digests
    before the job, by key. Rows that are not synced, or whose change may never be
    found unchanged (a plain insert), are left as they are."""
    out: list[RecordUpdate | SyncedRow] = []
    for line, update in zip(lines, updates, strict=True):
        if type(update) is not tuple:
            out.append(update)
            continue
        change = decode_payload(line.payload, attempts=update[4])
        if not may_skip(change):
            out.append(update)
            continue
        sent = field_digests(change.record)
        before = known.get(line.key)
        inserted = change.operation is Operation.INSERT
        held = sent if inserted or before is None else {**decode(before), **sent}
        key, module, record_id, operation, attempts, position, source = update
        out.append(
            RecordUpdate(
                key=key,
                module=module,
                record_id=record_id,
                operation=Operation(operation),
                state=RecordState.SYNCED,
                attempts=attempts,
                code="SUCCESS",
                message=None,
                details=None,
                next_attempt_at=None,
                payload=None,
                position=position,
                source_id=source,
                accepted=encode(held),
            )
        )
    return out
