"""What the CRM would certainly refuse in a record, judged from the org's field metadata.

Input: one module's field list as `GET /crm/v2/settings/fields?module=M`
serves it (crm-api.md §1.8: `api_name`, `data_type`, `length`,
`system_mandatory`, `read_only`, `unique`, `pick_list_values`, ...), and a
record with the operation it is sent with. Output: None, or the per-record
error the CRM would answer, in its own words (`INVALID_DATA` with `api_name`
and `expected_data_type` or `maximum_length`, `MANDATORY_NOT_FOUND` with
`api_name`; crm-api.md §1.5–1.6). Field names the module does not have are
reported apart (`unknown_fields`): the CRM ignores them without a word.

The one rule above all: never refuse what the CRM would take. A refusal
here means a record never reaches the CRM, so every rule errs towards
sending: where the documentation leaves a value in doubt (a number in a text
field, a `Z` offset, an e-mail local part with RFC characters, letters and
`#` extensions in a phone), it is accepted and the CRM decides. Each rule's
docstring names its source. Checks run in the record's key order, then the
mandatory fields, the order in which the CRM names the first problem.

A module is compiled once (`compile_rules`) into one checker per field, so a
record costs a dict lookup and a type test per field it carries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from syncengine.model import Operation

_UPDATE: Final = Operation.UPDATE
_INSERT: Final = Operation.INSERT

#: Where the CRM's record id goes, and the key that names it in errors.
ID_FIELD = "id"
APPEND_VALUES = "$append_values"


@dataclass(frozen=True, slots=True)
class Rejection:
    """The per-record error the CRM would answer (crm-api.md §1.5): code, message, details."""

    code: str
    message: str
    details: dict[str, Any]

    @property
    def api_name(self) -> str | None:
        """The field the error names, if any."""
        name = self.details.get("api_name")
        return name if isinstance(name, str) else None


def invalid(api_name: str, **extra: str) -> Rejection:
    """`INVALID_DATA` naming `api_name` (crm-api.md §1.5, §1.6)."""
    return Rejection("INVALID_DATA", "invalid data", {"api_name": api_name, **extra})


def mandatory_missing(api_name: str) -> Rejection:
    """`MANDATORY_NOT_FOUND` naming `api_name` (crm-api.md §1.5, §1.6)."""
    return Rejection("MANDATORY_NOT_FOUND", "required field not found", {"api_name": api_name})


def bad_id() -> Rejection:
    """An update's unusable `id` (crm-api.md §1.5: message `the id given seems to be invalid`)."""
    return Rejection("INVALID_DATA", "the id given seems to be invalid", {"api_name": ID_FIELD})


#: A value's problem, or None: `check(value)`.
Checker = Callable[[Any], Rejection | None]

# E-mail: an address has one `@`, a local part and a dotted domain whose last
# label is letters (Zoho's published form ends `\.[a-zA-Z]{2,22}`; the limit of
# 22 is not enforced here, nor are IDN labels refused). The local part takes
# every RFC 5322 atext character and dots (`+tag`, `'`, `&`, `!`, `#`, ...)
# and non-ASCII letters (RFC 6531), refusing only spaces and the RFC's
# specials, because Zoho's pattern takes `+`, `'`, `&`, `-` and word
# characters and we cannot tell which others it takes: doubt sends.
_EMAIL: Final = re.compile(r"[^\s@\"(),:;<>\[\]\\]+@(?:[\w\-]+\.)+(?:[^\W\d_]{2,}|xn--[\w\-]+)")
# Phone: Zoho accepts digits, letters (vanity numbers, `ext`), `+`, spaces,
# `( ) - .` and `, ; #` extension parts (`*`, `/` and RFC 3966 `;ext=` are common in dial
# strings). Refused only: characters no dial string holds, or no digit or
# letter at all.
_PHONE_FORBIDDEN: Final = re.compile(r"[@!$%^&?<>{}\[\]|\\\"~`\x00-\x1f\x7f]")
_ALNUM: Final = re.compile(r"[0-9A-Za-z]")
# Dates: `yyyy-MM-dd`; date-times: `yyyy-MM-ddTHH:mm:ss` with an offset
# (crm-api.md §1.8). A `Z` and fractions of seconds are ISO 8601 too: accepted.
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[+-]\d{2}:\d{2}|Z)"
)
_DIGITS: Final = re.compile(r"-?\d+")
_NUMBER: Final = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field as the metadata describes it, reduced to what the checks need."""

    api_name: str
    data_type: str
    length: int | None = None
    mandatory: bool = False
    read_only: bool = False
    unique: bool = False
    case_sensitive: bool = False
    #: The only values a restricted picklist takes; None when any value goes.
    allowed: frozenset[str] | None = None


def _length(raw: Any) -> int | None:
    """A positive length from the metadata; None (no limit known) otherwise."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int) and raw > 0:
        return raw
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        return int(raw)
    return None


def _allowed(item: Mapping[str, Any]) -> frozenset[str] | None:
    """The values of a restricted picklist (`restricted: true`), else None.

    crm-api.md §1.8: an unrestricted picklist takes new values; restriction is
    [unverified] and not in v2's documented metadata, so only a field that
    says so outright is checked.
    """
    if item.get("restricted") is not True:
        return None
    values = item.get("pick_list_values")
    if not isinstance(values, list):
        return None
    allowed: set[str] = set()
    for entry in values:
        if isinstance(entry, dict):
            allowed.update(str(entry[k]) for k in ("actual_value", "display_value") if k in entry)
        elif isinstance(entry, str):
            allowed.add(entry)
    return frozenset(allowed) if allowed else None


def parse_field(item: Mapping[str, Any]) -> FieldRule | None:
    """One entry of the `fields` list; None for an entry without an `api_name`."""
    name = item.get("api_name")
    if not isinstance(name, str) or not name:
        return None
    unique = item.get("unique")
    return FieldRule(
        api_name=name,
        data_type=str(item.get("data_type") or ""),
        length=_length(item.get("length")),
        mandatory=item.get("system_mandatory") is True,
        read_only=item.get("read_only") is True,
        unique=isinstance(unique, dict) and bool(unique),
        case_sensitive=isinstance(unique, dict) and unique.get("casesensitive") is True,
        allowed=_allowed(item),
    )


# -- one checker per data type ------------------------------------------------


def _text(rule: FieldRule) -> Checker:
    """Text, text area, picklist: a JSON string within the field's `length`.

    Kaizen #1 and crm-api.md §1.8: over-long text is `INVALID_DATA` with
    `maximum_length`. Numbers and booleans are taken (the CRM may store
    their text: doubt sends); only objects and arrays are refused.
    """
    name, limit, kind, allowed = rule.api_name, rule.length, rule.data_type, rule.allowed

    def check(value: Any) -> Rejection | None:
        if type(value) is str:
            text = value
        elif isinstance(value, dict | list):
            return invalid(name, expected_data_type=kind)
        else:
            text = str(value)
        if limit is not None and len(text) > limit:
            return invalid(name, maximum_length=str(limit))
        if allowed is not None and text not in allowed and text != "":
            return invalid(name, expected_data_type=kind)
        return None

    return check


def _formatted(rule: FieldRule, is_valid: Callable[[str], bool]) -> Checker:
    """E-mail and phone: a string within `length` that fits its form (`_EMAIL`, `_PHONE_*`).

    An empty string blanks the field and is never a format error.
    """
    name, limit, kind = rule.api_name, rule.length, rule.data_type

    def check(value: Any) -> Rejection | None:
        if isinstance(value, bool | dict | list):
            return invalid(name, expected_data_type=kind)
        text = value if isinstance(value, str) else str(value)
        if limit is not None and len(text) > limit:
            return invalid(name, maximum_length=str(limit))
        if text and not is_valid(text):
            return invalid(name, expected_data_type=kind)
        return None

    return check


def is_email(text: str) -> bool:
    """True for what Zoho may take as an e-mail address (see `_EMAIL`)."""
    return _EMAIL.fullmatch(text) is not None and ".." not in text.partition("@")[2]


def is_phone(text: str) -> bool:
    """True for what Zoho may take as a phone number (see `_PHONE_FORBIDDEN`)."""
    return _PHONE_FORBIDDEN.search(text) is None and _ALNUM.search(text) is not None


def _temporal(rule: FieldRule) -> Checker:
    """`date` (`yyyy-MM-dd`) and `datetime` (ISO 8601 with an offset): crm-api.md §1.8.

    A string of that shape naming no real day or time (2023-02-30) is refused.
    """
    name, kind = rule.api_name, rule.data_type
    pattern, parse = (
        (_DATE, date.fromisoformat) if kind == "date" else (_DATETIME, datetime.fromisoformat)
    )

    def check(value: Any) -> Rejection | None:
        if isinstance(value, str) and value == "":
            return None
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            return invalid(name, expected_data_type=kind)
        try:
            parse(value)
        except ValueError:
            return invalid(name, expected_data_type=kind)
        return None

    return check


#: Most digits an integer part may have when the metadata gives no length (crm-api.md §1.8).
_DEFAULT_DIGITS: Final = {"integer": 9, "bigint": 18}


def _number(rule: FieldRule) -> Checker:
    """Integer, long integer, decimal, currency, percent: a JSON number (crm-api.md §1.8).

    `expected_data_type` names the field's type. Booleans, objects, arrays and
    strings that are not numbers are refused; a numeric string is taken (the
    CRM may parse it: doubt sends). An integer field refuses a fraction; the
    integer part may have at most `length` digits (integer 9, long integer 18
    by default), as the documented limits say.
    """
    name, kind = rule.api_name, rule.data_type
    integral = kind in _DEFAULT_DIGITS
    digits = rule.length or _DEFAULT_DIGITS.get(kind)
    limit = None if digits is None else 10**digits

    def check(value: Any) -> Rejection | None:
        kind_of = type(value)
        if kind_of is str:
            if value == "":
                return None
            if (_DIGITS if integral else _NUMBER).fullmatch(value) is None:
                return invalid(name, expected_data_type=kind)
            value = int(value) if integral else float(value)
        elif (
            kind_of is not int
            and kind_of is not float
            and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ):
            return invalid(name, expected_data_type=kind)
        if integral and kind_of is float and not value.is_integer():
            return invalid(name, expected_data_type=kind)
        if limit is not None and not -limit < value < limit:
            return invalid(name, expected_data_type=kind)
        return None

    return check


def _boolean(rule: FieldRule) -> Checker:
    """A JSON boolean (crm-api.md §1.8); the strings `true`/`false` are taken (doubt sends)."""
    name = rule.api_name

    def check(value: Any) -> Rejection | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return None
        return invalid(name, expected_data_type="boolean")

    return check


def _multiselect(rule: FieldRule) -> Checker:
    """A JSON array (`expected_data_type: jsonarray`, seen in verbb/formie#410, crm-api.md §1.5)."""
    name, allowed = rule.api_name, rule.allowed

    def check(value: Any) -> Rejection | None:
        if not isinstance(value, list):
            return invalid(name, expected_data_type="jsonarray")
        if allowed is not None and any(str(v) not in allowed for v in value):
            return invalid(name, expected_data_type="jsonarray")
        return None

    return check


def _lookup(rule: FieldRule) -> Checker:
    """`{"id": "..."}` or a bare id (crm-api.md §1.8). Whether the id exists is the CRM's to say."""
    name = rule.api_name

    def check(value: Any) -> Rejection | None:
        raw = value.get("id") if isinstance(value, dict) else value
        if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).isdigit():
            return invalid(name, expected_data_type="jsonobject")
        return None

    return check


def make_checker(rule: FieldRule) -> Checker | None:
    """The checker for `rule`'s type; None for types with no documented rule (sent as they are)."""
    kind = rule.data_type
    if kind in ("text", "textarea", "picklist", "website"):
        return _text(rule)
    if kind == "email":
        return _formatted(rule, is_email)
    if kind == "phone":
        return _formatted(rule, is_phone)
    if kind in ("date", "datetime"):
        return _temporal(rule)
    if kind in ("integer", "bigint", "double", "currency", "percent"):
        return _number(rule)
    if kind == "boolean":
        return _boolean(rule)
    if kind == "multiselectpicklist":
        return _multiselect(rule)
    if kind in ("lookup", "ownerlookup"):
        return _lookup(rule)
    return None


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
    digits = rule.length or _DEFAULT_DIGITS.get(rule.data_type)
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
    call); no unknown name."""
    plain, checkers, fields = rules.plain, rules.checkers, rules.fields
    value: Any
    for name, value in record.items():
        bound = plain.get(name)
        if bound is not None and type(value) is bound[0]:
            size: Any = value  # a str or an int here
            limit = bound[1]
            if (0 < len(size) < limit) if bound[0] is str else (-limit < size < limit):
                continue
        checker = checkers.get(name)
        if checker is not None:
            if value is None or value == "" or value == [] or checker(value) is not None:
                return False
        elif name not in fields and name != ID_FIELD and name[:1] != "$":
            return False
    return True


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
