"""AIMD against a simulator capped at 5 concurrent calls while the client is asked for 20."""

from __future__ import annotations

import asyncio

import pytest

from syncengine.crm.client import WriteRequest
from syncengine.limits import Limiter
from syncengine.model import Operation, RecordOutcome, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import crm_stack, seed, stats

#: The bound this test pins: the first wave's overshoot (15) plus a few stragglers.
MAX_429S = 25


async def test_load_converges_under_the_cap_with_bounded_429s() -> None:
    """Every record syncs, 429s stay bounded, and once converged in-flight stays ≤ 5."""
    chunks_total, per_chunk, senders = 120, 5, 20
    async with running_simulator(admin=True, concurrency=5, latency_ms=10.0, jitter_ms=5.0) as sim:
        ids = await seed(sim.base_url, chunks_total * per_chunk)
        queue: asyncio.Queue[list[str]] = asyncio.Queue()
        for n in range(chunks_total):
            queue.put_nowait(ids[n * per_chunk : (n + 1) * per_chunk])
        limiter = Limiter(concurrency=senders)
        outcomes: list[RecordOutcome] = []
        done = 0
        converged_at: dict[str, int] = {}
        async with crm_stack(sim.base_url, concurrency=senders, limiter=limiter) as stack:

            async def sender() -> None:
                nonlocal done
                while not queue.empty():
                    chunk = queue.get_nowait()
                    batch = [{"id": i, "Company": "Converged"} for i in chunk]
                    outcomes.extend(
                        await stack.client.write(WriteRequest("Leads", Operation.UPDATE, batch))
                    )
                    done += 1
                    if done == 20:  # converged: restart the simulator's peak counter
                        converged_at["throttled"] = sim.state.stats.throttled
                        sim.state.stats.max_in_flight = sim.state.stats.in_flight

            await asyncio.gather(*(sender() for _ in range(senders)))
        counts = await stats(sim.base_url)
    throttled = counts["throttled"]
    print(
        f"429s: {throttled} total, {throttled - converged_at['throttled']} after convergence; "
        f"client limit settled at {limiter.limit}; peak in flight after convergence "
        f"{counts['max_in_flight']}"
    )
    assert len(outcomes) == chunks_total * per_chunk
    assert {o.verdict for o in outcomes} == {Verdict.SYNCED}
    assert throttled <= MAX_429S
    assert throttled == stack.client.stats.throttled
    assert counts["max_in_flight"] <= 5
    assert throttled - converged_at["throttled"] == 0


async def test_heavy_writes_never_exceed_ten_in_flight() -> None:
    """Writes of 100 records stay ≤ 10 in flight at concurrency 20: no 429 from the heavy cap."""
    async with running_simulator(admin=True, concurrency=20, latency_ms=10.0) as sim:
        ids = await seed(sim.base_url, 2000)
        async with crm_stack(sim.base_url, concurrency=20) as stack:
            batches = [
                [{"id": i, "Company": "Heavy"} for i in ids[n : n + 100]]
                for n in range(0, 2000, 100)
            ]
            results = await asyncio.gather(
                *(stack.client.write(WriteRequest("Leads", Operation.UPDATE, b)) for b in batches)
            )
        counts = await stats(sim.base_url)
    assert all(o.verdict is Verdict.SYNCED for result in results for o in result)
    assert counts["throttled"] == 0
    assert stack.limiter.max_in_flight == 10


async def test_credit_reserve_pauses_before_the_org_runs_dry() -> None:
    """When X-API-CREDITS-REMAINING reaches reserve_credits, the limiter pauses the senders."""
    slept: list[float] = []
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = Limiter(concurrency=1, reserve_credits=8, clock=lambda: now[0], sleep=fake_sleep)
    async with running_simulator(admin=True, credits=20) as sim:
        ids = await seed(sim.base_url, 10)
        async with crm_stack(sim.base_url, concurrency=1, limiter=limiter) as stack:
            for _ in range(13):
                batch = [{"id": i, "Company": "C"} for i in ids]
                await stack.client.write(WriteRequest("Leads", Operation.UPDATE, batch))
        counts = await stats(sim.base_url)
    assert stack.client.stats.credits_remaining == 7
    assert slept == [600.0]  # one pause once 8 credits were left, before the 13th write
    assert counts["credits_used"] == 13


async def test_spent_credits_cause_a_long_pause_then_the_write_goes_through() -> None:
    """429s with one request in flight (credits spent) pause long; when credits return, it syncs."""
    async with running_simulator(admin=True, credits=1) as sim:
        pauses: list[float] = []

        async def limiter_sleep(seconds: float) -> None:
            pauses.append(seconds)
            sim.state.clock.advance(86_400.0)  # the credit window rolls over during the pause

        async def client_sleep(seconds: float) -> None:
            return None

        limiter = Limiter(concurrency=4, sleep=limiter_sleep, clock=sim.state.clock.now)
        ids = await seed(sim.base_url, 1)
        async with crm_stack(
            sim.base_url, concurrency=4, limiter=limiter, client_sleep=client_sleep
        ) as stack:
            batch = [{"id": ids[0], "Company": "C"}]
            first = await stack.client.write(WriteRequest("Leads", Operation.UPDATE, batch))
            second = await stack.client.write(WriteRequest("Leads", Operation.UPDATE, batch))
        counts = await stats(sim.base_url)
    assert first[0].verdict is Verdict.SYNCED
    assert second[0].verdict is Verdict.SYNCED
    assert counts["throttled"] == 3
    assert len(pauses) == 1
    assert pauses[0] == pytest.approx(60.0, abs=0.5)
    assert limiter.long_pauses == 1
