"""Raw-HTTP helpers for the simulator's Bulk Write API tests: zip a CSV, upload, create, poll."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import aiohttp

from tests.sim.conftest import Api, Reply

ZGID = "694902309"


def zipped_csv(rows: list[list[str]], *, name: str = "leads.csv") -> bytes:
    """A ZIP holding one CSV of `rows` (the first is the header)."""
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator="\n").writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text.getvalue())
    return buffer.getvalue()


def result_rows(payload: bytes) -> tuple[str, list[dict[str, str]]]:
    """The result ZIP's one CSV: its name and its rows by header."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (name,) = archive.namelist()
        text = archive.read(name).decode()
    return name, list(csv.DictReader(io.StringIO(text)))


async def upload(
    api: Api, payload: bytes, *, headers: dict[str, str] | None = None, part: str = "file"
) -> Reply:
    """`POST /crm/v2/upload` with the bulk-write headers (replaced by `headers`)."""
    sent = {
        "Authorization": f"Zoho-oauthtoken {await api.access_token()}",
        "feature": "bulk-write",
        "X-CRM-ORG": ZGID,
    }
    sent.update(headers or {})
    form = aiohttp.FormData()
    form.add_field(part, payload, filename="leads.zip", content_type="application/zip")
    async with api.session.post(
        api.sim.base_url + "/crm/v2/upload", data=form, headers=sent
    ) as resp:
        return Reply(resp.status, await resp.json(), dict(resp.headers))


async def uploaded(api: Api, rows: list[list[str]]) -> str:
    """Upload `rows` as a zipped CSV; the file id."""
    reply = await upload(api, zipped_csv(rows))
    assert reply.body["code"] == "FILE_UPLOAD_SUCCESS", reply.body
    return str(reply.body["details"]["file_id"])


def job_body(
    file_id: str,
    operation: str = "insert",
    *,
    find_by: str | None = None,
    mappings: list[dict[str, Any]] | None = None,
    module: Any = "Leads",
) -> dict[str, Any]:
    """A v2 create-job body with one resource."""
    resource: dict[str, Any] = {"type": "data", "module": module, "file_id": file_id}
    if find_by is not None:
        resource["find_by"] = find_by
    if mappings is not None:
        resource["field_mappings"] = mappings
    return {"operation": operation, "resource": [resource]}


async def create(api: Api, body: dict[str, Any]) -> Reply:
    """`POST /crm/bulk/v2/write`."""
    return await api.request("POST", "/crm/bulk/v2/write", body=body)


async def job(api: Api, job_id: str) -> Reply:
    """`GET /crm/bulk/v2/write/{job_id}`."""
    return await api.request("GET", f"/crm/bulk/v2/write/{job_id}")


async def download(api: Api, url: str) -> tuple[int, bytes]:
    """GET a result URL with the OAuth header: status and body."""
    headers = {"Authorization": f"Zoho-oauthtoken {await api.access_token()}"}
    async with api.session.get(url, headers=headers) as resp:
        return resp.status, await resp.read()
