"""What a record owes the CRM: the fold of its changes that the CRM has not accepted.

interface.md, "What `synced` and `failed` mean": a record the CRM rejected
keeps its whole owed state, and a later change merges into it, so a later
success can never hide an earlier rejection and a fix in the source heals the
record. Every send of a record is atomic (the CRM takes the whole record or
rejects it), so sending the fold is the same as sending each change in turn.

The fold is "later values win" except for `$append_values` (crm-api.md
§1.2), which names multi-select fields whose options are appended rather
than replaced. Folding keeps that meaning: an append after a value sends the
union (what the CRM would hold after both), an append after an append stays
an append of the union, and a plain value after an append replaces it.

Pure functions over plain data, so the semantics are tested without I/O.
"""

from __future__ import annotations

from typing import Any

from syncengine.model import Change, Operation, Record

APPEND_VALUES = "$append_values"

#: A position as users see it: the 1-based line of a file, or a table's cursor value.
Display = int | str


def _appended(record: Record) -> dict[str, bool]:
    flags = record.get(APPEND_VALUES)
    if not isinstance(flags, dict):
        return {}
    return {name: True for name, flag in flags.items() if flag is True}


def _union(older: list[Any], newer: list[Any]) -> list[Any]:
    return older + [value for value in newer if value not in older]


def fold_records(older: Record, newer: Record) -> Record:
    """One record body that has the effect of sending `older`, then `newer`.

    A malformed `$append_values` (not an object) is kept as the newer one
    sent it, so the CRM still rejects it with its own words.
    """
    merged = dict(older)
    older_append = _appended(older)
    newer_append = _appended(newer)
    append = dict(older_append)
    for name, value in newer.items():
        if name == APPEND_VALUES:
            continue
        previous = older.get(name)
        if newer_append.get(name):
            if isinstance(previous, list) and isinstance(value, list):
                merged[name] = _union(previous, value)  # the older flag still applies
            else:
                merged[name] = value
                append[name] = True
        else:
            merged[name] = value
            append.pop(name, None)
    raw_newer = newer.get(APPEND_VALUES)
    if raw_newer is not None and not isinstance(raw_newer, dict):
        merged[APPEND_VALUES] = raw_newer
    elif append:
        merged[APPEND_VALUES] = append
    else:
        merged.pop(APPEND_VALUES, None)
    return merged


def owed_positions(change: Change) -> list[Display]:
    """Every position the change still owes the CRM, oldest first (`Change.owed_positions`)."""
    return change.owed_positions


def field_positions(change: Change) -> dict[str, Display]:
    """For each field of the change, the position of the change that supplied its value."""
    if change.field_positions is not None:
        return dict(change.field_positions)
    owed = owed_positions(change)
    if not owed:
        return {}
    latest = owed[-1]
    return {name: latest for name in change.record if not name.startswith("$")}


def note_merge(held: Change, newer: Change) -> None:
    """Keeps `held`'s field provenance right as `newer` (a feed change) is merged into it.

    Called before the records are merged; costs a dict only on a merge.
    """
    newer_positions = owed_positions(newer)
    if not newer_positions:
        return
    fields = field_positions(held)
    latest = newer_positions[-1]
    for name in newer.record:
        if not name.startswith("$"):
            fields[name] = latest
    held.field_positions = fields


def absorb_owed(owed: Change, newer: Change) -> None:
    """`newer` takes on the owed state of `owed`, an older rejected change to its record.

    After this, sending `newer` sends everything the record owes: the fold of
    both records, the positions of both (oldest first), and each field's
    provenance. `newer` keeps its own feed positions to settle.

    A delete supersedes what was owed before it: it takes the positions (a
    failed delete still owes them) but none of the fields. A change after a
    delete starts a new life of the record: of a delete it takes the
    positions only.
    """
    if newer.operation is Operation.DELETE or owed.operation is Operation.DELETE:
        earlier = owed_positions(owed)
        earlier += [display for display in newer.earlier_positions or () if display not in earlier]
        newer.earlier_positions = earlier
        return
    fields = field_positions(owed)
    newer_fields = field_positions(newer)
    fields.update(newer_fields)
    newer.record = fold_records(owed.record, newer.record)
    earlier = owed_positions(owed)
    earlier += [display for display in newer.earlier_positions or () if display not in earlier]
    newer.earlier_positions = earlier
    newer.field_positions = fields


def blamed_position(change: Change, api_name: object) -> Display | None:
    """The position a failure points at: the change that supplied the rejected field.

    When the CRM names no field (or one this record does not carry), the
    latest change owed.
    """
    if isinstance(api_name, str):
        fields = field_positions(change)
        if api_name in fields:
            return fields[api_name]
    owed = owed_positions(change)
    return owed[-1] if owed else None
