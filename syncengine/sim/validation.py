"""Pure per-record validation against a module schema (crm-api.md §1.6, §1.8).

A module is compiled once into one checker per field, so validating a record
costs a dict lookup and a type test per field it carries: the simulator must
validate ~100,000 records per second. Each check answers None (valid) or the
exact per-record error element the records API puts in `data[]`. Unknown and
read-only fields are ignored, as the real service does; lookups that must
exist elsewhere are checked through the `exists(module, id)` callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from syncengine.sim.schema import FieldSpec, ModuleSchema

#: A per-record error element as it appears in a response's `data[]`.
ErrorElement = dict[str, Any]
#: Whether a record id exists in a module: `exists(module, record_id)`.
Exists = Callable[[str, str], bool]
Checker = Callable[[Any, Exists], ErrorElement | None]

#: RFC 5322 dot-atom local part (letters, digits, ``!#$%&'*+/=?^_`{|}~-``, dots
#: between atoms), then domain labels and a final label of 2-22 letters
#: (crm-api.md §1.8).
_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL: Final = re.compile(
    rf"^{_ATOM}(?:\.{_ATOM})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{{2,22}}$"
)
#: An optional leading `+`, then digits, letters (vanity numbers such as
#: `1-800-FLOWERS`), spaces and `( ) - .`; an extension or dial pause after
#: `,` `;` or `#` (crm-api.md §1.8). The length comes from the field.
_PHONE: Final = re.compile(
    r"^\+?[0-9A-Za-z ()\-.]*[0-9A-Za-z][0-9A-Za-z ()\-.]*(?:[,;#][0-9A-Za-z ()\-.,;#]*)?$"
)
_WEBSITE: Final = re.compile(
    r"^(?:https?://)?(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d{1,5})?(?:[/?#]\S*)?$",
    re.IGNORECASE,  # a URL's scheme is case-insensitive (RFC 3986 §3.1)
)
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_ID: Final = re.compile(r"^[0-9]{1,19}$")


def error(code: str, message: str, details: dict[str, Any]) -> ErrorElement:
    """A per-record error element in the v2 shape (crm-api.md §1.5)."""
    return {"code": code, "details": details, "message": message, "status": "error"}


def invalid(api_name: str, **extra: Any) -> ErrorElement:
    """`INVALID_DATA` for field `api_name`, with extra detail keys."""
    return error("INVALID_DATA", "invalid data", {"api_name": api_name, **extra})


def mandatory_missing(api_name: str) -> ErrorElement:
    """`MANDATORY_NOT_FOUND` for field `api_name`."""
    return error("MANDATORY_NOT_FOUND", "required field not found", {"api_name": api_name})


def bad_id() -> ErrorElement:
    """The answer for an id that is malformed or names no record (crm-api.md §1.5)."""
    return error("INVALID_DATA", "the id given seems to be invalid", {"api_name": "id"})


def parse_id(value: Any) -> str | None:
    """A record id as a string (JSON numbers accepted), or None if it cannot be one."""
    if type(value) is str and len(value) <= 19 and value.isascii() and value.isdigit():
        return value  # the common case, without the regex
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        text = str(value)
        return text if len(text) <= 19 else None
    if isinstance(value, str) and _ID.match(value):
        return value
    return None


def _string_checker(spec: FieldSpec, pattern: re.Pattern[str] | None) -> Checker:
    """Strings within the field's length, optionally matching a format."""
    name, limit = spec.api_name, spec.length
    lenient = spec.data_type in ("text", "textarea")

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        if lenient and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return invalid(name, expected_data_type=spec.data_type)
        if limit is not None and len(value) > limit:
            return invalid(name, maximum_length=str(limit))
        if pattern is not None and value and not pattern.match(value):
            return invalid(name, expected_data_type=spec.data_type)
        return None

    return check


def _picklist_checker(spec: FieldSpec) -> Checker:
    """Any string, or only the listed ones when the picklist is restricted."""
    base = _string_checker(spec, None)
    allowed = frozenset(spec.pick_list_values)

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        problem = base(value, exists)
        if problem is None and spec.restricted and value not in allowed:
            return invalid(spec.api_name, expected_data_type="picklist")
        return problem

    return check


def _multiselect_checker(spec: FieldSpec) -> Checker:
    """A JSON array of strings (`expected_data_type: jsonarray` otherwise).

    The field's `length` bounds the options joined as the CRM stores them
    (`;`-separated); a restricted multi-select takes only listed options.
    """
    name, limit = spec.api_name, spec.length
    allowed = frozenset(spec.pick_list_values)

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return invalid(name, expected_data_type="jsonarray")
        if limit is not None and len(";".join(value)) > limit:
            return invalid(name, maximum_length=str(limit))
        if spec.restricted and not allowed.issuperset(value):
            return invalid(name, expected_data_type="multiselectpicklist")
        return None

    return check


def _temporal_checker(spec: FieldSpec) -> Checker:
    """`yyyy-MM-dd` dates, `yyyy-MM-ddTHH:mm:ss±HH:mm` datetimes, real calendar values."""
    is_date = spec.data_type == "date"
    pattern, parse = (_DATE, date.fromisoformat) if is_date else (_DATETIME, datetime.fromisoformat)

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        if not isinstance(value, str) or not pattern.match(value):
            return invalid(spec.api_name, expected_data_type=spec.data_type)
        try:
            parse(value)
        except ValueError:
            return invalid(spec.api_name, expected_data_type=spec.data_type)
        return None

    return check


def _number_checker(spec: FieldSpec) -> Checker:
    """Integers within their digit limit; doubles within 16 significant digits."""
    name, kind = spec.api_name, spec.data_type
    integral = kind in ("integer", "bigint")
    limit = 10 ** (spec.length or (9 if kind == "integer" else 18 if integral else 16))

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        if kind == "bigint" and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (integral and not isinstance(value, int)) or abs(value) >= limit:
            return invalid(name, expected_data_type=kind)
        return None

    return check


def _boolean_checker(spec: FieldSpec) -> Checker:
    """Strict JSON booleans."""

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        if not isinstance(value, bool):
            return invalid(spec.api_name, expected_data_type="boolean")
        return None

    return check


def _lookup_checker(spec: FieldSpec, user_ids: frozenset[str]) -> Checker:
    """`{"id": ...}` (or a bare id) naming an existing record, or an org user for owners."""
    target = spec.lookup_module

    def check(value: Any, exists: Exists) -> ErrorElement | None:
        raw = value.get("id") if isinstance(value, dict) else value
        record_id = parse_id(raw)
        if record_id is None:
            return invalid(spec.api_name, expected_data_type="jsonobject")
        known = record_id in user_ids if target is None else exists(target, record_id)
        return None if known else invalid(spec.api_name, id=record_id)

    return check


def make_checker(spec: FieldSpec, user_ids: frozenset[str]) -> Checker:
    """The checker for one field, chosen by its data type."""
    kind = spec.data_type
    if kind in ("text", "textarea"):
        return _string_checker(spec, None)
    if kind in ("email", "phone", "website"):
        pattern = {"email": _EMAIL, "phone": _PHONE, "website": _WEBSITE}[kind]
        return _string_checker(spec, pattern)
    if kind == "picklist":
        return _picklist_checker(spec)
    if kind == "multiselectpicklist":
        return _multiselect_checker(spec)
    if kind in ("date", "datetime"):
        return _temporal_checker(spec)
    if kind == "boolean":
        return _boolean_checker(spec)
    if kind in ("lookup", "ownerlookup"):
        return _lookup_checker(spec, user_ids)
    return _number_checker(spec)


@dataclass(frozen=True, slots=True)
class CompiledModule:
    """A module's checkers and mandatory lists, built once per schema."""

    schema: ModuleSchema
    checkers: dict[str, Checker]
    mandatory: tuple[str, ...]
    layout_mandatory: tuple[str, ...]
    multiselects: frozenset[str]


def compile_module(module: ModuleSchema, user_ids: frozenset[str]) -> CompiledModule:
    """Build the checkers of `module`; read-only fields get none (they are ignored)."""
    fields = module.fields.values()
    return CompiledModule(
        schema=module,
        checkers={s.api_name: make_checker(s, user_ids) for s in fields if not s.read_only},
        mandatory=tuple(s.api_name for s in fields if s.system_mandatory),
        layout_mandatory=tuple(s.api_name for s in fields if s.layout_mandatory),
        multiselects=frozenset(s.api_name for s in fields if s.data_type == "multiselectpicklist"),
    )


def check_values(
    module: CompiledModule, record: dict[str, Any], exists: Exists
) -> ErrorElement | None:
    """The first invalid value in `record`, or None; null values are checked as blanks."""
    checkers = module.checkers
    for name, value in record.items():
        checker = checkers.get(name)
        if checker is None or value is None:
            continue
        problem = checker(value, exists)
        if problem is not None:
            return problem
    append = record.get("$append_values")
    if append is not None and not (
        isinstance(append, dict) and all(isinstance(v, bool) for v in append.values())
    ):
        return invalid("$append_values", expected_data_type="jsonobject")
    return None


def _blank(value: Any) -> bool:
    """True for the values that leave a field empty."""
    return value is None or value == "" or value == []


def check_mandatory(
    module: CompiledModule, merged: dict[str, Any], *, layout_rules: bool
) -> ErrorElement | None:
    """`MANDATORY_NOT_FOUND` for the first required field blank in `merged`.

    `merged` is the record as it would be stored (the existing fields with the
    request's changes laid over them); layout-mandated fields count only when
    the request asked for `apply_feature_execution` layout rules.
    """
    for name in module.mandatory:
        if _blank(merged.get(name)):
            return mandatory_missing(name)
    if layout_rules:
        for name in module.layout_mandatory:
            if _blank(merged.get(name)):
                return mandatory_missing(name)
    return None
