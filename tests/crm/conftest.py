"""Shared helpers for the CRM client tests: a client stack wired to a simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from syncengine.crm.auth import TokenProvider
from syncengine.crm.client import CrmClient, make_session
from syncengine.crm.token_store import MemoryTokenStore, TokenStore
from syncengine.limits import Limiter

DEMO_CLIENT_ID = "demo-client"
DEMO_SECRET = "demo-secret"
DEMO_REFRESH = "demo-refresh"
ID_START = 4876876000000000001


@dataclass
class FakeTime:
    """Wall clock and sleep for the token provider: time moves only when told."""

    now: float = 1_800_000_000.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class Stack:
    """One engine's worth of client objects talking to one simulator."""

    session: aiohttp.ClientSession
    tokens: TokenProvider
    limiter: Limiter
    client: CrmClient


async def admin(base_url: str, method: str, path: str, body: Any = None) -> Any:
    """Call a simulator admin endpoint with a throwaway session; the decoded answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{base_url}/__admin/{path}", data=None if body is None else orjson.dumps(body)
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return orjson.loads(await response.read())


async def seed(base_url: str, count: int, *, module: str = "Leads") -> list[str]:
    """Seed `count` valid records with consecutive ids; their ids."""
    await admin(base_url, "POST", "seed", {"module": module, "count": count, "id_start": ID_START})
    return [str(ID_START + n) for n in range(count)]


async def stats(base_url: str) -> dict[str, Any]:
    """The simulator's counters."""
    result: dict[str, Any] = await admin(base_url, "GET", "stats")
    return result


async def records(base_url: str, module: str = "Leads") -> dict[str, Any]:
    """The simulator's stored records of `module`, by id."""
    result: dict[str, Any] = (await admin(base_url, "GET", f"records?module={module}"))[module]
    return result


@asynccontextmanager
async def crm_stack(
    base_url: str,
    *,
    concurrency: int = 10,
    store: TokenStore | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    total_timeout_s: float = 10.0,
    refresh_token: str = DEMO_REFRESH,
    client_id: str = DEMO_CLIENT_ID,
    session: aiohttp.ClientSession | None = None,
    limiter: Limiter | None = None,
    client_sleep: Callable[[float], Awaitable[None]] | None = None,
    configured_module: str | None = None,
) -> AsyncIterator[Stack]:
    """A session, token provider, limiter and client for `base_url`; closed on exit."""
    own = session is None
    http = session or make_session(concurrency=concurrency, connect_timeout_s=5.0)
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    if sleep is not None:
        extra["sleep"] = sleep
    try:
        tokens = TokenProvider(
            session=http,
            accounts_url=base_url,
            client_id=client_id,
            client_secret=DEMO_SECRET,
            refresh_token=refresh_token,
            store=store if store is not None else MemoryTokenStore(),
            **extra,
        )
        limits = limiter or Limiter(concurrency=concurrency)
        client = CrmClient(
            session=http,
            api_domain=base_url,
            tokens=tokens,
            limiter=limits,
            total_timeout_s=total_timeout_s,
            backoff_base_s=0.005,
            backoff_cap_s=0.05,
            sleep=client_sleep or asyncio.sleep,
            configured_module=configured_module,
        )
        yield Stack(http, tokens, limits, client)
    finally:
        if own:
            await http.close()
