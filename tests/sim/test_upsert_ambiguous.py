"""Upsert whose duplicate-check value matches several records: DUPLICATE_DATA, nothing written."""

from __future__ import annotations

from tests.sim.conftest import Api


async def test_an_ambiguous_upsert_match_is_refused_per_record(api: Api) -> None:
    """Two leads share the Email an upsert matches on: that record fails, the other is applied.

    Seeding skips validation, so it can hold what a live org may hold: records
    older than the field's uniqueness rule that share a value.
    """
    seeded = await api.admin(
        "POST",
        "seed",
        {
            "module": "Leads",
            "records": [
                {"Last_Name": "A", "Company": "Acme", "Email": "shared@example.org"},
                {"Last_Name": "B", "Company": "Acme", "Email": "shared@example.org"},
            ],
        },
    )
    body = {
        "data": [
            {"Email": "shared@example.org", "Last_Name": "C"},
            {"Email": "fresh@example.org", "Last_Name": "D"},
        ],
        "duplicate_check_fields": ["Email"],
    }

    reply = await api.request("POST", "/crm/v2/Leads/upsert", body=body)

    assert reply.status == 202
    first, second = reply.body["data"]
    assert first["code"] == "DUPLICATE_DATA"
    assert first["details"] == {"api_name": "Email", "more_records": True}
    assert (second["code"], second["action"], second["duplicate_field"]) == (
        "SUCCESS",
        "insert",
        None,
    )
    for record_id in seeded.body["ids"]:
        assert (await api.record("Leads", record_id))["fields"]["Last_Name"] in ("A", "B")
