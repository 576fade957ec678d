"""Turning one parsed feed item into a `Change`, or a `BadInput` saying why not.

Pure and shared by every source: a JSON object from a JSONL line, or a row
of fields from a CSV file or a table. The result carries the CRM record as
sent (field API names, `id` as a string, `$` keys untouched), the module,
operation and trigger of its request, and the `key` that orders and
coalesces changes to the same record in the chunker (see `model.Change`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from syncengine.config import CrmConfig
from syncengine.keys import duplicate_key, position_key, record_key, source_record_key
from syncengine.model import BadInput, Change, Operation, Record, SourcePosition

#: The field upsert matches on when `duplicate_check_fields` is not given (crm-api.md §1.8).
SYSTEM_DUPLICATE_FIELDS: Mapping[str, str] = {
    "Leads": "Email",
    "Contacts": "Email",
    "Accounts": "Account_Name",
    "Deals": "Deal_Name",
    "Campaigns": "Campaign_Name",
    "Cases": "Subject",
    "Quotes": "Subject",
    "Sales_Orders": "Subject",
    "Purchase_Orders": "Subject",
    "Invoices": "Subject",
    "Solutions": "Solution_Title",
    "Products": "Product_Name",
    "Vendors": "Vendor_Name",
    "Price_Books": "Price_Book_Name",
}

#: Deepest nesting a record may have, the record's own object being level 1.
#: The journal stores payloads as JSON, whose encoder gives up at 255 levels;
#: a deeper value is a `BadInput` when it is read, so one hostile or broken
#: row costs that row only and never stops the journal. No CRM field nests
#: anywhere near this deep.
MAX_NESTING_DEPTH = 64

#: Per-row columns of table and CSV feeds that override the defaults instead of being fields.
MODULE_COLUMN = "_module"
OPERATION_COLUMN = "_operation"

_ENVELOPE_KEYS = frozenset({"record", "module", "operation", "trigger", "key"})

#: Longest source key taken: a key is a name, and it becomes part of a journal key.
MAX_SOURCE_KEY_CHARS = 255

#: A field value that names another record by its source key (`engine.references`).
REF = "$ref"

#: Table and CSV feeds name a reference column `<Field>@<Module>`: its value is
#: the source key of the `<Module>` record that `<Field>` looks up.
REF_COLUMN_SEPARATOR = "@"
_TRIGGERS = frozenset({"workflow", "approval", "blueprint"})
_MODULE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPERATIONS = {operation.value: operation for operation in Operation}
_DELETE = Operation.DELETE


@dataclass(frozen=True, slots=True)
class RecordDefaults:
    """What a record that does not say otherwise is: from `[crm]`, and the feed it is read from.

    `source_id` names the feed, so a change with no identity of its own (a
    plain insert) leaves the source already keyed by its position. It must
    be keyed before the replay window looks changes up in the journal after
    a crash: a keyless change is never found there, and every insert
    between the checkpoint and the high water would be sent again.
    """

    module: str
    operation: Operation
    trigger: tuple[str, ...] | None = ()
    duplicate_check_fields: tuple[str, ...] | None = None
    source_id: str | None = None
    #: `[source] key`: the member or column holding each record's source key.
    key_field: str | None = None

    @classmethod
    def from_config(cls, crm: CrmConfig, *, key_field: str | None = None) -> RecordDefaults:
        """The defaults a `[crm]` table (and `[source] key`) sets."""
        return cls(
            crm.module, crm.operation, crm.trigger, crm.duplicate_check_fields, key_field=key_field
        )

    def of_feed(self, source_id: str) -> RecordDefaults:
        """These defaults for the records of the feed `source_id`."""
        return replace(self, source_id=source_id)


def nested_deeper_than(value: object, limit: int) -> bool:
    """True when `value` (dicts, lists, tuples) nests more than `limit` levels.

    A scalar is level 0, `{}` or `[]` level 1. Walks without recursion, so a
    value nested thousands of levels deep is measured, not a RecursionError.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if not isinstance(item, list | tuple):
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in item)
    return False


def too_deep_reason(limit: int = MAX_NESTING_DEPTH) -> str:
    """The `BadInput` reason of a record nested deeper than `limit`."""
    return f"nested deeper than {limit} levels"


def json_type(value: object) -> str:
    """How JSON would call `value`'s type, for one-line reasons."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def from_json(obj: object, position: SourcePosition, defaults: RecordDefaults) -> Change | BadInput:
    """A change from one parsed JSON value: a bare record or an envelope.

    A bare object is a record in the CRM's shape. An object whose keys are
    all among record/module/operation/trigger, with `record` an object, is an
    envelope that overrides the defaults for that record.
    """
    if type(obj) is dict and "record" not in obj and defaults.key_field is None:
        # The bulk of a feed: a bare record with a string id (what `build_change`
        # would conclude, without its checks for the rarer shapes).
        record_id = obj.get("id")
        operation = defaults.operation
        if type(record_id) is str and record_id and len(obj) > 1 and operation is not _DELETE:
            module = defaults.module
            key = record_key(module, record_id)
            return Change(module, operation, obj, key, [position], defaults.trigger)
    if not isinstance(obj, dict):
        return BadInput(position, f"not a JSON object but {json_type(obj)}")
    if _is_envelope(obj):
        return _from_envelope(obj, position, defaults)
    source_key = None
    if defaults.key_field is not None:
        taken = _take_key_field(obj, defaults.key_field)
        if isinstance(taken, _BadKey):
            return _bad(position, taken.reason, obj, None)
        source_key = taken
    return build_change(
        obj,
        position,
        defaults.module,
        defaults.operation,
        defaults.trigger,
        defaults,
        source_key=source_key,
    )


def _from_envelope(
    obj: dict[str, Any], position: SourcePosition, defaults: RecordDefaults
) -> Change | BadInput:
    """A change from an envelope: its members override the defaults."""
    record = obj.get("record")
    if record is None:
        record = {}
    resolved = _overrides(obj.get("module"), obj.get("operation"), obj.get("trigger"), defaults)
    if isinstance(resolved, str):
        return _bad(position, resolved, record, obj.get("module"))
    source_key = _source_key(obj.get("key"), "key")
    if source_key is None and defaults.key_field is not None:
        source_key = _take_key_field(record, defaults.key_field)
    if isinstance(source_key, _BadKey):
        return _bad(position, source_key.reason, record, obj.get("module"))
    return build_change(record, position, *resolved, defaults, source_key=source_key)


def _is_envelope(obj: dict[str, object]) -> bool:
    """An object of envelope members only, with `record` an object (or, for a delete
    by source key, no `record` at all)."""
    if not obj.keys() <= _ENVELOPE_KEYS:
        return False
    record = obj.get("record")
    if isinstance(record, dict):
        return True
    return "record" not in obj and obj.get("operation") == "delete" and "key" in obj


def from_row(row: Record, position: SourcePosition, defaults: RecordDefaults) -> Change | BadInput:
    """A change from a row of fields (CSV or table); `_module`/`_operation` columns override.

    Takes ownership of `row` (the override columns are removed from it).
    """
    module = row.pop(MODULE_COLUMN, None)
    operation = row.pop(OPERATION_COLUMN, None)
    source_key: str | None = None
    if defaults.key_field is not None:
        taken = _take_key_field(row, defaults.key_field)
        if isinstance(taken, _BadKey):
            return _bad(position, taken.reason, row, module)
        source_key = taken
    problem = _reference_columns(row)
    if problem is not None:
        return _bad(position, problem, row, module)
    if module is None and operation is None:
        return build_change(
            row,
            position,
            defaults.module,
            defaults.operation,
            defaults.trigger,
            defaults,
            source_key=source_key,
        )
    resolved = _overrides(module, operation, None, defaults)
    if isinstance(resolved, str):
        return _bad(position, resolved, row, module)
    return build_change(row, position, *resolved, defaults, source_key=source_key)


@dataclass(frozen=True, slots=True)
class _BadKey:
    reason: str


def _source_key(value: object, name: str) -> str | _BadKey | None:
    """A source key as a string (integers are written in decimal); None when absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value or value.isspace():
        return _BadKey(f"{name} must be a non-empty string or an integer")
    if len(value) > MAX_SOURCE_KEY_CHARS:
        return _BadKey(f"{name} is longer than {MAX_SOURCE_KEY_CHARS} characters")
    return value


def _take_key_field(record: Record, key_field: str) -> str | _BadKey | None:
    """Takes the `[source] key` member out of `record` (it is never sent as a field)."""
    return _source_key(record.pop(key_field, None), key_field)


def _reference_columns(row: Record) -> str | None:
    """Turns `<Field>@<Module>` columns into `$ref` values; the reason when one is bad."""
    named = [name for name in row if REF_COLUMN_SEPARATOR in name]
    for name in named:
        field_name, _, module = name.partition(REF_COLUMN_SEPARATOR)
        if not _MODULE_NAME.fullmatch(field_name) or not _MODULE_NAME.fullmatch(module):
            return f"reference column {name[:100]!r} must be named <Field>@<Module>"
        value = row.pop(name)
        if value is None or value == "":
            # No reference: the row's own column of that name (one table may feed
            # several modules) wins; without one, the lookup is cleared.
            row.setdefault(field_name, None)
            continue
        key = _source_key(value, name)
        if isinstance(key, _BadKey):
            return key.reason
        row[field_name] = {REF: {"module": module, "key": key}}
    return None


def reference_problem(record: Record) -> str | None:
    """Why a `$ref` value of `record` cannot be resolved as written; None when all are well formed.

    A reference is `{"$ref": {"module": "<Module>", "key": "<source key>"}}`
    as a top-level field value.
    """
    for name, value in record.items():
        if type(value) is not dict or REF not in value:
            continue
        ref = value[REF]
        if (
            len(value) != 1
            or not isinstance(ref, dict)
            or ref.keys() != {"module", "key"}
            or not isinstance(ref["module"], str)
            or not _MODULE_NAME.fullmatch(ref["module"])
        ):
            return f'{name}: a reference must be {{"$ref": {{"module": M, "key": K}}}}'
        key = _source_key(ref["key"], f"{name}.$ref.key")
        if isinstance(key, _BadKey):
            return key.reason
        ref["key"] = key
    return None


def build_change(
    record: Record,
    position: SourcePosition,
    module: str,
    operation: Operation,
    trigger: tuple[str, ...] | None,
    defaults: RecordDefaults,
    *,
    source_key: str | None = None,
) -> Change | BadInput:
    """Check the record against its operation and compute its coalescing key.

    A change with no identity (an insert, an upsert carrying no
    duplicate-check value) is keyed by its feed and position, the key its
    journal row has (`position_key`); with no feed named in `defaults` it is
    left keyless, for the engine to key at admission.
    Takes ownership of `record`: a numeric `id` is rewritten as a string, a
    null one removed.
    """
    record_id = record.get("id")
    if type(record_id) is not str or not record_id:  # the common case skips all of this
        if record_id is None:
            record.pop("id", None)  # a null id (a NULL column) means "no id", not "clear the id"
        elif isinstance(record_id, int) and not isinstance(record_id, bool):
            record_id = record["id"] = str(record_id)
        else:
            return BadInput(position, "id must be a non-empty string or an integer", module=module)
    if operation is _DELETE:
        return _delete(record_id, position, module, trigger, source_key)
    if len(record) <= (record_id is not None):
        return BadInput(position, "empty record", record_id=record_id, module=module)
    problem = reference_problem(record)
    if problem is not None:
        return BadInput(position, problem, record_id=record_id, module=module)
    if source_key is None and record_id is None and operation is Operation.UPDATE:
        return BadInput(position, "no id for an update", module=module)
    key = _identity_key(record, module, operation, defaults, record_id, source_key)
    if key is None and defaults.source_id is not None:
        key = position_key(defaults.source_id, position.display, generation=position.generation)
    return Change(module, operation, record, key, [position], trigger, source_key=source_key)


def _identity_key(
    record: Record,
    module: str,
    operation: Operation,
    defaults: RecordDefaults,
    record_id: str | None,
    source_key: str | None,
) -> str | None:
    """The key of a record's identity: its source key, its id, or its duplicate-check value."""
    if source_key is not None:
        return source_record_key(module, source_key)
    if record_id is not None:
        return record_key(module, record_id)
    if operation is Operation.UPSERT:
        return _duplicate_key(record, module, defaults)
    return None


def _delete(
    record_id: str | None,
    position: SourcePosition,
    module: str,
    trigger: tuple[str, ...] | None,
    source_key: str | None,
) -> Change | BadInput:
    """A delete names its record by id or by source key; its other fields mean nothing."""
    if source_key is not None:
        key = source_record_key(module, source_key)
    elif record_id is not None:
        key = record_key(module, record_id)
    else:
        return BadInput(position, "no id for a delete", module=module)
    record: Record = {} if record_id is None else {"id": record_id}
    return Change(module, _DELETE, record, key, [position], trigger, source_key=source_key)


def _duplicate_key(record: Record, module: str, defaults: RecordDefaults) -> str | None:
    """`module:field=value` for the first duplicate-check field the record carries."""
    fields = defaults.duplicate_check_fields
    if fields is None:
        system = SYSTEM_DUPLICATE_FIELDS.get(module)
        fields = () if system is None else (system,)
    for name in fields:
        value = record.get(name)
        if value is not None:
            return duplicate_key(module, name, value)
    return None


def _overrides(
    module: object, operation: object, trigger: object, defaults: RecordDefaults
) -> tuple[str, Operation, tuple[str, ...] | None] | str:
    """The module, operation and trigger a record asks for, or the reason they are bad."""
    if module is None:
        module = defaults.module
    elif not isinstance(module, str) or not _MODULE_NAME.fullmatch(module):
        return "module must be a module API name"
    if operation is None:
        resolved_operation = defaults.operation
    elif isinstance(operation, str) and operation in _OPERATIONS:
        resolved_operation = _OPERATIONS[operation]
    else:
        shown = operation if isinstance(operation, str) else json_type(operation)
        return f"unknown operation {shown!r}"[:200]
    if trigger is None:
        return module, resolved_operation, defaults.trigger
    if not isinstance(trigger, list) or not all(
        isinstance(item, str) and item in _TRIGGERS for item in trigger
    ):
        return "trigger must be a list of workflow, approval, blueprint"
    return module, resolved_operation, tuple(trigger)


def _bad(position: SourcePosition, reason: str, record: Record, module: object) -> BadInput:
    record_id = record.get("id")
    return BadInput(
        position,
        reason,
        record_id=None if record_id is None else str(record_id),
        module=module if isinstance(module, str) else None,
    )
