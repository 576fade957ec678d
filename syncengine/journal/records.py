"""The journal's rows as values: what `apply` writes and what readers get back.

Also the payload codec: what a retry needs to re-send a change, stored only
while the record still needs work (pending, or failed but re-drivable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from syncengine.keys import position_key
from syncengine.model import Change, Operation, RecordState


def journal_key(change: Change) -> str:
    """The journal row of a change: its key, or "@" + its display position.

    A record with no identity (a plain insert) is known by where it sits in
    the feed. Raises ValueError for a keyless change with no position.
    """
    if change.key is not None:
        return change.key
    if not change.positions:
        raise ValueError("a change without key or position has no journal row")
    return position_key(None, change.positions[0].display)


def encode_payload(change: Change, *, blamed: int | str | None = None) -> bytes:
    """What a retry needs to re-send `change`, as orjson bytes.

    Feed positions are kept only in display form (a re-driven change has no
    feed position to settle): `positions` lists every change the record still
    owes, oldest first, `fields` which of them supplied each field (when
    changes were merged) and `blamed` the one a failure points at. The key
    stored is `journal_key(change)`, so the re-driven change's outcome lands
    on the same row even for an insert without identity. Raises
    orjson.JSONEncodeError (a TypeError) for a value JSON cannot hold.
    """
    trigger = None if change.trigger is None else list(change.trigger)
    document: dict[str, Any] = {
        "module": change.module,
        "operation": change.operation.value,
        "record": change.record,
        "trigger": trigger,
        "key": journal_key(change),
    }
    positions = change.owed_positions
    if positions:
        document["positions"] = positions
    if change.field_positions is not None:
        document["fields"] = change.field_positions
    if blamed is not None:
        document["blamed"] = blamed
    if change.source_key is not None:
        document["source_key"] = change.source_key
    return orjson.dumps(document)


def decode_payload(blob: bytes, *, attempts: int) -> Change:
    """The change stored by `encode_payload`, with `attempts` sends behind it."""
    data = orjson.loads(blob)
    trigger = data["trigger"]
    return Change(
        module=data["module"],
        operation=Operation(data["operation"]),
        record=data["record"],
        key=data["key"],
        trigger=None if trigger is None else tuple(trigger),
        attempts=attempts,
        earlier_positions=data.get("positions"),
        field_positions=data.get("fields"),
        source_key=data.get("source_key"),
    )


def owed_report(blob: bytes | None) -> tuple[int | str | None, list[int | str]]:
    """From a failed row's payload: the blamed position and every owed one (for `failures`)."""
    if blob is None:
        return None, []
    data = orjson.loads(blob)
    return data.get("blamed"), list(data.get("positions") or ())


@dataclass(frozen=True, slots=True)
class RecordUpdate:
    """The new state of one journal row, written by `Journal.submit`.

    `key` is `journal_key(change)`: the change key, or `"@" + str(display)`
    for a record with no identity. `payload` is `encode_payload(change)`
    for a record that still needs work (pending, or failed but re-drivable);
    `apply` drops it for synced rows. `next_attempt_at` (epoch seconds) only
    means something for pending rows: None there means due at once.
    `position` is the display position users see (line number or cursor);
    None keeps the row's position, since a re-driven change has none.
    """

    key: str
    module: str | None
    record_id: str | None
    operation: Operation | None
    state: RecordState
    attempts: int
    code: str | None
    message: str | None
    details: dict[str, Any] | None
    next_attempt_at: float | None
    payload: bytes | None
    position: int | str | None
    #: The feed the change came from; None for a change re-driven from the
    #: journal (the row keeps the feed it had).
    source_id: str | None = None
    #: Digests of the field values the CRM now holds (`engine.unchanged`), for
    #: a synced row when `[crm] skip_unchanged` is on; None clears them.
    accepted: str | None = None


#: A record the CRM accepted, in the lean form the hot path writes:
#: (key, module, record_id, operation, attempts, position, source_id).
SyncedRow = tuple[str, str, str | None, str, int, int | str | None, str | None]


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One failed record as `syncengine failures` shows it."""

    module: str | None
    record_id: str | None
    position: int | str | None
    code: str | None
    message: str | None
    attempts: int
    details: dict[str, Any] | None
    #: Every position the record still owes, oldest first (the row's own when unknown).
    positions: tuple[int | str, ...] = ()
    #: The source key the feed names the record by, when it has one.
    source_key: str | None = None


@dataclass(frozen=True, slots=True)
class RequeueResult:
    """What `retry` did: rows put back in line, and rows it could not re-drive.

    `not_redrivable` counts matching failures without a payload (lines that
    could not be parsed): only fixing them in the feed helps.
    """

    requeued: int
    not_redrivable: int


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as `status` shows it; a killed run has `finished_at` None."""

    run_id: int
    command: str
    started_at: float
    finished_at: float | None
    exit_status: int | None
    counts: dict[str, Any] | None
