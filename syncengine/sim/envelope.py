"""Pure parsing of a write request's body into the parts the handlers need.

The simulator parses bodies as JSON whatever the Content-Type says, because
Zoho's own SDK sends update bodies without one. Problems with the body as a
whole come back as a `BodyError` holding the whole-request error code and
details to answer (crm-api.md §1.7); per-record problems are left to `writes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from syncengine.model import MAX_CHUNK_RECORDS
from syncengine.sim.validation import CompiledModule

TRIGGERS: Final = frozenset({"workflow", "approval", "blueprint"})


@dataclass(frozen=True, slots=True)
class BodyError:
    """A whole-request error for a body that cannot be used."""

    code: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A usable write body: records, and the request-level switches."""

    data: list[Any]
    trigger: tuple[str, ...] | None
    layout_rules: bool
    duplicate_fields: list[str] | None


def _invalid(api_name: str, expected: str) -> BodyError:
    return BodyError("INVALID_DATA", {"api_name": api_name, "expected_data_type": expected})


def _trigger(value: Any) -> tuple[str, ...] | BodyError | None:
    """Absent means every automation runs; `[]` means none (crm-api.md §1.2)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(v in TRIGGERS for v in value):
        return _invalid("trigger", "jsonarray")
    return tuple(value)


def _layout_rules(value: Any) -> bool | BodyError:
    """True when `apply_feature_execution` names `layout_rules`."""
    if value is None:
        return False
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return _invalid("apply_feature_execution", "jsonarray")
    return any(v.get("name") == "layout_rules" for v in value)


def _duplicate_fields(value: Any, module: CompiledModule) -> list[str] | BodyError | None:
    """Upsert's `duplicate_check_fields`: the module's duplicate-check or unique fields.

    Zoho lets upsert match only on the system duplicate-check field and
    unique fields (crm-api.md §1.8). Naming any other field is refused as a
    whole, never matched: a match on a field whose values repeat could update
    the wrong record.
    """
    if value is None:
        return None
    matchable = set(module.schema.unique_fields)
    if module.schema.duplicate_check_field is not None:
        matchable.add(module.schema.duplicate_check_field)
    if not isinstance(value, list) or not all(isinstance(v, str) and v in matchable for v in value):
        return _invalid("duplicate_check_fields", "jsonarray")
    return list(value)


def _data(body: Any) -> list[Any] | BodyError:
    if not isinstance(body, dict):
        return BodyError("INVALID_DATA", {"expected_data_type": "jsonobject"})
    data = body.get("data")
    if data is None or data == []:
        return BodyError("MANDATORY_NOT_FOUND", {"api_name": "data"})
    if not isinstance(data, list):
        return _invalid("data", "jsonarray")
    if len(data) > MAX_CHUNK_RECORDS:
        return BodyError("LIMIT_EXCEEDED", {"limit": MAX_CHUNK_RECORDS})
    return data


def parse_envelope(raw: bytes, module: CompiledModule, *, upsert: bool) -> Envelope | BodyError:
    """The body of an insert, update or upsert, or the error it deserves."""
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return BodyError("INVALID_DATA", {"expected_data_type": "jsonobject"})
    data = _data(body)
    if isinstance(data, BodyError):
        return data
    trigger = _trigger(body.get("trigger"))
    if isinstance(trigger, BodyError):
        return trigger
    layout = _layout_rules(body.get("apply_feature_execution"))
    if isinstance(layout, BodyError):
        return layout
    dup = _duplicate_fields(body.get("duplicate_check_fields"), module) if upsert else None
    if isinstance(dup, BodyError):
        return dup
    return Envelope(data=data, trigger=trigger, layout_rules=layout, duplicate_fields=dup)
