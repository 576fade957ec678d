"""What the CRM would certainly refuse in a record, judged from the org's field metadata.

Input: one module's field list as `GET /crm/v2/settings/fields?module=M`
serves it, and a record with the operation it is sent with. Output: None,
or the per-record error the CRM would answer, in its own words
(`crm.field_checks` holds the checks of single values and their sources).
Field names the module does not have are reported apart (`unknown_fields`):
the CRM ignores them without a word. Checks run in the record's key order,
then `$append_values`, then the mandatory fields: the order in which the CRM
names the first problem. Never refuse what the CRM would take: where in
doubt, send.

A module is compiled once (`compile_rules`) into one checker per field, so a
record costs a dict lookup and a type test per field it carries; the common
record of a pass costs less still (`is_plain_record`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from syncengine.crm.field_checks import (
    APPEND_VALUES,
    DEFAULT_DIGITS,
    ID_FIELD,
    Checker,
    FieldRule,
    Rejection,
    bad_id,
    invalid,
    make_checker,
    mandatory_missing,
    parse_field,
)
from syncengine.model import Operation

__all__ = [
    "FieldRule",
    "ModuleRules",
    "Rejection",
    "check_record",
    "compile_rules",
    "inspect_record",
    "is_plain_record",
    "unique_value",
    "unknown_fields",
]

_UPDATE: Final = Operation.UPDATE
_INSERT: Final = Operation.INSERT

# -- a module -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModuleRules:
    """A module's fields compiled for checking; build with `compile_rules`."""

    module: str
    fields: dict[str, FieldRule]
    checkers: dict[str, Checker]
    mandatory: tuple[str, ...]
    unique: tuple[FieldRule, ...]
    #: The names of `mandatory` and `unique`, for one set test per record.
    mandatory_names: frozenset[str] = frozenset()
    unique_names: frozenset[str] = frozenset()
    #: Fields whose common values need no checker call (`is_plain`): name -> the
    #: exact JSON type a plain value has and the bound its length (strings) or
    #: magnitude (numbers) stays below. A value not plain goes to its checker.
    plain: dict[str, tuple[type, int]] = field(default_factory=dict)


def compile_rules(module: str, metadata: Iterable[Any]) -> ModuleRules:
    """Compile a module's `fields` list; entries without an `api_name` are skipped.

    Read-only fields get no checker: the CRM ignores what is sent to them
    (as it does in the simulator), so they can never cause a refusal.
    """
    fields: dict[str, FieldRule] = {}
    for item in metadata:
        rule = parse_field(item) if isinstance(item, Mapping) else None
        if rule is not None:
            fields[rule.api_name] = rule
    checkers: dict[str, Checker] = {}
    for rule in fields.values():
        checker = None if rule.read_only else make_checker(rule)
        if checker is not None:
            checkers[rule.api_name] = checker
    plain = {
        rule.api_name: bound
        for rule in fields.values()
        if not rule.read_only and (bound := _plain_bound(rule)) is not None
    }
    mandatory = tuple(r.api_name for r in fields.values() if r.mandatory and not r.read_only)
    unique = tuple(r for r in fields.values() if r.unique and not r.read_only)
    return ModuleRules(
        module=module,
        fields=fields,
        checkers=checkers,
        mandatory=mandatory,
        unique=unique,
        mandatory_names=frozenset(mandatory),
        unique_names=frozenset(rule.api_name for rule in unique),
        plain=plain,
    )


#: Text-like types whose checker takes any string shorter than the field's length.
_PLAIN_TEXT: Final = frozenset({"text", "textarea", "picklist", "website"})


def _plain_bound(rule: FieldRule) -> tuple[type, int] | None:
    """(type, bound) of the values `rule`'s checker takes without a look (`ModuleRules.plain`).

    Strings shorter than `length + 1` for text (not a restricted picklist);
    ints of fewer digits than the limit for integer types. Exactly what the
    checkers take, never more: a value outside goes to the checker.
    """
    if rule.data_type in _PLAIN_TEXT and rule.allowed is None and rule.length is not None:
        return str, rule.length + 1
    digits = rule.length or DEFAULT_DIGITS.get(rule.data_type)
    if rule.data_type in ("integer", "bigint", "double", "currency", "percent") and digits:
        return int, 10**digits
    return None


def _check_id(record: Mapping[str, Any]) -> Rejection | None:
    """An update needs an `id` of digits (crm-api.md §1.1: `id` mandatory per record)."""
    raw = record.get(ID_FIELD)
    if type(raw) is str and raw.isdigit():
        return None  # the common case, first
    if raw is None:
        return mandatory_missing(ID_FIELD)
    if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).isdigit():
        return bad_id()
    return None


def _check_append(record: Mapping[str, Any]) -> Rejection | None:
    """`$append_values` is an object of booleans (crm-api.md §1.2)."""
    flags = record.get(APPEND_VALUES)
    if flags is None:
        return None
    if not isinstance(flags, dict) or not all(isinstance(v, bool) for v in flags.values()):
        return invalid(APPEND_VALUES, expected_data_type="jsonobject")
    return None


def _check_mandatory(
    rules: ModuleRules, operation: Operation, record: Mapping[str, Any]
) -> Rejection | None:
    """Mandatory fields (crm-api.md §1.6: missing on insert, or blanked).

    An insert must carry each `system_mandatory` field, not blank; an update
    or upsert must not blank one. An upsert that leaves one out may match an
    existing record that has it: doubt sends. Layout-mandated fields are not
    in the fields metadata and are left to the CRM.
    """
    inserting = operation is _INSERT
    for name in rules.mandatory:
        if name in record:
            value = record[name]
            if value is None or value == "" or value == []:
                return mandatory_missing(name)
        elif inserting:
            return mandatory_missing(name)
    return None


def check_record(
    rules: ModuleRules, operation: Operation, record: Mapping[str, Any]
) -> Rejection | None:
    """The error the CRM would certainly answer for `record`, or None to send it.

    Order: the update's `id`, then each value in the record's key order (a
    null only blanks), then `$append_values`, then the mandatory fields.
    Unknown fields are not errors here (`unknown_fields`).
    """
    return inspect_record(rules, operation, record)[0]


#: What `inspect_record` says of a record with no unknown field (shared, never mutated).
_NONE_UNKNOWN: Final[tuple[str, ...]] = ()


def inspect_record(
    rules: ModuleRules, operation: Operation, record: Mapping[str, Any]
) -> tuple[Rejection | None, tuple[str, ...]]:
    """`check_record` and `unknown_fields` in one walk over the record (a pass runs it on
    every record it sends, so the common case costs a lookup and a call per field)."""
    problem = None
    if operation is _UPDATE:
        raw = record.get(ID_FIELD)
        if type(raw) is not str or not raw.isdigit():
            problem = _check_id(record)
    checkers, fields = rules.checkers, rules.fields
    unknown: list[str] | None = None
    for name, value in record.items():
        checker = checkers.get(name)
        if checker is None:
            if name not in fields and name != ID_FIELD and name[:1] != "$":
                if unknown is None:
                    unknown = []
                unknown.append(name)
        elif problem is None and value is not None:
            problem = checker(value)
    if problem is None and APPEND_VALUES in record:
        problem = _check_append(record)
    if problem is None and (operation is _INSERT or not rules.mandatory_names.isdisjoint(record)):
        problem = _check_mandatory(rules, operation, record)
    return problem, _NONE_UNKNOWN if unknown is None else tuple(unknown)


def is_plain_record(rules: ModuleRules, operation: Operation, record: Mapping[str, Any]) -> bool:
    """True when `check_record` would pass `record` and it names no unknown field.

    The fast answer for the common record of a pass; False means "look
    closer" (`inspect_record`), never "refuse". A blank value is never plain,
    so a plain update blanks no mandatory field.
    """
    if operation is _UPDATE:
        raw = record.get(ID_FIELD)
        if type(raw) is not str or not raw.isdigit():
            return False
    if not _plain_values(rules, record) or APPEND_VALUES in record:
        return False
    return operation is not _INSERT or record.keys() >= rules.mandatory_names


def _plain_values(rules: ModuleRules, record: Mapping[str, Any]) -> bool:
    """Every value is non-blank and passes its field's check (the plain ones without a
    call); no unknown name.

    It runs for every record of a pass, so the plain case is a dict look-up, a
    type test and a bound test per field, with nothing else in the loop.
    """
    plain = rules.plain
    value: Any
    for name, value in record.items():
        bound = plain.get(name)
        if bound is None:
            if name == ID_FIELD:
                continue  # an update's id is checked by `is_plain_record`
            if not _plain_by_checker(rules, name, value):
                return False
            continue
        kind, limit = bound
        size: Any = value  # a str or an int once its type is the plain one
        if type(value) is not kind:
            if not _plain_by_checker(rules, name, value):
                return False
        elif kind is str:
            if not 0 < len(size) < limit and not _plain_by_checker(rules, name, value):
                return False
        elif not -limit < size < limit and not _plain_by_checker(rules, name, value):
            return False
    return True


def _plain_by_checker(rules: ModuleRules, name: str, value: Any) -> bool:
    """The slower half of `_plain_values`: a field's checker, or the name being known."""
    checker = rules.checkers.get(name)
    if checker is not None:
        return not (value is None or value == "" or value == [] or checker(value) is not None)
    return name in rules.fields or name == ID_FIELD or name[:1] == "$"


def unknown_fields(rules: ModuleRules, record: Mapping[str, Any]) -> list[str]:
    """Names the module has no field for (the CRM drops them silently); `id`, `$` keys aside."""
    fields = rules.fields
    return [
        name
        for name in record
        if name not in fields and name != ID_FIELD and not name.startswith("$")
    ]


def unique_value(rule: FieldRule, value: Any) -> Any:
    """The value as the CRM compares it for duplicates; None when it takes part in none.

    Blanks and structured values never clash; strings compare without case
    unless the field's `unique.casesensitive` is true.
    """
    if value is None or isinstance(value, dict | list | bool):
        return None
    if isinstance(value, str):
        if value == "":
            return None
        return value if rule.case_sensitive else value.casefold()
    return value
