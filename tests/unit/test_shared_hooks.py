"""The hooks the shared limits use: the limiter's shared slots and credits listener,
and the token provider's refresh guard, each with a fake in place of PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from syncengine.crm.auth import TokenProvider
from syncengine.crm.token_store import MemoryTokenStore
from syncengine.limits import Limiter


class FakeSharedSlots:
    """An org-wide pool of `size` slots (and 10 heavy ones) that several limiters share."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.heavy_free = 10
        self.in_flight = 0
        self.max_in_flight = 0
        self.given_back: list[object] = []
        self._changed = asyncio.Condition()

    async def take(self, *, heavy: bool) -> object:
        async with self._changed:
            await self._changed.wait_for(lambda: self.free > 0 and (not heavy or self.heavy_free))
            self.free -= 1
            self.heavy_free -= heavy
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return ("lease", heavy)

    async def give_back(self, lease: object) -> None:
        async with self._changed:
            self.given_back.append(lease)
            self.free += 1
            self.heavy_free += lease == ("lease", True)
            self.in_flight -= 1
            self._changed.notify_all()


async def test_two_limiters_sharing_slots_stay_within_the_org_limit() -> None:
    """Each limiter allows 10, the org 10: together they never pass 10."""
    shared = FakeSharedSlots(10)
    limiters = [Limiter(concurrency=10, shared=shared) for _ in range(2)]

    async def request(limiter: Limiter) -> None:
        async with limiter.slot(records=100):
            await asyncio.sleep(0.001)

    await asyncio.gather(*(request(limiters[n % 2]) for n in range(60)))

    assert shared.max_in_flight == 10
    assert limiters[0].max_in_flight + limiters[1].max_in_flight > 10
    assert len(shared.given_back) == 60
    assert shared.in_flight == 0


async def test_heavy_flag_follows_the_record_count() -> None:
    """More than 10 records is a heavy call (Zoho's sub-cap); 10 or fewer is not."""
    shared = FakeSharedSlots(10)
    limiter = Limiter(concurrency=10, shared=shared)
    for records in (10, 11):
        async with limiter.slot(records=records):
            pass
    assert shared.given_back == [("lease", False), ("lease", True)]


async def test_a_request_cancelled_while_waiting_for_a_shared_slot_keeps_nothing() -> None:
    """Its local slot is freed and no shared lease is left behind."""
    shared = FakeSharedSlots(0)
    limiter = Limiter(concurrency=2, shared=shared)

    async def wait_forever() -> None:
        async with limiter.slot(records=1):
            raise AssertionError("no shared slot was free")

    task = asyncio.create_task(wait_forever())
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert limiter.in_flight == 0
    assert shared.given_back == []


def test_credits_seen_here_go_to_the_listener_and_others_apply_without_echo() -> None:
    """Our header is published; another process's value pauses us but is not re-published."""
    heard: list[int | None] = []
    limiter = Limiter(concurrency=4, reserve_credits=100, credits_listener=heard.append)

    limiter.on_credits_remaining(5000)
    limiter.apply_credits_remaining(90)

    assert heard == [5000]
    assert limiter.limit == 1
    assert limiter.paused_until > 0


class CountingGuard:
    """A refresh guard that counts entries and is one lock, as the database's would be."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def guard(self, key: str) -> AsyncIterator[None]:
        async with self._lock:
            self.entries.append(key)
            yield


async def test_providers_sharing_a_store_and_guard_mint_once() -> None:
    """Two providers (two processes) meeting no token: one mints, the other reads it."""
    mints = 0

    async def token_endpoint(_request: web.Request) -> web.Response:
        nonlocal mints
        mints += 1
        await asyncio.sleep(0.05)  # both providers are waiting meanwhile
        return web.json_response({"access_token": f"token-{mints}", "expires_in": 3600})

    app = web.Application()
    app.router.add_post("/oauth/v2/token", token_endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    store, guard = MemoryTokenStore(), CountingGuard()
    try:
        async with aiohttp.ClientSession() as session:
            providers = [
                TokenProvider(
                    session=session,
                    accounts_url=f"http://127.0.0.1:{port}",
                    client_id="client",
                    client_secret="secret",
                    refresh_token="refresh",
                    store=store,
                    refresh_guard=guard.guard,
                )
                for _ in range(2)
            ]
            tokens = await asyncio.gather(*(p.token() for p in providers for _ in range(5)))
    finally:
        await runner.cleanup()

    assert mints == 1
    assert set(tokens) == {"token-1"}
    assert len(guard.entries) == 2  # each provider entered once; the second found the token
