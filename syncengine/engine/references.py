"""Sending changes that name records by source key: the id map, references, deletes.

A change may name its own record by the source's key (`Change.source_key`)
instead of a CRM id, and a field may name another record the same way
(`{"$ref": {"module": "Accounts", "key": "acme-42"}}`). Neither can go on the
wire as written: the CRM knows ids only. So each chunk is resolved just
before it is sent, against the id map (every insert or upsert answered with
an id records (module, source key) → id in the journal, see `IdMap`):

- a change whose record's key is mapped and that carries no `id` is sent as
  an update of the mapped id; one whose key is not mapped is sent as its
  operation says (an insert or upsert creates the record), except an update,
  which has no record to update (`UNKNOWN_KEY`);
- a delete by key deletes the mapped id; with none mapped there is nothing
  to delete, and the change is done (`ALREADY_DELETED`);
- a reference is replaced by the lookup shape the CRM expects (`{"id": ...}`,
  crm-api.md §1.8); an unresolved one makes the change wait (`Verdict.WAIT`)
  until the referenced record is journaled with an id, or until the pass
  gives up on it (`UNRESOLVED_REFERENCE`).

`plan_chunk` is the pure policy; `engine.resolver` looks the keys up and sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from syncengine.crm.deletes import ALREADY_DELETED
from syncengine.engine.known_values import KnownValues
from syncengine.keys import source_record_key
from syncengine.model import Change, Chunk, Operation, Record, RecordOutcome, Verdict
from syncengine.sources.records import REF, reference_problem

#: A keyed update (no `id`) whose key maps to no CRM id: never inserted, or deleted.
UNKNOWN_KEY = "UNKNOWN_KEY"
#: A `$ref` that names a record with no CRM id when the pass gives up waiting.
UNRESOLVED_REFERENCE = "UNRESOLVED_REFERENCE"
#: A `$ref` that is not `{"$ref": {"module": M, "key": K}}`.
BAD_INPUT = "BAD_INPUT"


class IdMap(KnownValues[str]):
    """(module, source key) → CRM id, as the pass knows it (see `KnownValues`)."""

    def __init__(self, journal: IdSource, *, capacity: int = 50_000) -> None:
        super().__init__(journal.mapped_ids, capacity=capacity)


class IdSource(Protocol):
    """Where ids not learned in the pass come from: the journal."""

    async def mapped_ids(self, keys: list[str]) -> dict[str, str]:
        """The CRM id of each of `keys` that maps to a live record."""
        ...


def references_of(record: Record) -> list[tuple[str, str]]:
    """(field, referenced record's key) for each `$ref` value of `record`."""
    out = []
    for name, value in record.items():
        if type(value) is dict and REF in value:
            ref = value[REF]
            if isinstance(ref, dict):
                module, key = ref.get("module"), ref.get("key")
                if isinstance(module, str) and isinstance(key, str | int):
                    out.append((name, source_record_key(module, str(key))))
    return out


def has_references(record: Record) -> bool:
    """True when a field value of `record` is a `$ref`."""
    return any(type(value) is dict and REF in value for value in record.values())


def needs_resolution(chunk: Chunk) -> bool:
    """True unless every change of `chunk` goes on the wire as it is (the common case).

    Plain loops rather than `has_references`: this runs for every record sent.
    """
    if chunk.group.operation is Operation.DELETE:
        return True
    for change in chunk.changes:
        if change.source_key is not None:
            return True
        for value in change.record.values():
            if type(value) is dict and REF in value:
                return True
    return False


def keys_to_look_up(changes: Iterable[Change]) -> set[str]:
    """Every key whose id resolving `changes` needs."""
    keys: set[str] = set()
    for change in changes:
        if change.source_key is not None and change.key is not None and "id" not in change.record:
            keys.add(change.key)
        keys.update(key for _, key in references_of(change.record))
    return keys


@dataclass(slots=True)
class Plan:
    """How one chunk goes out: requests by operation, and outcomes known without a send.

    `requests` holds (operation, indices into the chunk, wire records);
    `outcomes` holds the outcome of each change that is not sent (None for
    those that are); `ids` the CRM id each change's record has (sent or
    mapped), so its journal row names it even when the CRM rejects it.
    """

    requests: list[tuple[Operation, list[int], list[Record]]] = field(default_factory=list)
    outcomes: list[RecordOutcome | None] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)


def _unresolved(field_name: str, key: str) -> RecordOutcome:
    module, _, source_key = key.partition("/")
    return RecordOutcome(
        Verdict.WAIT,
        UNRESOLVED_REFERENCE,
        f"{field_name} refers to {module} record {source_key!r}, which has no CRM id",
        {"api_name": field_name, "module": module, "key": source_key},
    )


def _own_record(
    change: Change, ids: Mapping[str, str | None]
) -> tuple[Operation, str | None] | RecordOutcome:
    """The operation and id a change is sent with, or its outcome when it is not sent."""
    record_id = change.record_id
    operation = change.operation
    if record_id is not None or change.source_key is None or change.key is None:
        return operation, record_id
    record_id = ids.get(change.key)
    if record_id is not None:
        # The record exists: whatever the change asked for, it is an update of it.
        return (operation if operation is Operation.DELETE else Operation.UPDATE), record_id
    if operation is Operation.DELETE:
        message = f"no CRM id is mapped to source key {change.source_key!r}"
        return RecordOutcome(Verdict.SYNCED, ALREADY_DELETED, message)
    if operation is Operation.UPDATE:
        message = (
            f"no CRM id is mapped to source key {change.source_key!r} (never inserted, or deleted)"
        )
        return RecordOutcome(Verdict.REJECT, UNKNOWN_KEY, message, {"key": change.source_key})
    return operation, None  # an insert or upsert creates it


def _resolve_one(
    change: Change, ids: Mapping[str, str | None]
) -> tuple[Operation, Record, str | None] | RecordOutcome:
    """The operation and wire record of one change, or its outcome when it is not sent."""
    record = change.record
    problem = reference_problem(record)
    if problem is not None:
        return RecordOutcome(Verdict.REJECT, BAD_INPUT, problem)
    own = _own_record(change, ids)
    if isinstance(own, RecordOutcome):
        return own
    operation, record_id = own
    if operation is Operation.DELETE:
        assert record_id is not None  # a delete has an id or a source key (sources.records)
        return operation, {"id": record_id}, record_id
    references = references_of(record)
    if not references and (record_id is None or "id" in record):
        return operation, record, record_id
    wire = dict(record)
    for name, key in references:
        referenced = ids.get(key)
        if referenced is None:
            return _unresolved(name, key)
        wire[name] = {"id": referenced}
    if record_id is not None:
        wire["id"] = record_id
    return operation, wire, record_id


def plan_chunk(changes: list[Change], ids: Mapping[str, str | None]) -> Plan:
    """How `changes` (one chunk) go out, given the ids of the keys they name."""
    plan = Plan(outcomes=[None] * len(changes), ids=[None] * len(changes))
    by_operation: dict[Operation, tuple[list[int], list[Record]]] = {}
    for index, change in enumerate(changes):
        resolved = _resolve_one(change, ids)
        if isinstance(resolved, RecordOutcome):
            plan.outcomes[index] = resolved
            continue
        operation, wire, record_id = resolved
        plan.ids[index] = record_id
        indices, records = by_operation.setdefault(operation, ([], []))
        indices.append(index)
        records.append(wire)
    plan.requests = [(op, indices, records) for op, (indices, records) in by_operation.items()]
    return plan
