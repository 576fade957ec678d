"""The `poison_field` knob: record content the API cannot parse fails the whole write."""

from __future__ import annotations

from tests.sim.conftest import Api


async def test_a_record_with_the_poison_field_fails_the_whole_request(api: Api) -> None:
    """Any record holding the field: bare 400 INVALID_DATA, no data[], nothing written."""
    ids = await api.seed_leads(3)
    await api.admin("POST", "config", {"poison_field": "Bad_Blob"})
    body = {"data": [{"id": ids[0], "Company": "a"}, {"id": ids[1], "Bad_Blob": {"x": 1}}]}

    reply = await api.request("PUT", "/crm/v2/Leads", body=body)

    assert reply.status == 400
    assert reply.body["code"] == "INVALID_DATA"
    assert reply.body["status"] == "error"
    assert "data" not in reply.body
    assert (await api.record("Leads", ids[0]))["writes"] == 0  # seeding is not a write


async def test_without_the_field_the_write_answers_per_record(api: Api) -> None:
    """The knob changes nothing for records that do not carry the field; off by default."""
    ids = await api.seed_leads(1)
    reply = await api.request(
        "PUT", "/crm/v2/Leads", body={"data": [{"id": ids[0], "Bad_Blob": 1}]}
    )
    assert reply.status == 200
    await api.admin("POST", "config", {"poison_field": "Bad_Blob"})
    reply = await api.request(
        "PUT", "/crm/v2/Leads", body={"data": [{"id": ids[0], "Company": "b"}]}
    )
    assert reply.status == 200
    assert reply.body["data"][0]["code"] == "SUCCESS"
