"""The simulator's documented Bulk Write errors (crm-bulk-write.md §1, §6)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from syncengine.sim import SimHandle
from tests.sim.bulk_helpers import create, job, job_body, upload, uploaded, zipped_csv
from tests.sim.conftest import Api

LEADS = [["Email", "Last_Name", "Company"], ["a@example.org", "Ada", "Acme"]]


async def test_upload_refuses_what_is_not_a_zip_with_http_200(api: Api) -> None:
    """Upload errors come as an error body under HTTP 200 (the v8 OAS reading)."""
    reply = await upload(api, b"Email,Last_Name\na@example.org,Ada\n")
    assert reply.status == 200
    assert (reply.body["status"], reply.body["code"]) == ("error", "INVALID_FILE_FORMAT")


async def test_upload_refuses_a_zip_of_two_files(api: Api) -> None:
    """v2 takes one CSV per ZIP."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "Last_Name\nA\n")
        archive.writestr("b.csv", "Last_Name\nB\n")
    reply = await upload(api, buffer.getvalue())
    assert reply.body["code"] == "FILE_NOT_SUPPORTED"


@pytest.mark.parametrize(
    "headers", [{"feature": "bulk-read"}, {"X-CRM-ORG": "1"}], ids=["feature", "org"]
)
async def test_upload_needs_the_feature_and_org_headers(api: Api, headers: dict[str, str]) -> None:
    """A wrong `feature` or `X-CRM-ORG` gets the bare Bad Request body."""
    reply = await upload(api, zipped_csv(LEADS), headers=headers)
    assert reply.status == 400
    assert reply.body["ERROR_CODE"] == 400
    assert "X-CRM-ORG" in reply.body["x-error"]


async def test_upload_needs_a_token_and_the_files_scope(api: Api, sim: SimHandle) -> None:
    """No token: 401; a token without ZohoFiles.files.ALL: OAUTH_SCOPE_MISMATCH."""
    reply = await upload(api, zipped_csv(LEADS), headers={"Authorization": "Zoho-oauthtoken x"})
    assert (reply.status, reply.body["code"]) == (401, "INVALID_TOKEN")
    sim.state.set_config({"scopes": ["ZohoCRM.modules.ALL", "ZohoCRM.bulk.ALL"]})
    reply = await upload(api, zipped_csv(LEADS))
    assert (reply.status, reply.body["code"]) == (401, "OAUTH_SCOPE_MISMATCH")


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


async def test_create_job_errors(api: Api) -> None:
    """Each documented create-job error for the body that earns it."""
    file_id = await uploaded(api, LEADS)
    base = job_body(file_id)
    resource = base["resource"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        (_without(base, "operation"), "MISSING_REQUIRED_KEY"),
        ({**base, "operation": "merge"}, "INVALID_DATA"),
        (job_body(file_id, "update"), "MANDATORY_NOT_FOUND"),
        (job_body(file_id, "upsert", find_by="Company"), "INVALID_DATA"),
        (job_body(file_id, module="Nope"), "MODULE_NOT_AVAILABLE"),
        (job_body("123"), "INVALID_FILE_ID"),
        ({**base, "resource": [_without(resource, "file_id")]}, "MISSING_REQUIRED_KEY"),
        (job_body(file_id, mappings=[{"api_name": "Nope", "index": 0}]), "INVALID_FIELD"),
        (job_body(file_id, mappings=[{"api_name": "Email", "index": 9}]), "COLUMN_INDEX_NOT_FOUND"),
        (
            job_body(file_id, mappings=[{"api_name": "Email", "index": 0, "format": "yyyy"}]),
            "INVALID_FORMAT",
        ),
        (
            job_body(file_id, mappings=[{"api_name": "Email", "index": 0}]),
            "MANDATORY_FIELDS_NOT_MAPPED",
        ),
        ({**base, "callback": {"url": "ftp://x", "method": "post"}}, "INVALID_CALLBACK_URL"),
        (
            {**base, "callback": {"url": "https://x.example", "method": "get"}},
            "INVALID_CALLBACK_METHOD",
        ),
    ]
    for body, code in cases:
        reply = await create(api, body)
        assert (reply.status, reply.body["code"]) == (400, code), body


async def test_missing_key_names_its_json_path(api: Api) -> None:
    """MISSING_REQUIRED_KEY says which key, as `details.json_path`."""
    reply = await create(api, {"resource": []})
    assert reply.body["details"] == {"json_path": "$.operation"}
    assert reply.body["message"] == "required key operation is not found in request body."


async def test_more_than_200_columns_is_refused(api: Api) -> None:
    """HEADER_LIMIT_EXCEEDED past 200 columns."""
    header = ["Last_Name", "Company"] + [f"Extra_{n}" for n in range(199)]
    file_id = await uploaded(api, [header, ["A", "B"] + [""] * 199])
    mappings = [{"api_name": "Last_Name", "index": 0}, {"api_name": "Company", "index": 1}]
    reply = await create(api, job_body(file_id, mappings=mappings))
    assert (reply.status, reply.body["code"]) == (400, "HEADER_LIMIT_EXCEEDED")


async def test_job_needs_the_bulk_scope(api: Api, sim: SimHandle) -> None:
    """Without ZohoCRM.bulk.* the job is refused OAUTH_SCOPE_MISMATCH."""
    file_id = await uploaded(api, LEADS)
    sim.state.set_config({"scopes": ["ZohoCRM.modules.ALL"]})
    reply = await create(api, job_body(file_id))
    assert (reply.status, reply.body["code"]) == (401, "OAUTH_SCOPE_MISMATCH")


async def test_unknown_job_is_resource_not_found(api: Api) -> None:
    """404 RESOURCE_NOT_FOUND for a job id nobody created."""
    reply = await job(api, "4876876000999999999")
    assert (reply.status, reply.body["code"]) == (404, "RESOURCE_NOT_FOUND")


async def test_module_object_form_is_accepted_and_echoed(api: Api) -> None:
    """v2.1+ sends `module` as `{"api_name"}`; the details echo that form."""
    file_id = await uploaded(api, LEADS)
    reply = await create(api, job_body(file_id, module={"api_name": "Leads"}))
    assert reply.status == 201
    details = (await job(api, reply.body["details"]["id"])).body
    assert details["resource"][0]["module"] == {"api_name": "Leads"}
