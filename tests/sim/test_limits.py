"""Limits: 429 at once on concurrency, the heavy-write cap, and the credit ledger."""

from __future__ import annotations

import asyncio
import time

from syncengine.sim import SimHandle
from tests.sim.conftest import LEAD_ID_START, Api, Reply


def update_body(count: int) -> dict[str, object]:
    """An update of the first `count` seeded Leads."""
    return {"data": [{"id": str(LEAD_ID_START + n)} for n in range(count)]}


async def timed(api: Api, count: int) -> tuple[Reply, float]:
    """An update of `count` records and how long its answer took, in seconds."""
    started = time.perf_counter()
    reply = await api.request("PUT", "/crm/v2/Leads", body=update_body(count))
    return reply, time.perf_counter() - started


async def test_over_concurrency_is_429_at_once(api: Api, sim: SimHandle) -> None:
    """Past the concurrency limit requests get 429 immediately instead of queueing."""
    await api.seed_leads(1)
    await api.access_token()
    sim.state.set_config({"concurrency": 2, "latency_ms": 300})
    results = await asyncio.gather(*(timed(api, 1) for _ in range(5)))
    ok = [elapsed for reply, elapsed in results if reply.status == 200]
    throttled = [(reply, elapsed) for reply, elapsed in results if reply.status == 429]
    assert len(ok) == 2
    assert len(throttled) == 3
    assert all(elapsed >= 0.29 for elapsed in ok)
    assert all(elapsed < 0.2 for _, elapsed in throttled)
    body = throttled[0][0].body
    assert (body["code"], body["status"]) == ("TOO_MANY_REQUESTS", "error")
    stats = await api.stats()
    assert stats["throttled"] == 3
    assert stats["max_in_flight"] >= 2  # 429s are answered at once, so they rarely overlap


async def test_heavy_writes_have_their_own_cap(api: Api, sim: SimHandle) -> None:
    """Writes of more than 10 records share a separate cap; small writes are not held by it."""
    await api.seed_leads(11)
    await api.access_token()
    sim.state.set_config({"heavy_concurrency": 2, "latency_ms": 300})
    heavy = [timed(api, 11) for _ in range(3)]
    light = [timed(api, 10) for _ in range(2)]
    results = await asyncio.gather(*heavy, *light)
    assert sorted(reply.status for reply, _ in results[:3]) == [200, 200, 429]
    assert [reply.status for reply, _ in results[3:]] == [200, 200]


async def test_credits_run_out_then_429_and_header_past_half(api: Api, sim: SimHandle) -> None:
    """Writes cost a credit per 10 records; past half the header shows; when spent, 429."""
    await api.seed_leads(100)
    sim.state.set_config({"credits": 25})
    first, _ = await timed(api, 100)
    assert first.status == 200
    assert "X-API-CREDITS-REMAINING" not in first.headers
    second, _ = await timed(api, 100)
    assert second.headers["X-API-CREDITS-REMAINING"] == "5"
    third, _ = await timed(api, 100)
    assert third.status == 429
    assert third.body["code"] == "TOO_MANY_REQUESTS"
    small, _ = await timed(api, 1)
    assert small.status == 200
    assert (await api.stats())["credits_used"] == 21


async def test_calls_refused_before_validation_cost_nothing(api: Api, sim: SimHandle) -> None:
    """A call refused for its body (or its token) is not charged credits."""
    sim.state.set_config({"credits": 5})
    too_many = await api.request("PUT", "/crm/v2/Leads", body=update_body(101))
    assert too_many.status == 400
    unauthenticated = await api.request("PUT", "/crm/v2/Leads", body=update_body(1), auth=False)
    assert unauthenticated.status == 401
    assert (await api.stats())["credits_used"] == 0


async def test_credits_return_after_the_rolling_window(api: Api, sim: SimHandle) -> None:
    """Spent credits come back once the 24-hour window has passed."""
    await api.seed_leads(10)
    sim.state.set_config({"credits": 1, "token_ttl_s": 10**6})
    assert (await timed(api, 10))[0].status == 200
    assert (await timed(api, 10))[0].status == 429
    sim.state.clock.advance(86_400)
    assert (await timed(api, 10))[0].status == 200


async def test_fault_429_answers_at_once_with_optional_retry_after(
    api: Api, sim: SimHandle
) -> None:
    """fault_429 answers 429 immediately, applies and charges nothing; Retry-After when asked."""
    await api.seed_leads(1)
    sim.state.set_config({"fault_429": 1.0, "latency_ms": 300})
    plain, elapsed = await timed(api, 1)
    assert (plain.status, plain.body["code"]) == (429, "TOO_MANY_REQUESTS")
    assert "Retry-After" not in plain.headers
    assert elapsed < 0.2
    sim.state.set_config({"retry_after_s": 2})
    assert (await timed(api, 1))[0].headers["Retry-After"] == "2"
    record = await api.record("Leads", str(LEAD_ID_START))
    stats = await api.stats()
    assert (record["writes"], stats["credits_used"], stats["throttled"]) == (0, 0, 2)


async def test_busiest_minute_of_calls_is_recorded(api: Api, sim: SimHandle) -> None:
    """max_requests_per_minute counts records-API calls in the busiest rolling minute."""
    await api.seed_leads(1)
    for _ in range(3):
        await timed(api, 1)
    sim.state.clock.advance(61)
    for _ in range(2):
        await timed(api, 1)
    assert (await api.stats())["max_requests_per_minute"] == 3
