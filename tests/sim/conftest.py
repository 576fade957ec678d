"""Fixtures for simulator tests: a live simulator on 127.0.0.1:0 and a raw HTTP client.

Tests talk to the simulator with plain aiohttp requests (never through the
engine's own CRM client) so they pin the wire shapes themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from syncengine.sim import SimHandle, running_simulator

LEAD_ID_START = 4_876_876_000_000_000_001
TOKEN_FORM = {
    "grant_type": "refresh_token",
    "client_id": "demo-client",
    "client_secret": "demo-secret",
    "refresh_token": "demo-refresh",
}


@dataclass
class Reply:
    """One HTTP answer: status, decoded JSON body (None when empty), headers."""

    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Api:
    """A thin raw-HTTP client for one simulator."""

    sim: SimHandle
    session: aiohttp.ClientSession
    token: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        params: dict[str, str] | None = None,
    ) -> Reply:
        """Send a request; JSON bodies go out with a JSON content type."""
        sent = dict(headers or {})
        if auth:
            sent.setdefault("Authorization", f"Zoho-oauthtoken {await self.access_token()}")
        data = raw
        if body is not None:
            data = orjson.dumps(body)
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.sim.base_url + path, data=data, headers=sent, params=params
        ) as resp:
            text = await resp.read()
            decoded = orjson.loads(text) if text else None
            return Reply(resp.status, decoded, dict(resp.headers))

    async def mint(self, **overrides: str) -> Reply:
        """Ask the token endpoint with the demo form, fields replaced by `overrides`."""
        form = {**TOKEN_FORM, **overrides}
        async with self.session.post(self.sim.token_url, data=form) as resp:
            return Reply(resp.status, await resp.json(), dict(resp.headers))

    async def access_token(self) -> str:
        """A token minted once per test and reused."""
        if self.token is None:
            reply = await self.mint()
            self.token = str(reply.body["access_token"])
        return self.token

    async def admin(self, method: str, path: str, body: Any = None) -> Reply:
        """Call an admin endpoint (no auth)."""
        return await self.request(method, f"/__admin/{path}", body=body, auth=False)

    async def seed_leads(self, count: int, id_start: int = LEAD_ID_START) -> list[str]:
        """Seed `count` valid Leads with consecutive ids; returns them."""
        reply = await self.admin(
            "POST", "seed", {"module": "Leads", "count": count, "id_start": id_start}
        )
        assert reply.status == 200
        return [str(id_start + n) for n in range(count)]

    async def record(self, module: str, record_id: str) -> dict[str, Any]:
        """A record as the admin view shows it (fields and writes)."""
        reply = await self.admin("GET", f"records?module={module}")
        return dict(reply.body[module][record_id])

    async def stats(self) -> dict[str, Any]:
        """The admin counters."""
        return dict((await self.admin("GET", "stats")).body)


@pytest.fixture
async def sim() -> AsyncIterator[SimHandle]:
    """A simulator with admin endpoints on a free loopback port."""
    async with running_simulator(admin=True) as handle:
        yield handle


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def api(sim: SimHandle, session: aiohttp.ClientSession) -> Api:
    """A raw-HTTP client bound to the `sim` fixture."""
    return Api(sim, session)
