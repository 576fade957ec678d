"""aiohttp's silent resend of a PUT on a dropped connection: off in our sessions, counted always."""

from __future__ import annotations

import aiohttp

from syncengine.crm.client import WriteRequest
from syncengine.crm.session import send_trace_config
from syncengine.model import Operation, Verdict
from syncengine.sim.server import running_simulator
from tests.crm.conftest import admin, crm_stack, seed, stats


def one_update(record_id: str) -> WriteRequest:
    return WriteRequest("Leads", Operation.UPDATE, [{"id": record_id, "Company": "X"}])


async def test_our_session_does_not_resend_a_dropped_put() -> None:
    """A dropped PUT reaches the CRM once and comes back CONNECTION_ERROR for the engine."""
    async with running_simulator(admin=True) as sim, crm_stack(sim.base_url) as stack:
        ids = await seed(sim.base_url, 1)
        first = await stack.client.write(one_update(ids[0]))  # warms a kept-alive connection
        await admin(sim.base_url, "POST", "config", {"fault_drop": 1.0})
        second = await stack.client.write(one_update(ids[0]))
        counts = await stats(sim.base_url)
    assert first[0].verdict is Verdict.SYNCED
    assert (second[0].verdict, second[0].code) == (Verdict.RETRY, "CONNECTION_ERROR")
    assert counts["dropped"] == 1
    assert stack.client.stats.aiohttp_resends == 0


async def test_a_default_session_resend_is_counted() -> None:
    """With aiohttp's default behaviour kept, the hidden resend shows in the counters."""
    async with (
        running_simulator(admin=True) as sim,
        aiohttp.ClientSession(trace_configs=[send_trace_config()]) as session,
        crm_stack(sim.base_url, session=session) as stack,
    ):
        ids = await seed(sim.base_url, 1)
        await stack.client.write(one_update(ids[0]))
        await admin(sim.base_url, "POST", "config", {"fault_drop": 1.0})
        second = await stack.client.write(one_update(ids[0]))
        counts = await stats(sim.base_url)
    assert second[0].code == "CONNECTION_ERROR"
    assert counts["dropped"] == 2
    assert stack.client.stats.aiohttp_resends == 1
    assert stack.client.stats.requests == 2
