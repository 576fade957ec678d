"""Deletes through the client: against the simulator, and the wire form on a loopback app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

from syncengine.crm.client import WriteRequest
from syncengine.crm.deletes import ALREADY_DELETED
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack, records, seed


def delete(ids: list[str], trigger: tuple[str, ...] | None = ()) -> WriteRequest:
    return WriteRequest("Leads", Operation.DELETE, [{"id": i} for i in ids], trigger=trigger)


async def test_a_delete_removes_the_records_and_a_gone_one_is_already_deleted() -> None:
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 4)
        first = await stack.client.write(delete(ids[:3]))
        again = await stack.client.write(delete([ids[0], ids[3]]))
        stored = await records(sim.base_url)
    assert [(o.verdict, o.code, o.crm_id) for o in first] == [
        (Verdict.SYNCED, "SUCCESS", record_id) for record_id in ids[:3]
    ]
    assert [(o.verdict, o.code) for o in again] == [
        (Verdict.SYNCED, ALREADY_DELETED),
        (Verdict.SYNCED, "SUCCESS"),
    ]
    assert stored == {}


async def test_a_hundred_ids_go_in_one_call() -> None:
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 100)
        outcomes = await stack.client.write(delete(ids))
        assert await records(sim.base_url) == {}
    assert stack.client.stats.requests == 1
    assert {o.code for o in outcomes} == {"SUCCESS"}


@asynccontextmanager
async def capture() -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    """Token endpoint plus `DELETE /crm/v2/Leads` that records each request and deletes all."""
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "1000.fake", "expires_in": 3600})

    async def remove(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(await request.read())
        data = [
            {"code": "SUCCESS", "status": "success", "message": "record deleted",
             "details": {"id": i}}
            for i in request.query["ids"].split(",")
        ]  # fmt: skip
        return web.Response(body=orjson.dumps({"data": data}), status=200)

    app = web.Application()
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_delete("/crm/v2/Leads", remove)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen, bodies
    finally:
        await runner.cleanup()


async def test_ids_and_wf_trigger_go_in_the_query_with_no_body() -> None:
    async with capture() as (base, seen, bodies), crm_stack(base) as stack:
        await stack.client.write(delete(["11", "12"], trigger=()))
        await stack.client.write(delete(["13"], trigger=None))
        await stack.client.write(delete(["14"], trigger=("workflow",)))
    assert [dict(request.query) for request in seen] == [
        {"ids": "11,12", "wf_trigger": "false"},
        {"ids": "13", "wf_trigger": "true"},
        {"ids": "14", "wf_trigger": "true"},
    ]
    assert bodies == [b"", b"", b""]
    assert all(r.headers["Authorization"].startswith("Zoho-oauthtoken ") for r in seen)
