"""Business rules that hold one record, and refusals of every call (crm-api.md §1.6-1.7).

The knobs `fault_locked`, `fault_blueprint` and `fault_not_approved` hold
existing records per record, each from its own seeded stream; `refuse_with`
refuses every records-API call with a whole-request code.
"""

from __future__ import annotations

from typing import Any

import pytest

from syncengine.sim.config import REFUSAL_CODES
from tests.sim.conftest import Api

ID1 = "4876876000000000001"


async def codes_of(api: Api, count: int) -> list[str]:
    """The per-record codes of one update of the `count` seeded leads."""
    ids = await api.seed_leads(count)
    reply = await api.request(
        "PUT", "/crm/v2/Leads", body={"data": [{"id": i, "Company": "Held"} for i in ids]}
    )
    return [element["code"] for element in reply.body["data"]]


@pytest.mark.parametrize(
    ("knob", "code", "details"),
    [
        ("fault_locked", "RECORD_LOCKED", {"id": ID1}),
        ("fault_blueprint", "RECORD_IN_BLUEPRINT", {"api_name": "Company"}),
        ("fault_not_approved", "NOT_APPROVED", {"id": ID1}),
    ],
)
async def test_a_held_record_is_answered_and_left_unwritten(
    api: Api, knob: str, code: str, details: dict[str, Any]
) -> None:
    """The held record gets its code and v2 details; the store keeps it as it was."""
    api.sim.state.set_config({knob: 1.0})
    await api.seed_leads(1)
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Company": "X"}]})
    assert reply.status == 400
    element = reply.body["data"][0]
    assert (element["code"], element["status"], element["details"]) == (code, "error", details)
    assert (await api.record("Leads", ID1))["writes"] == 0


async def test_inserts_are_never_held(api: Api) -> None:
    """Only existing records can be held: a new record is written whatever the knobs."""
    api.sim.state.set_config({"fault_blueprint": 1.0, "fault_not_approved": 1.0})
    reply = await api.request("POST", "/crm/v2/Leads", body={"data": [{"Last_Name": "New"}]})
    assert (reply.status, reply.body["data"][0]["code"]) == (201, "SUCCESS")


async def test_one_rule_turned_on_does_not_shift_another(api: Api) -> None:
    """The records locked for a seed stay the same when blueprints are turned on too."""
    api.sim.state.set_config({"fault_locked": 0.4, "seed": 5})
    alone = await codes_of(api, 40)
    await api.admin("POST", "reset")
    api.token = None
    api.sim.state.set_config({"fault_blueprint": 0.4})
    both = await codes_of(api, 40)
    locked = [c == "RECORD_LOCKED" for c in alone]
    assert 0 < sum(locked) < 40
    assert [c == "RECORD_LOCKED" for c in both] == locked
    assert "RECORD_IN_BLUEPRINT" in both


@pytest.mark.parametrize("code", REFUSAL_CODES)
async def test_refuse_with_stops_every_call_before_it_is_applied(api: Api, code: str) -> None:
    """Writes, deletes and reads all get the bare refusal; nothing is written or charged."""
    await api.seed_leads(1)
    await api.access_token()
    reply = await api.admin("POST", "config", {"refuse_with": code})
    assert reply.body["refuse_with"] == code
    calls = [
        ("PUT", "/crm/v2/Leads", {"data": [{"id": ID1, "Company": "X"}]}, None),
        ("POST", "/crm/v2/Leads/upsert", {"data": [{"Last_Name": "Y"}]}, None),
        ("DELETE", "/crm/v2/Leads", None, {"ids": ID1}),
        ("GET", f"/crm/v2/Leads/{ID1}", None, None),
    ]
    for method, path, body, params in calls:
        answer = await api.request(method, path, body=body, params=params)
        assert "data" not in answer.body
        assert answer.body["code"] == code
        assert answer.status == (403 if code in ("NO_PERMISSION", "FEATURE_NOT_SUPPORTED") else 400)
    assert (await api.record("Leads", ID1))["writes"] == 0
    assert (await api.stats())["credits_used"] == 0


async def test_refuse_with_takes_only_the_documented_codes(api: Api) -> None:
    """Another code is a bad knob value, named in the admin answer; off again with null."""
    bad = await api.admin("POST", "config", {"refuse_with": "INVALID_TOKEN"})
    assert bad.status == 400
    assert bad.body["error"].startswith("refuse_with:")
    assert (await api.admin("POST", "config", {"refuse_with": None})).body["refuse_with"] is None
