"""Bulk-write job files from records: CSV rows, field mappings, ZIP, all pure.

`plan_files(module, operation, records, find_by=...)` turns records in the
records API's JSON shape into `BulkFile`s, each one job's upload: at most
25,000 rows and 200 columns, CSV and ZIP each under 25 MB (crm-bulk-write.md
§5), with the records' positions so results map back to them. `find_by_for`
picks the job's `find_by` (`id` for update, the module's duplicate-check
field for upsert, crm-api.md "Duplicate checks").

What a CSV cannot say is refused per record, never guessed: a blank value
(the job sets `ignore_empty`, because a record that leaves a field out must
not blank it, so an empty cell cannot blank one either), `$` keys such as
`$append_values`, nested objects other than a lookup's `{"id": ...}`, and an
update or upsert row without its key. The caller sends those through the
records API. Date and date-time columns carry a `format` mapping
(`yyyy-MM-dd`, and `yyyy-MM-dd'T'HH:mm:ssXXX` [unverified: the allowed list
is a PDF we could not read]) so the ISO values of the records API are read
as such, not as the default `MM/dd/yyyy`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from syncengine.model import Operation, Record
from syncengine.sources.records import SYSTEM_DUPLICATE_FIELDS

MAX_ROWS_PER_FILE: Final = 25_000
MAX_COLUMNS: Final = 200
MAX_FILE_BYTES: Final = 25 * 1024 * 1024
#: [unverified] the separator of a multi-select's values in one cell.
MULTISELECT_SEPARATOR: Final = ";"
DATE_FORMAT: Final = "yyyy-MM-dd"
DATETIME_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ssXXX"

#: System duplicate-check field per module (crm-api.md "Duplicate checks").
DUPLICATE_CHECK_FIELDS: Final[Mapping[str, str]] = SYSTEM_DUPLICATE_FIELDS

_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


class BulkInputError(ValueError):
    """Records that no bulk-write job can carry as a whole; the message says why."""


@dataclass(frozen=True, slots=True)
class BulkFile:
    """One job's upload and how to read its result back.

    `positions[i]` is the index, in the records given to `plan_files`, of the
    CSV's row i; `keys[i]` is that row's first cell, which the result file
    echoes, so a result row can be checked against the row it answers.
    """

    module: str
    operation: Operation
    find_by: str | None
    columns: tuple[str, ...]
    formats: Mapping[str, str]
    positions: tuple[int, ...]
    keys: tuple[str, ...]
    csv_name: str
    payload: bytes

    def job_body(self, file_id: str, *, callback_url: str | None = None) -> dict[str, Any]:
        """The v2 create-job body for this file once uploaded as `file_id`."""
        mappings: list[dict[str, Any]] = []
        for index, name in enumerate(self.columns):
            mapping: dict[str, Any] = {"api_name": name, "index": index}
            if name in self.formats:
                mapping["format"] = self.formats[name]
            mappings.append(mapping)
        resource: dict[str, Any] = {
            "type": "data",
            "module": self.module,  # a string in v2; an object from v2.1
            "file_id": file_id,
            "ignore_empty": True,
            "field_mappings": mappings,
        }
        if self.find_by is not None:
            resource["find_by"] = self.find_by
        body: dict[str, Any] = {
            "operation": str(self.operation),
            "character_encoding": "UTF-8",
            "ignore_empty": True,
            "resource": [resource],
        }
        if callback_url is not None:
            body["callback"] = {"url": callback_url, "method": "post"}
        return body


@dataclass(frozen=True, slots=True)
class BulkPlan:
    """The files to upload, and the records no file can carry (position, reason)."""

    files: list[BulkFile]
    refused: list[tuple[int, str]] = field(default_factory=list)


def find_by_for(
    module: str, operation: Operation, *, duplicate_check_field: str | None = None
) -> str | None:
    """`find_by` of a job: None for insert, `id` for update, the duplicate-check field for upsert.

    Raises BulkInputError for an upsert into a module whose duplicate-check
    field is not known and not given.
    """
    if operation is Operation.INSERT:
        return None
    if operation is Operation.UPDATE:
        return "id"
    found = duplicate_check_field or DUPLICATE_CHECK_FIELDS.get(module)
    if found is None:
        raise BulkInputError(
            f"upsert into {module}: no duplicate-check field is known; name the unique field"
        )
    return found


def _number_cell(value: int | float) -> str | None:
    """Digits as JSON would write them, without an exponent; None for NaN and infinities."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return None
    text = repr(value)
    # Shortest round-trip digits, written out in full (a cell is no place for 1e+20).
    return format(Decimal(text), "f") if "e" in text or "E" in text else text


def cell_text(value: Any) -> str | None:
    """A JSON value as one CSV cell, or None when a cell cannot carry it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _number_cell(value)
    if isinstance(value, dict):
        lookup = value.get("id")
        return str(lookup) if set(value) == {"id"} and isinstance(lookup, str | int) else None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if any(MULTISELECT_SEPARATOR in v for v in value):
            return None
        return MULTISELECT_SEPARATOR.join(value)
    return None


def row_refusal(record: Any, key: str | None) -> str | None:
    """Why a record cannot go in a bulk-write file, or None."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    if key is not None and cell_text(record.get(key)) in (None, ""):
        return f"has no {key}, which the job finds records by"
    for name, value in record.items():
        if name.startswith("$"):
            return f"carries {name}, which bulk write cannot apply"
        if value is None or value == "" or value == []:
            return f"blanks {name}: bulk write skips empty cells (ignore_empty)"
        if cell_text(value) is None:
            return f"holds a value of {name} that one CSV cell cannot carry"
    return None


def _columns(records: Sequence[Record], key: str | None, operation: Operation) -> list[str]:
    """Every field the records name, the key first, then in first-seen order.

    An insert's `id` is left out, as the records API ignores it on insert.
    """
    seen: dict[str, None] = {} if key is None else {key: None}
    for record in records:
        seen.update(dict.fromkeys(record))
    if operation is Operation.INSERT:
        seen.pop("id", None)
    return list(seen)


def _formats(
    records: Sequence[Record], columns: list[str], field_types: Mapping[str, str] | None
) -> dict[str, str]:
    """Date patterns for date and date-time columns: from `field_types`, else from the values."""
    if field_types is not None:
        kinds = {"date": DATE_FORMAT, "datetime": DATETIME_FORMAT}
        return {c: kinds[field_types[c]] for c in columns if field_types.get(c) in kinds}
    out: dict[str, str] = {}
    for column in columns:
        values = [r[column] for r in records if column in r]
        if values and all(isinstance(v, str) and _ISO_DATE.match(v) for v in values):
            out[column] = DATE_FORMAT
        elif values and all(isinstance(v, str) and _ISO_DATETIME.match(v) for v in values):
            out[column] = DATETIME_FORMAT
    return out


def _csv_text(records: Sequence[Record], columns: list[str]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if c not in record else cell_text(record[c]) or "" for c in columns])
    return out.getvalue()


def _zip(name: str, text: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class _Job:
    """What every file of one plan shares."""

    module: str
    operation: Operation
    find_by: str | None
    field_types: Mapping[str, str] | None
    max_bytes: int


def _files(job: _Job, records: list[Record], positions: list[int]) -> list[BulkFile]:
    """One file for these records, or more when it would pass the size limit."""
    columns = _columns(records, job.find_by, job.operation)
    if len(columns) > MAX_COLUMNS:
        raise BulkInputError(
            f"{job.module}: {len(columns)} fields in one file; bulk write takes {MAX_COLUMNS}"
        )
    text = _csv_text(records, columns).encode()
    name = f"{job.module}_{job.operation}_{positions[0]}.csv"
    payload = _zip(name, text)
    if max(len(text), len(payload)) > job.max_bytes:
        if len(records) == 1:
            raise BulkInputError(f"record {positions[0]} alone passes the file size limit")
        half = len(records) // 2
        return _files(job, records[:half], positions[:half]) + _files(
            job, records[half:], positions[half:]
        )
    keys = tuple(cell_text(r.get(columns[0])) or "" for r in records)
    return [
        BulkFile(
            module=job.module,
            operation=job.operation,
            find_by=job.find_by,
            columns=tuple(columns),
            formats=_formats(records, columns, job.field_types),
            positions=tuple(positions),
            keys=keys,
            csv_name=name,
            payload=payload,
        )
    ]


def plan_files(
    module: str,
    operation: Operation,
    records: Sequence[Any],
    *,
    find_by: str | None,
    field_types: Mapping[str, str] | None = None,
    max_rows: int = MAX_ROWS_PER_FILE,
    max_bytes: int = MAX_FILE_BYTES,
) -> BulkPlan:
    """The job files for `records`, in order, and the records refused (with why).

    `find_by` comes from `find_by_for`; `field_types` (API name → data type,
    from the fields metadata) picks date formats, else they are read from the
    values. Raises BulkInputError when the records name more than 200 fields
    or `max_rows` is out of 1..25,000.
    """
    if not 1 <= max_rows <= MAX_ROWS_PER_FILE:
        raise BulkInputError(f"max_rows must be within 1..{MAX_ROWS_PER_FILE}")
    key = find_by if operation is not Operation.INSERT else None
    refused: list[tuple[int, str]] = []
    kept: list[Record] = []
    positions: list[int] = []
    for position, record in enumerate(records):
        reason = row_refusal(record, key)
        if reason is None:
            kept.append(record)
            positions.append(position)
        else:
            refused.append((position, f"record {position} {reason}"))
    job = _Job(module, operation, key, field_types, max_bytes)
    files: list[BulkFile] = []
    for start in range(0, len(kept), max_rows):
        files += _files(job, kept[start : start + max_rows], positions[start : start + max_rows])
    return BulkPlan(files=files, refused=refused)
