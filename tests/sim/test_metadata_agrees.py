"""What the field metadata says a value must be, the write endpoints enforce (and nothing else).

For every module of the default schema, each rule is derived from
`GET /crm/v2/settings/fields` alone (the way a client that validates before
sending would read it) and then tried against the records API:

* `system_mandatory`: a record holding only the mandatory fields is taken;
  without any one of them it is `MANDATORY_NOT_FOUND` naming that field;
* `length`: a value at `length` is taken, one character (or digit) over is
  `INVALID_DATA` naming the field;
* `restricted_picklist`: a value not in `pick_list_values` is refused exactly
  when the picklist is restricted;
* `unique`: a value used twice is `DUPLICATE_DATA` exactly when `unique` is
  set (compared without case, as `casesensitive: false` says);
* `json_type`: a value of another JSON type is `INVALID_DATA`.

Probes go out as inserts of up to 100 records, each record answered in its
own `data[]` element.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncengine.sim.schema import LAYOUT_MANDATORY_KEY, RESTRICTED_KEY
from tests.sim.conftest import Api

#: Types whose `length` bounds the characters of a string value.
STRING_TYPES = frozenset({"text", "textarea", "email", "phone", "website", "picklist"})
#: Types whose `length` bounds the digits of a number.
NUMBER_TYPES = frozenset({"integer", "bigint", "double", "currency", "percent"})
#: A value of the wrong JSON type for each `json_type`.
WRONG_TYPE: dict[str, Any] = {
    "string": ["a", "list"],
    "jsonarray": "not a list",
    "integer": "not a number",
    "double": "not a number",
    "boolean": "not a boolean",
    "jsonobject": ["not", "an", "object"],
}

SERIAL = itertools.count(1)


@dataclass(frozen=True)
class Probe:
    """One record to insert and the answer the metadata predicts for it."""

    what: str
    record: dict[str, Any]
    code: str
    api_name: str | None = None  # the field an error must name; successes name none

    def agrees(self, answer: dict[str, Any]) -> bool:
        """Whether `answer` is the predicted one (code, and the field an error names)."""
        if answer["code"] != self.code:
            return False
        return self.code == "SUCCESS" or answer["details"].get("api_name") == self.api_name


def text_of(length: int) -> str:
    """A string of exactly `length` characters, distinct from every other one made."""
    tag = f"v{next(SERIAL)}"
    return (tag + "x" * length)[:length] if length >= len(tag) else "x" * length


#: Values of the types without a length rule.
FIXED_VALUES: dict[str, Any] = {
    "date": "2024-02-29",
    "datetime": "2024-02-29T12:00:00+05:30",
    "boolean": True,
}


def contact_value(kind: str, n: int, size: int | None) -> str:
    """An e-mail, phone or URL value; `size` characters long when given."""
    if kind == "email":
        domain = "@example.org"
        return (f"m{n}" if size is None else text_of(size - len(domain))) + domain
    if kind == "phone":
        digits = f"555{n:07d}"
        return digits if size is None else (digits * size)[:size]
    host = f"site{n}" if size is None else "w" * (size - len("https://.org"))
    return f"https://{host}.org"


def picklist_value(field: dict[str, Any], size: int | None) -> Any:
    """A listed option, or a free value of `size` characters; in a list for multi-selects."""
    listed = [v["actual_value"] for v in field.get("pick_list_values", [])]
    value = text_of(size) if size is not None else (listed[-1] if listed else text_of(10))
    return [value] if field["data_type"] == "multiselectpicklist" else value


def value_of(field: dict[str, Any], length: int | None = None) -> Any:
    """A valid value for `field` as its metadata describes it; `length` long where it counts."""
    kind, n = field["data_type"], next(SERIAL)
    if kind in ("email", "phone", "website"):
        return contact_value(kind, n, length)
    if kind in ("picklist", "multiselectpicklist"):
        return picklist_value(field, length)
    if kind in NUMBER_TYPES:
        return n if length is None else 10**length - 1
    if kind in ("text", "textarea"):
        return text_of(min(field["length"], 30) if length is None else length)
    if kind in FIXED_VALUES:
        return FIXED_VALUES[kind]
    raise LookupError(f"{field['api_name']}: no value derivable for {kind}")


def writable(fields: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The fields a write may carry (read-only ones are ignored by the CRM)."""
    return (f for f in fields if not f["read_only"])


def base_record(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """A record with a value for every system-mandatory field, and nothing else."""
    return {f["api_name"]: value_of(f) for f in writable(fields) if f["system_mandatory"]}


def mandatory_probes(fields: list[dict[str, Any]]) -> Iterator[Probe]:
    """The mandatory fields alone are enough; each one missing is refused."""
    yield Probe("only the mandatory fields", base_record(fields), "SUCCESS")
    for field in writable(fields):
        if field["system_mandatory"]:
            record = base_record(fields)
            del record[field["api_name"]]
            yield Probe("mandatory missing", record, "MANDATORY_NOT_FOUND", field["api_name"])


def length_probes(fields: list[dict[str, Any]]) -> Iterator[Probe]:
    """A value at `length` is taken, one over is refused."""
    for field in writable(fields):
        kind, name, size = field["data_type"], field["api_name"], field["length"]
        restricted = field.get(RESTRICTED_KEY, False)
        bounded = kind in STRING_TYPES | NUMBER_TYPES | {"multiselectpicklist"}
        if not bounded or restricted or size <= 0:
            continue
        at, over = value_of(field, size), value_of(field, size + 1)
        if kind in NUMBER_TYPES:
            over = 10**size
        yield Probe(f"{kind} at length {size}", {**base_record(fields), name: at}, "SUCCESS")
        yield Probe(
            f"{kind} over length", {**base_record(fields), name: over}, "INVALID_DATA", name
        )


def picklist_probes(fields: list[dict[str, Any]]) -> Iterator[Probe]:
    """Listed values are taken; an unlisted one is refused exactly when restricted."""
    for field in writable(fields):
        if field["data_type"] not in ("picklist", "multiselectpicklist"):
            continue
        name, listed = field["api_name"], field.get("pick_list_values", [])
        as_array = field["data_type"] == "multiselectpicklist"
        for option in listed:
            value = [option["actual_value"]] if as_array else option["actual_value"]
            yield Probe("listed value", {**base_record(fields), name: value}, "SUCCESS")
        unlisted = ["Not In The List"] if as_array else "Not In The List"
        expected = "INVALID_DATA" if field[RESTRICTED_KEY] else "SUCCESS"
        yield Probe("unlisted value", {**base_record(fields), name: unlisted}, expected, name)


def unique_probes(fields: list[dict[str, Any]]) -> Iterator[Probe]:
    """A string value used twice (case changed) is a duplicate exactly when `unique` is set."""
    for field in writable(fields):
        kind, name = field["data_type"], field["api_name"]
        if kind not in STRING_TYPES or field.get(RESTRICTED_KEY, False):
            continue
        value = value_of(field)
        first, second = base_record(fields), base_record(fields)
        first[name], second[name] = value, value.upper()
        expected = "DUPLICATE_DATA" if field["unique"] else "SUCCESS"
        yield Probe("first use", first, "SUCCESS")
        yield Probe("second use", second, expected, name)


def type_probes(fields: list[dict[str, Any]]) -> Iterator[Probe]:
    """A value of another JSON type than `json_type` is refused."""
    for field in writable(fields):
        wrong = WRONG_TYPE[field["json_type"]]
        name = field["api_name"]
        yield Probe(
            f"not {field['json_type']}", {**base_record(fields), name: wrong}, "INVALID_DATA", name
        )


async def metadata(api: Api, module: str) -> list[dict[str, Any]]:
    """The field metadata of `module`, from the fields endpoint."""
    reply = await api.request("GET", "/crm/v2/settings/fields", params={"module": module})
    assert reply.status == 200
    fields: list[dict[str, Any]] = reply.body["fields"]
    return fields


async def insert_all(api: Api, module: str, probes: list[Probe]) -> list[dict[str, Any]]:
    """Insert every probe's record in order, 100 per request; one answer element each."""
    answers: list[dict[str, Any]] = []
    for start in range(0, len(probes), 100):
        batch = [p.record for p in probes[start : start + 100]]
        reply = await api.request("POST", f"/crm/v2/{module}", body={"data": batch})
        answers += reply.body["data"]
    return answers


async def modules(api: Api) -> list[str]:
    """Every module the simulator lists."""
    reply = await api.request("GET", "/crm/v2/settings/modules")
    return [m["api_name"] for m in reply.body["modules"]]


PROBES = [mandatory_probes, length_probes, picklist_probes, unique_probes, type_probes]


@pytest.mark.parametrize("probes", PROBES, ids=lambda p: p.__name__)
async def test_every_module_enforces_what_its_metadata_says(api: Api, probes: Any) -> None:
    """Each probe's answer matches the metadata's prediction, in every module."""
    names = await modules(api)
    assert names == ["Leads", "Contacts", "Accounts", "Deals"]
    for module in names:
        planned = list(probes(await metadata(api, module)))
        answers = await insert_all(api, module, planned)
        mismatches = [
            (module, p.what, p.record, answer)
            for p, answer in zip(planned, answers, strict=True)
            if not p.agrees(answer)
        ]
        assert not mismatches, mismatches[:3]


async def test_the_probes_cover_every_rule_the_schema_has(api: Api) -> None:
    """The default schema holds each kind of rule at least once, so no probe is idle."""
    fields = [f for m in await modules(api) for f in await metadata(api, m)]
    assert any(f["system_mandatory"] for f in fields)
    assert any(f["unique"] for f in fields)
    assert any(f.get(RESTRICTED_KEY) for f in fields)
    assert any(f.get(RESTRICTED_KEY) is False for f in fields)
    assert any(f[LAYOUT_MANDATORY_KEY] for f in fields)
    assert {f["data_type"] for f in fields} >= STRING_TYPES | NUMBER_TYPES


async def test_layout_mandatory_fields_are_required_only_with_layout_rules(api: Api) -> None:
    """`layout_mandatory` in the metadata is what `apply_feature_execution` enforces."""
    for module in await modules(api):
        fields = await metadata(api, module)
        needed = {f["api_name"] for f in fields if f[LAYOUT_MANDATORY_KEY]}
        record = base_record(fields)
        plain = await api.request("POST", f"/crm/v2/{module}", body={"data": [record]})
        assert plain.body["data"][0]["code"] == "SUCCESS"
        ruled = await api.request(
            "POST",
            f"/crm/v2/{module}",
            body={
                "data": [base_record(fields)],
                "apply_feature_execution": [{"name": "layout_rules"}],
            },
        )
        element = ruled.body["data"][0]
        if needed:
            assert element["code"] == "MANDATORY_NOT_FOUND"
            assert element["details"]["api_name"] in needed
        else:
            assert element["code"] == "SUCCESS"
