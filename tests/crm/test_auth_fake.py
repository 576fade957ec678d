"""TokenProvider against a scripted accounts server, for answers the simulator never gives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from syncengine.crm.auth import TokenProvider, lifetime_s, merge_mints, refresh_margin_s
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.errors import AuthenticationError, TransportError
from tests.crm.conftest import DEMO_CLIENT_ID, DEMO_REFRESH, DEMO_SECRET, FakeTime

Reply = Callable[[int], Awaitable[web.StreamResponse] | web.StreamResponse]


@asynccontextmanager
async def accounts_server(
    reply: Reply, seen: list[web.Request] | None = None
) -> AsyncIterator[str]:
    """A loopback token endpoint answering call n (from 0) with `reply(n)`."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        await request.post()
        if seen is not None:
            seen.append(request)
        calls += 1
        result = reply(calls - 1)
        if isinstance(result, web.StreamResponse):
            return result
        return await result

    app = web.Application()
    app.router.add_post("/oauth/v2/token", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def provider(
    session: aiohttp.ClientSession, url: str, fake: FakeTime, **kw: float
) -> TokenProvider:
    return TokenProvider(
        session=session,
        accounts_url=url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_SECRET,
        refresh_token=DEMO_REFRESH,
        store=MemoryTokenStore(),
        clock=fake.clock,
        sleep=fake.sleep,
        **kw,  # type: ignore[arg-type]
    )


OK = {"access_token": "1000.tok", "api_domain": "https://www.zohoapis.eu", "expires_in": 3600}


async def test_secrets_go_in_a_form_body_not_the_url() -> None:
    """The grant's secrets travel in a form-encoded body; the URL carries none."""
    seen: list[web.Request] = []
    fake = FakeTime()
    async with (
        accounts_server(lambda n: web.json_response(OK), seen) as url,
        aiohttp.ClientSession() as session,
    ):
        token = await provider(session, url, fake).token()
    assert token == "1000.tok"
    assert seen[0].query_string == ""
    assert seen[0].content_type == "application/x-www-form-urlencoded"
    form = await seen[0].post()
    assert form["client_secret"] == DEMO_SECRET
    assert form["grant_type"] == "refresh_token"


async def test_answer_without_access_token_is_fatal() -> None:
    """A 200 body with neither access_token nor error is an AuthenticationError."""
    fake = FakeTime()
    no_token = web.json_response({"expires_in": 3600})
    async with accounts_server(lambda n: no_token) as url, aiohttp.ClientSession() as session:
        with pytest.raises(AuthenticationError, match="no access_token"):
            await provider(session, url, fake).token()


async def test_error_text_echoing_a_secret_is_redacted() -> None:
    """Even if the server echoes the secret in its error, the exception text does not."""
    fake = FakeTime()
    body = {"error": f"invalid_client_secret {DEMO_SECRET}"}
    async with (
        accounts_server(lambda n: web.json_response(body, status=400)) as url,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(AuthenticationError) as caught:
            await provider(session, url, fake).token()
    assert DEMO_SECRET not in str(caught.value)
    assert "invalid_client_secret" in str(caught.value)


async def test_server_errors_are_retried_then_reported_as_transport() -> None:
    """5xx and non-JSON answers are retried a few times; then TransportError, not fatal."""
    fake = FakeTime()
    async with (
        accounts_server(lambda n: web.Response(status=502, text="<html>")) as url,
        aiohttp.ClientSession() as session,
    ):
        tokens = provider(session, url, fake)
        with pytest.raises(TransportError):
            await tokens.token()
    assert tokens.token_calls == 3
    assert fake.slept == [1.0, 2.0]


async def test_one_server_error_then_success() -> None:
    """A transient failure followed by a good answer yields the token."""
    fake = FakeTime()

    def reply(n: int) -> web.StreamResponse:
        return web.Response(status=500) if n == 0 else web.json_response(OK)

    async with accounts_server(reply) as url, aiohttp.ClientSession() as session:
        tokens = provider(session, url, fake)
        assert await tokens.token() == "1000.tok"
    assert tokens.api_domain == "https://www.zohoapis.eu"
    assert tokens.mints == 1


async def test_token_call_has_a_timeout() -> None:
    """A token endpoint that hangs is abandoned after timeout_s (airbyte's hung sync)."""
    fake = FakeTime()

    async def hang() -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response(OK)

    async with accounts_server(lambda n: hang()) as url, aiohttp.ClientSession() as session:
        tokens = provider(session, url, fake, timeout_s=0.05, transient_tries=1)
        with pytest.raises(TransportError, match="timeout"):
            await tokens.token()


def test_lifetime_units() -> None:
    """expires_in is seconds; with expires_in_sec present it is milliseconds."""
    assert lifetime_s({"expires_in": 3600}) == 3600.0
    assert lifetime_s({"expires_in": 3600000, "expires_in_sec": 3600}) == 3600.0
    assert lifetime_s({"expires_in_sec": 1800}) == 1800.0
    assert lifetime_s({}) == 3600.0


def test_refresh_margin() -> None:
    """Refresh 5 minutes early, or a tenth of the lifetime when that is shorter."""
    assert refresh_margin_s(3600.0) == 300.0
    assert refresh_margin_s(2.0) == pytest.approx(0.2)


def test_merge_mints_keeps_equal_times() -> None:
    """Two views of one history merge without collapsing calls made at the same instant."""
    assert merge_mints((1.0, 1.0, 2.0), (1.0, 3.0)) == (1.0, 1.0, 2.0, 3.0)
