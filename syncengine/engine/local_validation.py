"""Deciding, before a record is sent, whether the CRM would certainly refuse it.

Used by the pass (`engine.validating_writer`) and by `syncengine check`, so
both judge alike: a change is refused locally with the CRM's own code and
details when its module's field rules (`crm.field_rules`) refuse it, when it
names a field the module lacks and `[crm] unknown_fields = "fail"` (engine
code `UNKNOWN_FIELD`), or when a unique field's value is already held by
another record the CRM took in this run (`DUPLICATE_DATA`, as the CRM
enforces unique fields on insert and update, crm-api.md §1.8).

Duplicates are judged only where certain: an upsert may match the holder
instead of clashing with it, so upserts are never refused for it; a holder
with a change in flight may be giving the value up, so it is not held then;
and only the most recent `MAX_HELD_VALUES` values are remembered (memory
stays bounded, design.md invariant 4; a forgotten value is simply sent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from syncengine.crm.field_rules import (
    ModuleRules,
    Rejection,
    inspect_record,
    is_plain_record,
    unique_value,
)
from syncengine.model import Operation

#: The engine's code for a record refused for a field its module lacks (`unknown_fields = "fail"`).
UNKNOWN_FIELD: Final = "UNKNOWN_FIELD"

#: What to do with a field name the module does not have: log it, or fail the record too.
UnknownFieldsMode = Literal["warn", "fail"]

#: Unique values remembered at most; older ones are forgotten (and then simply sent).
MAX_HELD_VALUES: Final = 50_000

_HolderKey = tuple[str, str, Any]  # (module, field, comparable value)


class UniqueHolders:
    """Which record holds each unique value, as far as this run saw the CRM (or `check`) accept.

    `holder` is the record's CRM id, or for `check` any identity of the
    record (its feed position for an insert). Pure bookkeeping, no I/O.
    """

    def __init__(self, *, max_values: int = MAX_HELD_VALUES) -> None:
        self._max = max_values
        self._holder: dict[_HolderKey, str] = {}
        self._value: dict[tuple[str, str, str], Any] = {}
        self._busy: Counter[tuple[str, str]] = Counter()

    def clash(
        self, rules: ModuleRules, record: Mapping[str, Any], own: str | None
    ) -> Rejection | None:
        """`DUPLICATE_DATA` when a unique value of `record` is held by another, settled record."""
        module, holders, busy = rules.module, self._holder, self._busy
        for rule in rules.unique:
            name = rule.api_name
            if name not in record:
                continue
            value = unique_value(rule, record[name])
            if value is None:
                continue
            holder = holders.get((module, name, value))
            if holder is not None and holder != own and (module, holder) not in busy:
                details: dict[str, Any] = {"api_name": name}
                if holder.isdigit():
                    details["id"] = holder
                return Rejection("DUPLICATE_DATA", "duplicate data", details)
        return None

    def accept(self, rules: ModuleRules, record: Mapping[str, Any], holder: str) -> None:
        """`holder` now holds the unique values `record` sets (and gave up the ones it replaced)."""
        module = rules.module
        for rule in rules.unique:
            name = rule.api_name
            if name not in record:
                continue
            slot = (module, name, holder)
            old = self._value.pop(slot, None)
            if old is not None and self._holder.get((module, name, old)) == holder:
                del self._holder[(module, name, old)]
            value = unique_value(rule, record[name])
            if value is not None:
                self._holder[(module, name, value)] = holder
                self._value[slot] = value
        while len(self._holder) > self._max:
            forgotten = next(iter(self._holder))
            del self._holder[forgotten]

    def begin(self, module: str, holder: str) -> None:
        """A change to `holder` is in flight: its values may be changing, so none is held."""
        self._busy[(module, holder)] += 1

    def end(self, module: str, holder: str) -> None:
        """The change begun with `begin` was answered."""
        key = (module, holder)
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]


def own_id(operation: Operation, record: Mapping[str, Any]) -> str | None:
    """The CRM id a change writes to, when it says (an update's `id`)."""
    if operation is Operation.INSERT:
        return None
    value = record.get("id")
    return None if value is None else str(value)


def judge(
    rules: ModuleRules,
    operation: Operation,
    record: Mapping[str, Any],
    *,
    holders: UniqueHolders,
    unknown_mode: UnknownFieldsMode,
) -> tuple[Rejection | None, tuple[str, ...]]:
    """(the refusal the CRM would certainly answer, or None; the record's unknown field names).

    Order, as the CRM reports its first problem: field values and mandatory
    fields (`inspect_record`), then unknown fields when they fail, then
    duplicates (never for an upsert, which may match the holder instead).
    """
    rejection, unknown = inspect_record(rules, operation, record)
    if rejection is None and unknown and unknown_mode == "fail":
        rejection = Rejection(
            UNKNOWN_FIELD,
            f"the module {rules.module} has no field {unknown[0]} (the CRM would ignore it)",
            {"api_name": unknown[0]},
        )
    if (
        rejection is None
        and operation is not Operation.UPSERT
        and not rules.unique_names.isdisjoint(record)
    ):
        rejection = holders.clash(rules, record, own_id(operation, record))
    return rejection, unknown


def touches_unique(rules: ModuleRules, record: Mapping[str, Any]) -> bool:
    """True when `record` sets a unique field (so its record's held values may change)."""
    return not rules.unique_names.isdisjoint(record)


def all_plainly_valid(
    rules: ModuleRules, operation: Operation, records: Iterable[Mapping[str, Any]]
) -> bool:
    """True when every record would pass `judge` with nothing to say or remember.

    No refusal, no unknown field, no unique field set (so no duplicate to
    judge and no holder to note). The pass's fast path for a whole request.
    """
    unique_names = rules.unique_names
    for record in records:  # a loop, not all(): this runs for every record of a pass
        if not is_plain_record(rules, operation, record) or not unique_names.isdisjoint(record):
            return False
    return True
