"""The simulator's records: per module, with write counts and unique indexes.

Handlers decide *whether* a write is allowed (validation, faults); the store
only applies writes and answers lookups, keeping an index per unique or
duplicate-check field so that `DUPLICATE_DATA` checks and upsert matches cost
one dict lookup. Everything is in memory and single-threaded (one event loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncengine.sim.schema import Schema

#: First id handed to a record created without one (19 digits, like real ids).
FIRST_GENERATED_ID = 4_876_876_000_001_000_001


@dataclass(slots=True)
class StoredRecord:
    """One record's fields, how often it was written, and its times (ISO strings)."""

    fields: dict[str, Any]
    created_time: str
    modified_time: str
    writes: int = 0


def _norm(value: Any) -> Any:
    """The index key of a value: strings compare case-insensitively, blanks are skipped."""
    if isinstance(value, str):
        return value.casefold() if value else None
    if isinstance(value, dict | list):
        return None
    return value


def merge_fields(
    existing: dict[str, Any], changes: dict[str, Any], multiselects: frozenset[str]
) -> dict[str, Any]:
    """The record after `changes`: `$` keys and `id` dropped, appends applied.

    A multi-select named true in `$append_values` gains the new options it does
    not already hold; every other given field is replaced (crm-api.md §1.2).
    """
    merged = existing | {k: v for k, v in changes.items() if k != "id" and k[:1] != "$"}
    append = changes.get("$append_values")
    if append:
        for name in multiselects:
            if append.get(name) is True and name in changes:
                old = existing.get(name) or []
                merged[name] = old + [v for v in changes[name] if v not in old]
    return merged


@dataclass(slots=True)
class RecordStore:
    """Records by module and id, with value indexes for duplicate checks."""

    schema: Schema
    records: dict[str, dict[str, StoredRecord]] = field(default_factory=dict)
    indexes: dict[str, dict[str, dict[Any, set[str]]]] = field(default_factory=dict)
    next_id: int = FIRST_GENERATED_ID
    unique: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.unique = {name: m.unique_fields for name, m in self.schema.modules.items()}
        self.reset()

    def reset(self) -> None:
        """Forget every record; ids start again from `FIRST_GENERATED_ID`."""
        self.records = {name: {} for name in self.schema.modules}
        self.indexes = {
            name: {f: {} for f in module.indexed_fields}
            for name, module in self.schema.modules.items()
        }
        self.next_id = FIRST_GENERATED_ID

    def exists(self, module: str, record_id: str) -> bool:
        """Whether `module` holds a record with `record_id`."""
        return record_id in self.records.get(module, {})

    def get(self, module: str, record_id: str) -> StoredRecord | None:
        """The record, or None."""
        return self.records[module].get(record_id)

    def new_id(self) -> str:
        """A fresh 19-digit id not used in any module."""
        while True:
            candidate = str(self.next_id)
            self.next_id += 1
            if not any(candidate in recs for recs in self.records.values()):
                return candidate

    def conflict(
        self, module: str, values: dict[str, Any], self_id: str | None
    ) -> tuple[str, str] | None:
        """(field, other id) when a unique field's value is held by another record."""
        index = self.indexes[module]
        for name in self.unique[module]:
            if name not in values:
                continue
            key = _norm(values[name])
            if key is None:
                continue
            for other in index[name].get(key, ()):
                if other != self_id:
                    return name, other
        return None

    def find(self, module: str, field_name: str, value: Any) -> list[str]:
        """Ids of records whose `field_name` equals `value` (case-insensitive strings)."""
        key = _norm(value)
        if key is None:
            return []
        index = self.indexes[module].get(field_name)
        if index is not None:
            return sorted(index.get(key, ()))
        recs = self.records[module]
        return [rid for rid, rec in recs.items() if _norm(rec.fields.get(field_name)) == key]

    def _unindex(self, module: str, record_id: str, name: str, value: Any) -> None:
        key = _norm(value)
        ids = None if key is None else self.indexes[module][name].get(key)
        if ids is not None:
            ids.discard(record_id)
            if not ids:
                del self.indexes[module][name][key]

    def _reindex(
        self, module: str, record_id: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """Move `record_id` in the indexes whose field value changed from `old` to `new`."""
        for name, index in self.indexes[module].items():
            before, after = old.get(name), new.get(name)
            if before is after or before == after:
                continue
            self._unindex(module, record_id, name, before)
            key = _norm(after)
            if key is not None:
                index.setdefault(key, set()).add(record_id)

    def put(self, module: str, record_id: str, fields: dict[str, Any], now: str) -> StoredRecord:
        """Store `fields` as the whole record `record_id`, counting one write."""
        recs = self.records[module]
        old = recs.get(record_id)
        if old is None:
            stored = StoredRecord(fields=fields, created_time=now, modified_time=now)
            recs[record_id] = stored
            self._reindex(module, record_id, {}, fields)
        else:
            self._reindex(module, record_id, old.fields, fields)
            stored = old
            stored.fields = fields
            stored.modified_time = now
        stored.writes += 1
        return stored

    def delete(self, module: str, record_id: str) -> bool:
        """Remove a record; False when it did not exist."""
        old = self.records[module].pop(record_id, None)
        if old is None:
            return False
        for name in self.indexes[module]:
            self._unindex(module, record_id, name, old.fields.get(name))
        return True

    def snapshot(self, module: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """`{module: {id: {"fields": ..., "writes": n}}}`, the admin records view."""
        names = [module] if module is not None else list(self.records)
        return {
            name: {
                rid: {"fields": rec.fields, "writes": rec.writes}
                for rid, rec in self.records[name].items()
            }
            for name in names
        }
