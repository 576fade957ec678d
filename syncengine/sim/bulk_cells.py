"""CSV cells of a bulk-write file as the JSON values the records API validates.

A bulk-write row arrives as text; the simulator turns each cell into the
value a records-API body would carry for that field (numbers, booleans,
lookups as `{"id": ...}`, dates as ISO strings) and then validates the row
with the records API's own checks (`validation`, `writes`), so both APIs
accept and refuse the same values. A cell that cannot be converted is
passed on as text, where the field's checker answers `INVALID_DATA`.

Dates follow crm-bulk-write.md §5: `MM/dd/yyyy` and `MM/dd/yyyy HH:mm:ss`
unless the field mapping gives a `format`. A date-time without an offset is
taken as UTC and one already in ISO 8601 with an offset is kept [unverified:
the real service may read it in the org's time zone]. The multi-select
separator is [unverified]; `;` is assumed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from syncengine.sim.schema import FieldSpec

DEFAULT_DATE_FORMAT: Final = "MM/dd/yyyy"
DEFAULT_DATETIME_FORMAT: Final = "MM/dd/yyyy HH:mm:ss"
#: [unverified] separator of multi-select values in one cell.
MULTISELECT_SEPARATOR: Final = ";"

#: Java date-pattern letters the simulator understands, as strptime directives.
_PATTERN_PARTS: Final = (
    ("yyyy", "%Y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("XXX", "%z"),
    ("'T'", "T"),
)
_PATTERN_TOKEN: Final = re.compile(r"yyyy|MM|dd|HH|mm|ss|XXX|'T'|[-/ :.]")
_ISO_DATETIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_INTEGER: Final = re.compile(r"^-?\d+$")


def strptime_pattern(java_pattern: str) -> str | None:
    """The strptime form of a Java date pattern (`yyyy-MM-dd`), None when unsupported."""
    parts = dict(_PATTERN_PARTS)
    pos, out = 0, []
    while pos < len(java_pattern):
        match = _PATTERN_TOKEN.match(java_pattern, pos)
        if match is None:
            return None
        token = match.group()
        out.append(parts.get(token, token))
        pos = match.end()
    return "".join(out) if out else None


def _temporal(spec: FieldSpec, cell: str, pattern: str | None) -> str:
    """An ISO date or date-time from `cell`, or `cell` itself when it does not parse."""
    is_date = spec.data_type == "date"
    if not is_date and pattern is None and _ISO_DATETIME.match(cell):
        return cell
    default = DEFAULT_DATE_FORMAT if is_date else DEFAULT_DATETIME_FORMAT
    directive = strptime_pattern(pattern or default)
    if directive is None:
        return cell
    try:
        moment = datetime.strptime(cell, directive)
    except ValueError:
        return cell
    if is_date:
        return moment.date().isoformat()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def _number(spec: FieldSpec, cell: str) -> Any:
    if spec.data_type in ("integer", "bigint"):
        return int(cell) if _INTEGER.match(cell) else cell
    try:
        return float(cell)
    except ValueError:
        return cell


def _boolean(cell: str) -> Any:
    folded = cell.casefold()
    if folded in ("true", "false"):
        return folded == "true"
    return cell


def cell_value(spec: FieldSpec, cell: str, pattern: str | None = None) -> Any:
    """The JSON value of one non-empty cell for field `spec`; `pattern` is a mapping's format."""
    kind = spec.data_type
    if kind in ("date", "datetime"):
        return _temporal(spec, cell, pattern)
    if kind in ("integer", "bigint", "double", "currency", "percent"):
        return _number(spec, cell)
    if kind == "boolean":
        return _boolean(cell)
    if kind == "multiselectpicklist":
        return [v.strip() for v in cell.split(MULTISELECT_SEPARATOR) if v.strip()]
    if kind in ("lookup", "ownerlookup"):
        return {"id": cell}
    return cell
