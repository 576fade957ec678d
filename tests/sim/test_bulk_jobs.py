"""The simulator's Bulk Write API over raw HTTP: jobs, their states, rows and results."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from syncengine.sim import SimHandle
from tests.sim.bulk_helpers import (
    ZGID,
    create,
    download,
    job,
    job_body,
    result_rows,
    uploaded,
)
from tests.sim.conftest import Api

HEADER = ["Email", "Last_Name", "Company", "Annual_Revenue"]


async def test_org_answers_the_zgid_uploads_carry(api: Api) -> None:
    """`GET /crm/v2/org` names the org's zgid, the X-CRM-ORG value."""
    reply = await api.request("GET", "/crm/v2/org")
    assert reply.status == 200
    assert reply.body["org"][0]["zgid"] == ZGID


async def test_insert_job_goes_added_inprogress_completed(api: Api, sim: SimHandle) -> None:
    """States follow the clock; rows are written on completion, counts sum up."""
    sim.state.set_config({"bulk_queue_s": 30.0, "bulk_job_s": 60.0})
    file_id = await uploaded(
        api,
        [
            HEADER,
            ["a@example.org", "Ada", "Acme", "1000"],
            ["bad-email", "Bob", "Acme", ""],
            ["c@example.org", "", "Acme", "12.5"],
        ],
    )
    created = await create(api, job_body(file_id))
    assert created.status == 201
    assert created.body["code"] == "SUCCESS"
    job_id = created.body["details"]["id"]
    assert (await job(api, job_id)).body["status"] == "ADDED"
    sim.state.clock.advance(30.0)
    assert (await job(api, job_id)).body["status"] == "INPROGRESS"
    assert sim.state.store.records["Leads"] == {}
    sim.state.clock.advance(60.0)
    done = await job(api, job_id)
    assert done.body["status"] == "COMPLETED"
    file = done.body["resource"][0]["file"]
    assert (file["added_count"], file["skipped_count"], file["total_count"]) == (1, 2, 3)
    status, payload = await download(api, done.body["result"]["download_url"])
    assert status == 200
    name, rows = result_rows(payload)
    assert name == "Leads-leads.csv"
    assert list(rows[0]) == ["Email", "Last_Name", "Company", "STATUS", "RECORD_ID", "ERRORS"]
    assert [r["STATUS"] for r in rows] == ["ADDED", "SKIPPED", "SKIPPED"]
    assert rows[1]["ERRORS"] == "INVALID_DATA-Email"
    assert rows[2]["ERRORS"] == "MANDATORY_NOT_FOUND-Last_Name"
    stored = sim.state.store.get("Leads", rows[0]["RECORD_ID"])
    assert stored is not None
    assert stored.fields["Annual_Revenue"] == 1000.0


async def test_unpolled_job_completes_on_its_timer(api: Api, sim: SimHandle) -> None:
    """With no delay configured, the job finishes without anyone asking."""
    file_id = await uploaded(api, [HEADER, ["a@example.org", "Ada", "Acme", "5"]])
    await create(api, job_body(file_id))
    await asyncio.sleep(0.01)
    assert len(sim.state.store.records["Leads"]) == 1


async def test_update_by_id_and_upsert_by_email(api: Api, sim: SimHandle) -> None:
    """Update finds by id and never inserts; upsert finds by the unique field or inserts."""
    ids = await api.seed_leads(2)
    email = sim.state.store.get("Leads", ids[0]).fields["Email"]  # type: ignore[union-attr]
    update_file = await uploaded(
        api, [["id", "Company"], [ids[1], "Updated"], ["4876876000999999999", "Nowhere"]]
    )
    update = await create(api, job_body(update_file, "update", find_by="id"))
    await asyncio.sleep(0.01)
    _, rows = result_rows(
        (
            await download(
                api, (await job(api, update.body["details"]["id"])).body["result"]["download_url"]
            )
        )[1]
    )
    assert [(r["STATUS"], r["RECORD_ID"]) for r in rows[:1]] == [("UPDATED", ids[1])]
    assert rows[1]["STATUS"] == "SKIPPED"
    assert rows[1]["ERRORS"] == "INVALID_DATA-id"
    upsert_file = await uploaded(
        api,
        [["Email", "Last_Name", "Company"], [email, "Again", "Co"], ["n@example.org", "New", "Co"]],
    )
    upsert = await create(api, job_body(upsert_file, "upsert", find_by="Email"))
    await asyncio.sleep(0.01)
    details = (await job(api, upsert.body["details"]["id"])).body
    assert details["resource"][0]["file"]["updated_count"] == 1
    assert details["resource"][0]["file"]["added_count"] == 1
    assert sim.state.store.get("Leads", ids[0]).fields["Last_Name"] == "Again"  # type: ignore[union-attr]


async def test_mappings_formats_defaults_and_ignore_empty(api: Api, sim: SimHandle) -> None:
    """Mapped columns by index, a date format, a default value; empty cells skipped."""
    file_id = await uploaded(
        api, [["Mail", "Name", "Born"], ["m@example.org", "Mapped", "2024/02/29"]]
    )
    mappings = [
        {"api_name": "Email", "index": 0},
        {"api_name": "Last_Name", "index": 1},
        {"api_name": "Company", "default_value": {"value": "Default Co"}},
        {"api_name": "Date_of_Birth", "index": 2, "format": "yyyy/MM/dd"},
    ]
    body = job_body(file_id, mappings=mappings)
    body["ignore_empty"] = True
    reply = await create(api, body)
    assert reply.status == 201, reply.body
    await asyncio.sleep(0.01)
    (record,) = sim.state.store.records["Leads"].values()
    assert record.fields == {
        "Email": "m@example.org",
        "Last_Name": "Mapped",
        "Company": "Default Co",
        "Date_of_Birth": "2024-02-29",
    }


async def test_failed_job_applies_nothing_and_has_no_result(api: Api, sim: SimHandle) -> None:
    """A job the fault fails ends FAILED with no download URL and no records."""
    sim.state.set_config({"bulk_fault_fail": 1.0})
    file_id = await uploaded(api, [HEADER, ["a@example.org", "Ada", "Acme", "5"]])
    job_id = (await create(api, job_body(file_id))).body["details"]["id"]
    await asyncio.sleep(0.01)
    details = (await job(api, job_id)).body
    assert details["status"] == "FAILED"
    assert "result" not in details
    assert sim.state.store.records["Leads"] == {}


async def test_dropped_download_then_whole_file(api: Api, sim: SimHandle) -> None:
    """The first download drops halfway; the next one serves the whole ZIP."""
    sim.state.set_config({"bulk_drop_downloads": 1})
    file_id = await uploaded(api, [HEADER, ["a@example.org", "Ada", "Acme", "5"]])
    job_id = (await create(api, job_body(file_id))).body["details"]["id"]
    await asyncio.sleep(0.01)
    url = (await job(api, job_id)).body["result"]["download_url"]
    with pytest.raises(aiohttp.ClientPayloadError):
        await download(api, url)
    status, payload = await download(api, url)
    assert status == 200
    assert result_rows(payload)[1][0]["STATUS"] == "ADDED"
    assert sim.state.stats.dropped == 1


async def test_each_job_costs_500_credits(api: Api, sim: SimHandle) -> None:
    """500 credits per job, from the records API's ledger; 429 once they run out."""
    sim.state.set_config({"credits": 1_000})
    file_id = await uploaded(api, [HEADER, ["a@example.org", "Ada", "Acme", "5"]])
    for _ in range(2):
        assert (await create(api, job_body(file_id))).status == 201
    assert sim.state.stats.credits_used == 1_000
    refused = await create(api, job_body(file_id))
    assert refused.status == 429
    assert refused.body["code"] == "TOO_MANY_REQUESTS"


async def test_rows_past_25000_are_refused(api: Api, sim: SimHandle) -> None:
    """A file of 25,001 rows writes 25,000 and refuses the last with LIMIT_EXCEEDED."""
    rows = [["Last_Name", "Company"]] + [[f"L{n}", "Co"] for n in range(25_001)]
    file_id = await uploaded(api, rows)
    job_id = (await create(api, job_body(file_id))).body["details"]["id"]
    await asyncio.sleep(0.05)
    details = (await job(api, job_id)).body
    file = details["resource"][0]["file"]
    assert (file["added_count"], file["skipped_count"]) == (25_000, 1)
    _, result = result_rows((await download(api, details["result"]["download_url"]))[1])
    assert result[-1]["ERRORS"] == "LIMIT_EXCEEDED"
