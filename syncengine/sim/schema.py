"""Module schemas as data: which fields a module has and the rules on each.

The simulator validates records (`validation.py`) and answers
`GET /crm/v2/settings/fields` from this one description, so what a client
learns from the metadata is exactly what the write endpoints enforce. The
built-in schemas live in `schemas/default.json`; `load_schema(path)` reads a
user's file of the same shape to mirror their org's layout, raising
`SchemaError` that names the module and field at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

#: Field types of crm-api.md §1.8 and the JSON type the fields endpoint reports.
JSON_TYPES: Final[dict[str, str]] = {
    "text": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "website": "string",
    "picklist": "string",
    "multiselectpicklist": "jsonarray",
    "date": "string",
    "datetime": "string",
    "integer": "integer",
    "bigint": "string",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "boolean": "boolean",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
}

#: Lengths used when a field does not give its own (crm-api.md §1.8).
DEFAULT_LENGTHS: Final[dict[str, int]] = {
    "text": 255,
    "textarea": 32_000,
    "email": 100,
    "phone": 30,
    "website": 255,
    "picklist": 120,
    "multiselectpicklist": 2_000,
    "integer": 9,
    "bigint": 18,
    "double": 16,
    "currency": 16,
    "percent": 16,
}


#: Field types whose values come from `pick_list_values`.
PICKLIST_TYPES: Final = frozenset({"picklist", "multiselectpicklist"})
#: Metadata key telling whether a picklist takes only its listed values.
RESTRICTED_KEY: Final = "restricted_picklist"
#: Metadata key telling whether layout rules (`apply_feature_execution`) require the field.
LAYOUT_MANDATORY_KEY: Final = "layout_mandatory"


class SchemaError(ValueError):
    """A schema file is unusable; the message names the module and field."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a module and the rules the simulator enforces on it."""

    api_name: str
    data_type: str
    id: str
    length: int | None = None
    system_mandatory: bool = False
    layout_mandatory: bool = False
    unique: bool = False
    read_only: bool = False
    custom_field: bool = False
    restricted: bool = False
    pick_list_values: tuple[str, ...] = ()
    lookup_module: str | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class ModuleSchema:
    """A module's fields by API name, plus the upsert duplicate-check field."""

    api_name: str
    id: str
    fields: dict[str, FieldSpec]
    duplicate_check_field: str | None

    @property
    def unique_fields(self) -> tuple[str, ...]:
        """Fields whose values must not repeat across records (DUPLICATE_DATA)."""
        return tuple(name for name, spec in self.fields.items() if spec.unique)

    @property
    def indexed_fields(self) -> tuple[str, ...]:
        """Fields the store indexes: unique ones and the duplicate-check field."""
        names = list(self.unique_fields)
        if self.duplicate_check_field and self.duplicate_check_field not in names:
            names.append(self.duplicate_check_field)
        return tuple(names)


@dataclass(frozen=True, slots=True)
class Schema:
    """Every module the simulator knows, and the users an owner lookup may name."""

    modules: dict[str, ModuleSchema]
    user_ids: frozenset[str]
    users: tuple[dict[str, str], ...]


def _field(module: str, index: int, module_id: str, raw: Any) -> FieldSpec:
    """Parse one field entry; raises `SchemaError` naming module and field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("api_name"), str):
        raise SchemaError(f"{module}: field #{index + 1} needs an api_name")
    name = raw["api_name"]
    data_type = raw.get("data_type")
    if data_type not in JSON_TYPES:
        raise SchemaError(f"{module}.{name}: unknown data_type {data_type!r}")
    if data_type == "lookup" and not isinstance(raw.get("lookup_module"), str):
        raise SchemaError(f"{module}.{name}: a lookup needs lookup_module")
    return FieldSpec(
        api_name=name,
        data_type=data_type,
        id=str(raw.get("id") or int(module_id) + 1_000 + index),
        length=raw.get("length", DEFAULT_LENGTHS.get(data_type)),
        system_mandatory=bool(raw.get("system_mandatory", False)),
        layout_mandatory=bool(raw.get("layout_mandatory", False)),
        unique=bool(raw.get("unique", False)),
        read_only=bool(raw.get("read_only", False)),
        custom_field=bool(raw.get("custom_field", False)),
        restricted=bool(raw.get("restricted", False)),
        pick_list_values=tuple(str(v) for v in raw.get("pick_list_values", ())),
        lookup_module=raw.get("lookup_module"),
        label=str(raw.get("field_label") or name.replace("_", " ")),
    )


def _module(name: str, index: int, raw: Any) -> ModuleSchema:
    """Parse one module entry; raises `SchemaError` naming the module."""
    if not isinstance(raw, dict) or not isinstance(raw.get("fields"), list):
        raise SchemaError(f"{name}: a module needs a fields list")
    module_id = str(raw.get("id") or 4_876_876_000_000_002_000 + index)
    fields = {
        spec.api_name: spec
        for spec in (_field(name, i, module_id, f) for i, f in enumerate(raw["fields"]))
    }
    dup = raw.get("duplicate_check_field")
    if dup is not None and dup not in fields:
        raise SchemaError(f"{name}: duplicate_check_field {dup!r} is not a field")
    return ModuleSchema(api_name=name, id=module_id, fields=fields, duplicate_check_field=dup)


def parse_schema(raw: Any) -> Schema:
    """Build a `Schema` from decoded JSON; lookups must name known modules."""
    if not isinstance(raw, dict) or not isinstance(raw.get("modules"), dict):
        raise SchemaError("schema: top level needs a modules object")
    modules = {name: _module(name, i, m) for i, (name, m) in enumerate(raw["modules"].items())}
    for module in modules.values():
        for spec in module.fields.values():
            if spec.lookup_module is not None and spec.lookup_module not in modules:
                raise SchemaError(
                    f"{module.api_name}.{spec.api_name}: unknown lookup_module "
                    f"{spec.lookup_module!r}"
                )
    users = tuple(
        {"id": str(u["id"]), "name": str(u.get("name", ""))} for u in raw.get("users", [])
    ) or ({"id": "4876876000000233001", "name": "Sync Bot"},)
    return Schema(modules=modules, user_ids=frozenset(u["id"] for u in users), users=users)


def load_schema(path: Path | None = None) -> Schema:
    """The schema in `path`, or the built-in one; raises `SchemaError` if unusable."""
    if path is None:
        text = resources.files("syncengine.sim").joinpath("schemas/default.json").read_text()
        return parse_schema(json.loads(text))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: cannot read schema ({exc})") from exc
    return parse_schema(raw)


def field_metadata(module: ModuleSchema) -> list[dict[str, Any]]:
    """The `fields` list of `GET /crm/v2/settings/fields?module=` for `module`."""
    out: list[dict[str, Any]] = []
    for spec in module.fields.values():
        item: dict[str, Any] = {
            "api_name": spec.api_name,
            "data_type": spec.data_type,
            "json_type": JSON_TYPES[spec.data_type],
            "length": spec.length if spec.length is not None else 0,
            "system_mandatory": spec.system_mandatory,
            "read_only": spec.read_only,
            "custom_field": spec.custom_field,
            "visible": True,
            "field_label": spec.label,
            "id": spec.id,
            "unique": {"casesensitive": False} if spec.unique else {},
            # [unverified] key: Zoho shows layout-mandated fields in its layouts
            # API, which the simulator does not serve (crm-api.md §1.8).
            LAYOUT_MANDATORY_KEY: spec.layout_mandatory,
        }
        if spec.pick_list_values:
            item["pick_list_values"] = [
                {"display_value": v, "actual_value": v, "id": f"{spec.id}{i:03d}"}
                for i, v in enumerate(spec.pick_list_values)
            ]
        if spec.data_type in PICKLIST_TYPES:
            # [unverified] key: Zoho's field metadata has none for this (crm-api.md §1.8).
            item[RESTRICTED_KEY] = spec.restricted
        if spec.lookup_module is not None:
            item["lookup"] = {"module": spec.lookup_module, "api_name": spec.api_name}
        out.append(item)
    return out


_SAMPLES: Final[dict[str, Any]] = {
    "text": "Sample",
    "textarea": "Sample text",
    "phone": "+1 555 0100",
    "website": "https://example.org",
    "multiselectpicklist": [],
    "date": "2024-01-31",
    "datetime": "2024-01-31T09:30:00+00:00",
    "integer": 1,
    "bigint": 1,
    "double": 1.5,
    "currency": 100.0,
    "percent": 50.0,
    "boolean": False,
}


def sample_record(module: ModuleSchema, n: int) -> dict[str, Any]:
    """A record that passes every rule of `module` (mandatory, layout, unique).

    Unique and duplicate-check fields get values made distinct by `n`, so
    records for different `n` never collide. Lookups are left out because
    their targets may not exist.
    """
    record: dict[str, Any] = {}
    for spec in module.fields.values():
        needed = spec.system_mandatory or spec.layout_mandatory
        distinct = spec.unique or spec.api_name == module.duplicate_check_field
        if spec.read_only or not (needed or distinct):
            continue
        if spec.data_type == "email":
            record[spec.api_name] = f"user{n}@example.org"
        elif spec.data_type == "picklist":
            values = [v for v in spec.pick_list_values if v != "-None-"]
            record[spec.api_name] = values[0] if values else "Sample"
        elif distinct:
            record[spec.api_name] = f"{spec.api_name.replace('_', ' ')} {n}"
        elif spec.data_type in _SAMPLES:
            record[spec.api_name] = _SAMPLES[spec.data_type]
    return record
