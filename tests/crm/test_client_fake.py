"""CrmClient against a scripted records server, for answers the simulator never gives.

Zoho documents no `Retry-After` and the simulator sends none; a real proxy or
a later API version may, and broken intermediaries can garble bodies. These
shapes come from a tiny loopback app; everything else is tested on the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
from aiohttp import web

from syncengine.crm.client import WriteRequest
from syncengine.errors import FatalError
from syncengine.model import Operation, Verdict
from tests.crm.conftest import crm_stack

Script = Callable[[int], web.Response]
TOKEN = {"access_token": "1000.fake", "expires_in": 3600}


@asynccontextmanager
async def records_server(script: Script) -> AsyncIterator[str]:
    """Token endpoint plus `PUT /crm/v2/Leads` answering write n (from 0) with `script(n)`."""
    writes = 0

    async def token(request: web.Request) -> web.Response:
        return web.json_response(TOKEN)

    async def write(request: web.Request) -> web.Response:
        nonlocal writes
        await request.read()
        writes += 1
        return script(writes - 1)

    app = web.Application()
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_put("/crm/v2/Leads", write)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def ok(count: int) -> web.Response:
    """Success for the records `request_of(count)` sends (ids "0".."count-1", in order)."""
    data = [
        {"code": "SUCCESS", "status": "success", "message": "record updated",
         "details": {"id": str(n)}}
        for n in range(count)
    ]  # fmt: skip
    return web.Response(body=orjson.dumps({"data": data}), status=200)


def request_of(count: int) -> WriteRequest:
    return WriteRequest("Leads", Operation.UPDATE, [{"id": str(n)} for n in range(count)])


async def test_retry_after_overrides_the_backoff() -> None:
    """A 429 carrying Retry-After: 7 waits exactly 7 s (not a jittered backoff), then resends."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    def script(n: int) -> web.Response:
        if n == 0:
            return web.json_response(
                {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "m", "status": "error"},
                status=429,
                headers={"Retry-After": "7"},
            )
        return ok(2)

    async with records_server(script) as url, crm_stack(url, client_sleep=fake_sleep) as stack:
        outcomes = await stack.client.write(request_of(2))
    assert [o.verdict for o in outcomes] == [Verdict.SYNCED] * 2
    assert slept == [7.0]
    assert stack.client.stats.throttled == 1


@pytest.mark.parametrize(
    "response",
    [
        web.Response(body=b'{"data": [', status=200),
        web.Response(body=orjson.dumps({"data": [{"code": "SUCCESS"}]}), status=200),
        web.Response(status=204),
    ],
    ids=["unparsable", "count-mismatch", "no-content"],
)
async def test_bad_answers_are_transient_for_every_record(response: web.Response) -> None:
    """An unparsable body, a count mismatch or no body: BAD_RESPONSE, never a success."""
    async with records_server(lambda n: response) as url, crm_stack(url) as stack:
        outcomes = await stack.client.write(request_of(3))
    assert {(o.verdict, o.code) for o in outcomes} == {(Verdict.RETRY, "BAD_RESPONSE")}


async def test_authentication_failure_twice_is_fatal() -> None:
    """401 AUTHENTICATION_FAILURE is refreshed once; the same answer again stops the run."""
    body = {"code": "AUTHENTICATION_FAILURE", "details": {}, "message": "m", "status": "error"}
    async with (
        records_server(lambda n: web.json_response(body, status=401)) as url,
        crm_stack(url) as stack,
    ):
        with pytest.raises(FatalError, match="AUTHENTICATION_FAILURE"):
            await stack.client.write(request_of(1))
    assert stack.client.stats.token_refreshes == 1
    assert stack.tokens.mints == 2
