"""Pure checks of a bulk-write upload and of a create-job body (crm-bulk-write.md §1, §2, §6).

`read_upload` opens an uploaded ZIP and reads its one CSV; `parse_job`
checks a `POST /crm/bulk/v2/write` body against the module schemas and that
CSV, answering a `JobSpec` or the `BulkError` the real service documents
for the first problem found. No I/O and no state: the handlers in
`bulk_api` look up the upload and the module and pass them in.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from syncengine.sim.bulk_cells import strptime_pattern
from syncengine.sim.schema import ModuleSchema

#: Most records one CSV may hold, and most columns (crm-bulk-write.md §5).
MAX_ROWS: Final = 25_000
MAX_COLUMNS: Final = 200
#: Largest upload accepted (25 MB; applied to the ZIP and to the CSV inside it).
MAX_FILE_BYTES: Final = 25 * 1024 * 1024
OPERATIONS: Final = ("insert", "update", "upsert")


@dataclass(frozen=True, slots=True)
class BulkError:
    """A whole-request bulk-write error: HTTP status, code, message, details."""

    status: int
    code: str
    message: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CsvFile:
    """The CSV of an upload: its name, header row and data rows."""

    name: str
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Where a field's value comes from: a column (`index`) or a `default_value`."""

    api_name: str
    index: int | None
    format: str | None
    default: str | None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A create-job body that passed every check."""

    operation: str
    module: str
    file_id: str
    find_by: str | None
    ignore_empty: bool
    mappings: tuple[FieldMapping, ...]
    callback: dict[str, str] | None
    character_encoding: str | None
    module_as_object: bool


def _bad(code: str, message: str, **details: Any) -> BulkError:
    return BulkError(400, code, message, details)


def _missing(key: str) -> BulkError:
    return _bad(
        "MISSING_REQUIRED_KEY",
        f"required key {key.rsplit('.', 1)[-1]} is not found in request body.",
        json_path=f"$.{key}",
    )


def read_upload(raw: bytes) -> CsvFile | BulkError:
    """The one CSV inside an uploaded ZIP, or `FILE_NOT_SUPPORTED` / `INVALID_FILE_FORMAT`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        return _bad("INVALID_FILE_FORMAT", "invalid file format. only zip format is supported")
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1 or not names[0].lower().endswith(".csv"):
            return _bad("FILE_NOT_SUPPORTED", "File not supported for bulk write")
        info = archive.getinfo(names[0])
        if info.file_size > MAX_FILE_BYTES:
            return _bad("FILE_TOO_LARGE", "file size exceeds the limit")
        text = archive.read(names[0]).decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return _bad("FILE_NOT_SUPPORTED", "File not supported for bulk write")
    return CsvFile(name=names[0].rsplit("/", 1)[-1], header=rows[0], rows=rows[1:])


def _module_name(resource: dict[str, Any]) -> tuple[str | None, bool]:
    """The module's API name (string in v2, `{"api_name"}` from v2.1) and which form it had."""
    module = resource.get("module")
    if isinstance(module, dict):
        name = module.get("api_name")
        return (name if isinstance(name, str) else None), True
    return (module if isinstance(module, str) else None), False


def _mapping(
    raw: Any, position: int, module: ModuleSchema, columns: int
) -> FieldMapping | BulkError:
    """One `field_mappings[]` entry, checked against the module and the CSV's width."""
    if not isinstance(raw, dict) or not isinstance(raw.get("api_name"), str):
        return _missing(f"resource[0].field_mappings[{position}].api_name")
    name = raw["api_name"]
    spec = module.fields.get(name)
    if spec is None and name != "id":
        return _bad("INVALID_FIELD", "the field given is invalid", api_name=name)
    default = raw.get("default_value")
    default_text = default.get("value") if isinstance(default, dict) else None
    index = raw.get("index")
    if index is None and default_text is None:
        return _bad("COLUMN_INDEX_NOT_FOUND", "column index not found", api_name=name)
    if index is not None and (
        isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < columns
    ):
        return _bad("COLUMN_INDEX_NOT_FOUND", "column index not found", api_name=name, index=index)
    pattern = raw.get("format")
    if pattern is not None and (
        not isinstance(pattern, str)
        or spec is None
        or spec.data_type not in ("date", "datetime")
        or strptime_pattern(pattern) is None
    ):
        return _bad("INVALID_FORMAT", "the format given is invalid", api_name=name)
    return FieldMapping(name, index, pattern, None if default_text is None else str(default_text))


def _mappings(
    resource: dict[str, Any], module: ModuleSchema, header: list[str]
) -> tuple[FieldMapping, ...] | BulkError:
    """The explicit `field_mappings`, else the header row read as field API names."""
    raw = resource.get("field_mappings")
    if raw is None:
        raw = [{"api_name": name, "index": i} for i, name in enumerate(header)]
    if not isinstance(raw, list):
        return _bad("INVALID_DATA", "invalid data", api_name="field_mappings")
    if len(raw) > MAX_COLUMNS or len(header) > MAX_COLUMNS:
        return _bad("HEADER_LIMIT_EXCEEDED", "the number of columns exceeds the limit")
    out: list[FieldMapping] = []
    for position, entry in enumerate(raw):
        mapping = _mapping(entry, position, module, len(header))
        if isinstance(mapping, BulkError):
            return mapping
        out.append(mapping)
    return tuple(out)


def _find_by(
    operation: str, resource: dict[str, Any], module: ModuleSchema
) -> str | BulkError | None:
    """`id` or a unique field for update and upsert (required there); ignored for insert."""
    find_by = resource.get("find_by")
    if find_by is None:
        if operation == "insert":
            return None
        return _bad("MANDATORY_NOT_FOUND", "Required key find_by is not available")
    unique = set(module.unique_fields) | {module.duplicate_check_field}
    if not isinstance(find_by, str) or (find_by != "id" and find_by not in unique):
        return _bad("INVALID_DATA", "invalid data", api_name="find_by")
    return find_by


def _callback(body: dict[str, Any]) -> dict[str, str] | BulkError | None:
    callback = body.get("callback")
    if callback is None:
        return None
    if not isinstance(callback, dict):
        return _bad("INVALID_CALLBACK_URL", "the callback url given is invalid")
    url = callback.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        return _bad("INVALID_CALLBACK_URL", "the callback url given is invalid")
    if callback.get("method") != "post":
        return _bad("INVALID_CALLBACK_METHOD", "the callback method given is invalid")
    return {"url": url, "method": "post"}


def _unmapped_mandatory(
    operation: str, module: ModuleSchema, mappings: tuple[FieldMapping, ...]
) -> BulkError | None:
    """Inserts (and upserts, which may insert) must map every system-mandatory field."""
    if operation == "update":
        return None
    mapped = {m.api_name for m in mappings}
    for name, spec in module.fields.items():
        if spec.system_mandatory and name not in mapped:
            return _bad("MANDATORY_FIELDS_NOT_MAPPED", "required field not mapped", api_name=name)
    return None


def _top(body: Any) -> dict[str, Any] | BulkError:
    """The body's one resource, after the top-level keys are checked."""
    if not isinstance(body, dict):
        return _bad("INVALID_DATA", "invalid data", expected_data_type="jsonobject")
    if "operation" not in body:
        return _missing("operation")
    if body["operation"] not in OPERATIONS:
        return _bad("INVALID_DATA", "invalid data", api_name="operation")
    resources = body.get("resource")
    if resources is None:
        return _missing("resource")
    # v2 takes one CSV per job (crm-bulk-write.md §7): one resource.
    if not isinstance(resources, list) or len(resources) != 1 or not isinstance(resources[0], dict):
        return _bad("INVALID_DATA", "invalid data", api_name="resource")
    resource: dict[str, Any] = resources[0]
    if resource.get("type", "data") != "data":
        return _bad("INVALID_DATA", "invalid data", api_name="type")
    return resource


def _target(
    resource: dict[str, Any], modules: dict[str, ModuleSchema], uploads: dict[str, CsvFile]
) -> tuple[ModuleSchema, CsvFile, bool] | BulkError:
    """The resource's module and uploaded file, and whether `module` came as an object."""
    name, as_object = _module_name(resource)
    if name is None and "module" not in resource:
        return _missing("resource[0].module")
    module = modules.get(name or "")
    if module is None:
        return _bad("MODULE_NOT_AVAILABLE", "the module given is not available", module=name)
    file_id = resource.get("file_id")
    if file_id is None:
        return _missing("resource[0].file_id")
    upload = uploads.get(str(file_id))
    if upload is None:
        return _bad("INVALID_FILE_ID", "improper file id", file_id=str(file_id))
    return module, upload, as_object


def parse_job(
    body: Any, modules: dict[str, ModuleSchema], uploads: dict[str, CsvFile]
) -> JobSpec | BulkError:
    """A create-job body as a `JobSpec`, or the first documented error it deserves."""
    resource = _top(body)
    if isinstance(resource, BulkError):
        return resource
    target = _target(resource, modules, uploads)
    if isinstance(target, BulkError):
        return target
    module, upload, as_object = target
    operation = str(body["operation"])
    find_by = _find_by(operation, resource, module)
    if isinstance(find_by, BulkError):
        return find_by
    callback = _callback(body)
    if isinstance(callback, BulkError):
        return callback
    mappings = _mappings(resource, module, upload.header)
    if isinstance(mappings, BulkError):
        return mappings
    problem = _unmapped_mandatory(operation, module, mappings)
    if problem is not None:
        return problem
    ignore = resource.get("ignore_empty", body.get("ignore_empty", False))
    encoding = body.get("character_encoding")
    return JobSpec(
        operation=operation,
        module=module.api_name,
        file_id=str(resource["file_id"]),
        find_by=find_by,
        ignore_empty=ignore is True,
        mappings=mappings,
        callback=callback,
        character_encoding=encoding if isinstance(encoding, str) else None,
        module_as_object=as_object,
    )
