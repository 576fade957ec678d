"""Per-record write rules: one result element per input record, in order.

Given a parsed request, these functions decide each record's fate in turn
(applying successes at once, so a later record in the same batch sees an
earlier one's unique values) and build the elements of the response's
`data[]` exactly as crm-api.md §1.3–1.6 shows them. HTTP concerns (auth,
limits, faults, status line) stay in `records_api`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from syncengine.sim.config import SimConfig
from syncengine.sim.faults import FaultPlan
from syncengine.sim.store import RecordStore, StoredRecord, merge_fields
from syncengine.sim.validation import (
    CompiledModule,
    ErrorElement,
    bad_id,
    check_mandatory,
    check_values,
    error,
    mandatory_missing,
    parse_id,
)

#: Automations that run when a request has no `trigger` key (crm-api.md §1.2).
ALL_TRIGGERS: Final = ("workflow", "approval", "blueprint")


@dataclass(slots=True)
class WriteContext:
    """What one request's records are written with."""

    module: CompiledModule
    store: RecordStore
    faults: FaultPlan
    config: SimConfig
    now: str
    user: dict[str, str]
    layout_rules: bool
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.module.schema.api_name


def success(ctx: WriteContext, message: str, record_id: str, stored: StoredRecord) -> ErrorElement:
    """A `SUCCESS` element with the Created/Modified details keys."""
    details = {
        "Modified_Time": stored.modified_time,
        "Modified_By": ctx.user,
        "Created_Time": stored.created_time,
        "id": record_id,
        "Created_By": ctx.user,
    }
    return {"code": "SUCCESS", "details": details, "message": message, "status": "success"}


#: Message of a locked record, as in Zoho's example (crm-oas v8 updateRecords).
LOCKED_MESSAGE: Final = "Sorry, you cannot perform this operation as the record is locked."


def _locked(ctx: WriteContext, record_id: str) -> ErrorElement | None:
    if ctx.config.fault_locked > 0.0 and ctx.faults.locked(ctx.config):
        return error("RECORD_LOCKED", LOCKED_MESSAGE, {"id": record_id})
    return None


def _business_rule(ctx: WriteContext, record_id: str, raw: dict[str, Any]) -> ErrorElement | None:
    """A record a business rule holds: locked, in a blueprint state, or awaiting approval.

    Each is drawn from its own seeded stream while its knob is on, all of
    them for every record, so turning one on never shifts another's draws
    (crm-api.md §1.6): `RECORD_IN_BLUEPRINT` names the first field the write
    carries, `NOT_APPROVED` the record.
    """
    config, faults = ctx.config, ctx.faults
    locked = _locked(ctx, record_id)
    in_blueprint = config.fault_blueprint > 0.0 and faults.in_blueprint(config)
    not_approved = config.fault_not_approved > 0.0 and faults.not_approved(config)
    if locked is not None:
        return locked
    if in_blueprint:
        field_name = next((k for k in raw if k != "id" and k[:1] != "$"), "id")
        details = {"api_name": field_name}
        return error("RECORD_IN_BLUEPRINT", "The record is in blue print", details)
    if not_approved:
        return error("NOT_APPROVED", "record not approved", {"id": record_id})
    return None


def _duplicate(
    ctx: WriteContext, values: dict[str, Any], self_id: str | None
) -> ErrorElement | None:
    clash = ctx.store.conflict(ctx.name, values, self_id)
    if clash is None:
        return None
    return error("DUPLICATE_DATA", "duplicate data", {"api_name": clash[0], "id": clash[1]})


def write_existing(
    ctx: WriteContext, record_id: str, raw: dict[str, Any]
) -> tuple[ErrorElement | None, StoredRecord | None]:
    """Validate and apply `raw` over an existing record: (error, None) or (None, stored)."""
    existing = ctx.store.get(ctx.name, record_id)
    if existing is None:
        return bad_id(), None
    problem = _business_rule(ctx, record_id, raw) or check_values(ctx.module, raw, ctx.store.exists)
    if problem is not None:
        return problem, None
    merged = merge_fields(existing.fields, raw, ctx.module.multiselects)
    problem = check_mandatory(ctx.module, merged, layout_rules=ctx.layout_rules)
    problem = problem or _duplicate(ctx, raw, record_id)
    if problem is not None:
        return problem, None
    return None, ctx.store.put(ctx.name, record_id, merged, ctx.now)


def write_new(
    ctx: WriteContext, raw: dict[str, Any]
) -> tuple[ErrorElement | None, str | None, StoredRecord | None]:
    """Validate and insert `raw` as a new record: (error, None, None) or (None, id, stored)."""
    problem = check_values(ctx.module, raw, ctx.store.exists)
    if problem is not None:
        return problem, None, None
    merged = merge_fields({}, raw, ctx.module.multiselects)
    problem = check_mandatory(ctx.module, merged, layout_rules=ctx.layout_rules)
    problem = problem or _duplicate(ctx, merged, None)
    if problem is not None:
        return problem, None, None
    record_id = ctx.store.new_id()
    return None, record_id, ctx.store.put(ctx.name, record_id, merged, ctx.now)


def _not_object() -> ErrorElement:
    return error("INVALID_DATA", "invalid data", {"expected_data_type": "jsonobject"})


def update_one(ctx: WriteContext, raw: Any, url_id: str | None) -> ErrorElement:
    """One record of an update; `url_id` is the id of `PUT /{module}/{id}`."""
    if not isinstance(raw, dict):
        return _not_object()
    given = raw.get("id", url_id)
    if given is None:
        return mandatory_missing("id")
    record_id = parse_id(given)
    if record_id is None:
        return bad_id()
    problem, stored = write_existing(ctx, record_id, raw)
    if problem is not None or stored is None:
        return problem or bad_id()
    return success(ctx, "record updated", record_id, stored)


def insert_one(ctx: WriteContext, raw: Any) -> ErrorElement:
    """One record of an insert (any `id` it carries is ignored)."""
    if not isinstance(raw, dict):
        return _not_object()
    problem, record_id, stored = write_new(ctx, raw)
    if problem is not None or record_id is None or stored is None:
        return problem or _not_object()
    return success(ctx, "record added", record_id, stored)


def upsert_match(
    ctx: WriteContext, raw: dict[str, Any], order: Sequence[str]
) -> tuple[str | None, str | None, ErrorElement | None]:
    """(field, id) of the record `raw` matches by `order`, or an ambiguity error."""
    for field_name in order:
        value = raw.get(field_name)
        if value is None or value == "":
            continue
        ids = ctx.store.find(ctx.name, field_name, value)
        if len(ids) == 1:
            return field_name, ids[0], None
        if len(ids) > 1:
            details = {"api_name": field_name, "more_records": True}
            return None, None, error("DUPLICATE_DATA", "duplicate data", details)
    return None, None, None


def upsert_one(ctx: WriteContext, raw: Any, order: Sequence[str]) -> ErrorElement:
    """One record of an upsert: update the match, or insert; adds `action`, `duplicate_field`."""
    if not isinstance(raw, dict):
        return _not_object()
    field_name, record_id, problem = upsert_match(ctx, raw, order)
    if problem is not None:
        return problem
    if record_id is not None:
        problem, stored = write_existing(ctx, record_id, raw)
        if problem is not None or stored is None:
            return problem or bad_id()
        element = success(ctx, "record updated", record_id, stored)
        element.update(action="update", duplicate_field=field_name)
        return element
    problem, new_id, created = write_new(ctx, raw)
    if problem is not None or new_id is None or created is None:
        return problem or _not_object()
    element = success(ctx, "record added", new_id, created)
    element.update(action="insert", duplicate_field=None)
    return element


def delete_one(ctx: WriteContext, given: str) -> ErrorElement:
    """One id of a delete: `record deleted` with only the id in details."""
    record_id = parse_id(given.strip())
    if record_id is None or not ctx.store.exists(ctx.name, record_id):
        return bad_id()
    problem = _locked(ctx, record_id)
    if problem is not None:
        return problem
    ctx.store.delete(ctx.name, record_id)
    return {
        "code": "SUCCESS",
        "details": {"id": record_id},
        "message": "record deleted",
        "status": "success",
    }


def duplicate_order(module: CompiledModule, named: Sequence[str] | None) -> list[str]:
    """Upsert's match order: the named fields, else the system field; then the other unique ones.

    Without `duplicate_check_fields` the system duplicate-check field comes
    first; with them, they come first in the order given. Either way the
    module's remaining unique fields are checked after (crm-api.md §1.8).
    """
    if named:
        order = list(named)
    elif module.schema.duplicate_check_field:
        order = [module.schema.duplicate_check_field]
    else:
        order = []
    order += [f for f in module.schema.unique_fields if f not in order]
    return order
