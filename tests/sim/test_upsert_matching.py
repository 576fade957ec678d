"""Which fields an upsert may match on, and in what order (crm-api.md §1.8).

Only the system duplicate-check field and unique fields may be named in
`duplicate_check_fields`; the named ones are tried first, in order, and the
module's other unique fields after them. A module of our own (a system field
plus two unique fields) shows the order; the default Leads shows the refusal
of the case that once updated a record: an upsert keyed on `Last_Name`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncengine.sim import running_simulator
from tests.sim.conftest import Api

SCHEMA = {
    "modules": {
        "Vendors": {
            "duplicate_check_field": "Vendor_Name",
            "fields": [
                {"api_name": "Vendor_Name", "data_type": "text", "system_mandatory": True},
                {"api_name": "Email", "data_type": "email", "unique": True},
                {"api_name": "Tax_Code", "data_type": "text", "unique": True},
                {"api_name": "City", "data_type": "text"},
            ],
        }
    }
}


@pytest.fixture
async def vendors(tmp_path: Path) -> AsyncIterator[Api]:
    """A simulator serving only the Vendors module above, with two vendors in it."""
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA), encoding="utf-8")
    async with running_simulator(admin=True, schema=path) as sim, aiohttp.ClientSession() as http:
        api = Api(sim, http)
        reply = await api.admin(
            "POST",
            "seed",
            {
                "module": "Vendors",
                "records": [
                    {"id": "1001", "Vendor_Name": "Acme", "Email": "a@acme.test", "Tax_Code": "T1"},
                    {"id": "1002", "Vendor_Name": "Bolt", "Email": "b@bolt.test", "Tax_Code": "T2"},
                ],
            },
        )
        assert reply.status == 200
        yield api


async def upsert(api: Api, record: dict[str, Any], named: list[str] | None) -> Any:
    """One upsert of `record`; the whole reply."""
    body: dict[str, Any] = {"data": [record]}
    if named is not None:
        body["duplicate_check_fields"] = named
    return await api.request("POST", "/crm/v2/Vendors/upsert", body=body)


@pytest.mark.parametrize(
    ("named", "record", "matched_field", "matched_id"),
    [
        # The system field first: Vendor_Name finds 1001 (Tax_Code is not sent).
        (None, {"Vendor_Name": "Acme"}, "Vendor_Name", "1001"),
        # The named field before the system field: Tax_Code T2 finds 1002.
        (["Tax_Code"], {"Vendor_Name": "Acme", "Tax_Code": "T2"}, "Tax_Code", "1002"),
    ],
)
async def test_the_first_field_in_order_decides_the_match(
    vendors: Api,
    named: list[str] | None,
    record: dict[str, Any],
    matched_field: str,
    matched_id: str,
) -> None:
    """The record is updated through the first field of the order that finds one."""
    reply = await upsert(vendors, {**record, "City": "Oslo"}, named)
    element = reply.body["data"][0]
    assert (element["action"], element["duplicate_field"]) == ("update", matched_field)
    assert element["details"]["id"] == matched_id
    assert (await vendors.record("Vendors", matched_id))["fields"]["City"] == "Oslo"


@pytest.mark.parametrize(
    ("named", "clash_field", "clash_id"),
    [(["Email", "Tax_Code"], "Tax_Code", "1002"), (["Tax_Code", "Email"], "Email", "1001")],
)
async def test_named_order_picks_the_record_the_other_field_then_clashes_with(
    vendors: Api, named: list[str], clash_field: str, clash_id: str
) -> None:
    """Email names 1001, Tax_Code 1002: the match is by the first named field.

    Writing the other unique value into the matched record then clashes with
    the record that holds it, so the DUPLICATE_DATA element shows which record
    was matched (and nothing is written).
    """
    reply = await upsert(vendors, {"Email": "a@acme.test", "Tax_Code": "T2"}, named)
    element = reply.body["data"][0]
    assert element["code"] == "DUPLICATE_DATA"
    assert element["details"] == {"api_name": clash_field, "id": clash_id}


async def test_unique_fields_not_named_are_checked_after_the_named_ones(vendors: Api) -> None:
    """Named Tax_Code finds nothing; the unique Email still matches vendor 1002."""
    record = {"Vendor_Name": "New", "Email": "b@bolt.test", "Tax_Code": "T9"}
    reply = await upsert(vendors, record, ["Tax_Code"])
    element = reply.body["data"][0]
    assert (element["action"], element["duplicate_field"]) == ("update", "Email")
    assert (await vendors.record("Vendors", "1002"))["fields"]["Tax_Code"] == "T9"


@pytest.mark.parametrize("named", [["City"], ["Tax_Code", "City"], ["Nope"], "Email"])
async def test_fields_that_are_not_matchable_refuse_the_whole_call(
    vendors: Api, named: Any
) -> None:
    """A field that is neither unique nor the system field (or not a list) writes nothing."""
    reply = await upsert(vendors, {"Vendor_Name": "Acme", "City": "Oslo"}, named)
    assert reply.status == 400
    assert reply.body["code"] == "INVALID_DATA"
    assert reply.body["details"]["api_name"] == "duplicate_check_fields"
    stored = await vendors.admin("GET", "records?module=Vendors")
    assert {r["fields"].get("City") for r in stored.body["Vendors"].values()} == {None}
    assert len(stored.body["Vendors"]) == 2


async def test_an_upsert_keyed_on_last_name_updates_nothing(api: Api) -> None:
    """Last_Name repeats across leads: naming it is refused, the seeded lead is untouched."""
    ids = await api.seed_leads(1)
    name = (await api.record("Leads", ids[0]))["fields"]["Last_Name"]
    reply = await api.request(
        "POST",
        "/crm/v2/Leads/upsert",
        body={
            "data": [{"Last_Name": name, "Company": "Hijacked"}],
            "duplicate_check_fields": ["Last_Name"],
        },
    )
    assert (reply.status, reply.body["code"]) == (400, "INVALID_DATA")
    assert (await api.record("Leads", ids[0]))["writes"] == 0
    leads = (await api.admin("GET", "records?module=Leads")).body["Leads"]
    assert list(leads) == ids  # nothing inserted either
