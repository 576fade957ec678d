"""Isolating a poison record (a 400 without data[]) by splitting the chunk.

The simulator answers record content per record, so the whole-request 400 a
poison record causes on the real API comes from a thin loopback proxy in
front of it: requests holding the marker field get Zoho's bare error object;
everything else (tokens, the records themselves) is the real simulator.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from syncengine.crm.client import WriteRequest
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack, records, seed

MARKER = b'"Poison_Marker"'
POISON_BODY = {
    "code": "INVALID_DATA",
    "details": {"expected_data_type": "jsonobject"},
    "message": "the body could not be parsed",
    "status": "error",
}


@asynccontextmanager
async def poison_proxy(target: str) -> AsyncIterator[tuple[str, list[int]]]:
    """A proxy to `target`; yields its URL and the sizes of the write bodies it saw."""
    sizes: list[int] = []

    async with aiohttp.ClientSession() as upstream:

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            if request.path.startswith("/crm/v2/"):
                sizes.append(body.count(b'"id"'))
                if MARKER in body:
                    return web.json_response(POISON_BODY, status=400)
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            async with upstream.request(
                request.method, target + request.path_qs, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                return web.Response(
                    status=answer.status, body=payload, content_type="application/json"
                )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}", sizes
        finally:
            await runner.cleanup()


@pytest.mark.parametrize("poisoned", [[0], [37], [99], [50], [10, 80]])
async def test_poison_records_are_isolated_and_the_rest_succeed(poisoned: list[int]) -> None:
    """Only the poison records fail; the others sync, within ⌈log2 100⌉+1 extra requests each."""
    async with running_simulator(admin=True) as sim, poison_proxy(sim.base_url) as (url, sizes):
        ids = await seed(sim.base_url, 100)
        batch: list[dict[str, object]] = [{"id": i, "Company": "Fine"} for i in ids]
        for index in poisoned:
            batch[index]["Poison_Marker"] = True
        async with crm_stack(url) as stack:
            outcomes = await stack.client.write(WriteRequest("Leads", Operation.UPDATE, batch))
        stored = await records(sim.base_url)
    bad = [n for n, o in enumerate(outcomes) if o.verdict is not Verdict.SYNCED]
    assert bad == poisoned
    assert all(outcomes[n].code == "INVALID_DATA" for n in poisoned)
    assert all(outcomes[n].verdict is Verdict.REJECT for n in poisoned)
    assert sum(stored[ids[n]]["writes"] for n in range(100)) == 100 - len(poisoned)
    extra = len(sizes) - 1
    bound = math.ceil(math.log2(100)) + 1
    print(f"poison at {poisoned}: {extra} extra requests (bound {bound} per poison record)")
    assert extra <= bound * len(poisoned)
    assert max(sizes) <= 100


async def test_single_record_poison_is_rejected_without_splitting() -> None:
    """A one-record request refused as a whole rejects that record; no further requests."""
    async with running_simulator(admin=True) as sim, poison_proxy(sim.base_url) as (url, sizes):
        ids = await seed(sim.base_url, 1)
        async with crm_stack(url) as stack:
            outcomes = await stack.client.write(
                WriteRequest("Leads", Operation.UPDATE, [{"id": ids[0], "Poison_Marker": True}])
            )
    assert (outcomes[0].verdict, outcomes[0].code) == (Verdict.REJECT, "INVALID_DATA")
    assert len(sizes) == 1
