"""One field's metadata and the checks on its values: what the CRM would certainly refuse.

Input: one entry of `GET /crm/v2/settings/fields?module=M` (crm-api.md §1.8:
`api_name`, `data_type`, `length`, `system_mandatory`, `read_only`,
`unique`, `pick_list_values`, ...) and a value sent to that field. Output:
None, or the per-record error the CRM would answer, in its own words
(`INVALID_DATA` with `api_name` and `expected_data_type` or
`maximum_length`; crm-api.md §1.5–1.6). `crm.field_rules` assembles a
module's checks and judges whole records.

The one rule above all: never refuse what the CRM would take. A refusal
means a record never reaches the CRM, so every check errs towards sending:
where the documentation leaves a value in doubt (a number in a text field, a
`Z` offset, an e-mail local part with RFC characters, letters and `#`
extensions in a phone), it is accepted and the CRM decides. Each check's
docstring names its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

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
    """The values of a restricted picklist, else None.

    crm-api.md §1.8: an unrestricted picklist takes new values; restriction is
    [unverified] and not in v2's documented metadata, so only a field that
    says so outright (`restricted_picklist: true`, or `restricted: true`) is
    checked.
    """
    if item.get("restricted_picklist") is not True and item.get("restricted") is not True:
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
DEFAULT_DIGITS: Final = {"integer": 9, "bigint": 18}


def _number(rule: FieldRule) -> Checker:
    """Integer, long integer, decimal, currency, percent: a JSON number (crm-api.md §1.8).

    `expected_data_type` names the field's type. Booleans, objects, arrays and
    strings that are not numbers are refused; a numeric string is taken (the
    CRM may parse it: doubt sends). An integer field refuses a fraction; the
    integer part may have at most `length` digits (integer 9, long integer 18
    by default), as the documented limits say.
    """
    name, kind = rule.api_name, rule.data_type
    integral = kind in DEFAULT_DIGITS
    digits = rule.length or DEFAULT_DIGITS.get(kind)
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
