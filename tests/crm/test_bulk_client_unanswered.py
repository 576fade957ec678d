"""Create-job requests without a clear answer: an insert is not sent twice, an update is.

A small in-process server stands in for the CRM (the simulator has no fault
for job creation): it drops the first create-job request's connection and
answers the next ones, counting what arrived. It also serves a job whose
result URL points at another host, which the client must not send its
token to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp import web

from syncengine.crm.auth import TokenProvider
from syncengine.crm.bulk_answers import BulkJobUnknownError, BulkRefusedError
from syncengine.crm.bulk_csv import find_by_for, plan_files
from syncengine.crm.bulk_write import BulkWriteClient
from syncengine.crm.origin import ApiDomainMismatchError
from syncengine.crm.session import make_session
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.model import Operation


@dataclass
class Crm:
    """What the stand-in received."""

    base_url: str = ""
    creates: int = 0
    token_domain: str | None = None  # the token answer's api_domain; None: this server


def _app(crm: Crm) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "access_token": "t",
                "expires_in": 3600,
                "api_domain": crm.token_domain or crm.base_url,
            }
        )

    async def create(request: web.Request) -> web.Response:
        crm.creates += 1
        if crm.creates == 1 and request.transport is not None:
            request.transport.abort()
        details = {"id": "4876876000006000001", "created_by": {"id": "1", "name": "x"}}
        body = {"status": "success", "code": "SUCCESS", "message": "success", "details": details}
        return web.json_response(body, status=201)

    async def job(request: web.Request) -> web.Response:
        url = "https://attacker.example/result.zip"
        return web.json_response({"status": "COMPLETED", "result": {"download_url": url}})

    app = web.Application()
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_post("/crm/bulk/v2/write", create)
    app.router.add_get("/crm/bulk/v2/write/{job_id}", job)
    return app


@asynccontextmanager
async def stand_in(crm: Crm | None = None) -> AsyncIterator[tuple[Crm, BulkWriteClient]]:
    crm = crm or Crm()
    runner = web.AppRunner(_app(crm), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    crm.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    session = make_session(concurrency=2, connect_timeout_s=5.0)

    async def no_wait(seconds: float) -> None:
        return None

    try:
        tokens = TokenProvider(
            session=session,
            accounts_url=crm.base_url,
            client_id="c",
            client_secret="s",
            refresh_token="r",
            store=MemoryTokenStore(),
        )
        yield (
            crm,
            BulkWriteClient(
                session=session,
                api_domain=crm.base_url,
                upload_url=crm.base_url,
                tokens=tokens,
                org_id="694902309",
                sleep=no_wait,
            ),
        )
    finally:
        await session.close()
        await runner.cleanup()


async def test_unanswered_insert_job_is_not_created_again() -> None:
    """An insert job whose creation got no answer raises BulkJobUnknownError after one try."""
    file = plan_files("Leads", Operation.INSERT, [{"Last_Name": "X"}], find_by=None).files[0]
    async with stand_in() as (crm, client):
        with pytest.raises(BulkJobUnknownError, match="insert every row twice"):
            await client.create_job(file, "4876876000005000001")
    assert crm.creates == 1


async def test_unanswered_update_job_is_created_again() -> None:
    """An update job may be sent again: the same values applied twice change nothing."""
    records = [{"id": "4876876000000000001", "Company": "X"}]
    find_by = find_by_for("Leads", Operation.UPDATE)
    file = plan_files("Leads", Operation.UPDATE, records, find_by=find_by).files[0]
    async with stand_in() as (crm, client):
        assert await client.create_job(file, "4876876000005000001") == "4876876000006000001"
    assert crm.creates == 2


async def test_token_is_not_sent_to_a_foreign_download_host() -> None:
    """A download_url outside the CRM's and Zoho's hosts is refused before any request."""
    async with stand_in() as (_, client):
        status = await client.status("4876876000006000001")
        with pytest.raises(BulkRefusedError, match=r"attacker\.example"):
            await client.download_result(status)


async def test_another_data_centre_stops_before_sending() -> None:
    """A token answer naming another api_domain is the config error, raised before the call."""
    crm = Crm(token_domain="https://www.zohoapis.eu")
    async with stand_in(crm) as (_, client):
        with pytest.raises(ApiDomainMismatchError, match=r"zohoapis\.eu"):
            await client.status("4876876000006000001")
