"""What one records-API write carries, and its wire form (crm-api.md §1.1, §1.2).

`WriteRequest` is the client's input: up to 100 records of one module and
operation with the request-level options. The functions here are pure: they
pick the method and path, and build the JSON body around the records' JSON
array (a whole chunk is encoded in one call; a chunk split to isolate a
poison record reuses each record's single encoding).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from syncengine.model import MAX_CHUNK_RECORDS, Operation, Record


@dataclass(frozen=True)
class WriteRequest:
    """Records of one module and operation to write in one call (≤ 100).

    `trigger=None` omits the key, so the CRM runs all automation; `()` sends
    `[]`, so none runs. `apply_feature_execution` names features such as
    `layout_rules`. `duplicate_check_fields` is sent for upserts only. Record
    keys (including `$append_values`) pass through untouched.
    """

    module: str
    operation: Operation
    records: list[Record]
    trigger: tuple[str, ...] | None = None
    apply_feature_execution: tuple[str, ...] = ()
    duplicate_check_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.records) > MAX_CHUNK_RECORDS:
            raise ValueError(f"a write carries at most {MAX_CHUNK_RECORDS} records")
        if not self.module or "/" in self.module:
            raise ValueError("module must be an API name such as Leads")


def method_and_path(request: WriteRequest) -> tuple[str, str]:
    """HTTP method and path (below the API domain) for the request's operation."""
    base = f"/crm/v2/{request.module}"
    if request.operation is Operation.UPDATE:
        return "PUT", base
    if request.operation is Operation.UPSERT:
        return "POST", base + "/upsert"
    if request.operation is Operation.DELETE:
        return "DELETE", base  # the ids go in the query (`crm.deletes.delete_query`)
    return "POST", base


def encode_record(record: Record) -> bytes | None:
    """One record as JSON bytes, or None when it holds a value JSON cannot carry."""
    try:
        return orjson.dumps(record)
    except TypeError:
        return None


def build_body(request: WriteRequest, records: bytes) -> bytes:
    """The JSON body for `records` (a JSON array of records) and the request's options."""
    options: dict[str, object] = {}
    if request.trigger is not None:
        options["trigger"] = list(request.trigger)
    if request.apply_feature_execution:
        options["apply_feature_execution"] = [
            {"name": name} for name in request.apply_feature_execution
        ]
    if request.operation is Operation.UPSERT and request.duplicate_check_fields is not None:
        options["duplicate_check_fields"] = list(request.duplicate_check_fields)
    head = b'{"data":' + records
    if not options:
        return head + b"}"
    return head + b"," + orjson.dumps(options)[1:]
