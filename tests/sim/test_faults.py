"""Seeded latency and faults: 500, dropped connections, stalls, locked records."""

from __future__ import annotations

import time

import aiohttp
import pytest

from syncengine.sim import SimConfig, SimHandle, running_simulator
from syncengine.sim.faults import Fault, FaultPlan
from tests.sim.conftest import LEAD_ID_START, Api

ID1 = str(LEAD_ID_START)


async def fate_sequence(api: Api, rounds: int) -> list[tuple[int, str]]:
    """Status and first code of `rounds` sequential one-record updates."""
    out = []
    for _ in range(rounds):
        reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}]})
        body = reply.body
        code = body["data"][0]["code"] if "data" in body else body["code"]
        out.append((reply.status, code))
    return out


async def test_same_seed_repeats_faults_exactly(api: Api, session: aiohttp.ClientSession) -> None:
    """The same seed and request sequence give the same faults, also in a new simulator."""
    knobs = {"fault_500": 0.3, "fault_locked": 0.3, "seed": 7}
    api.sim.state.set_config(knobs)
    await api.seed_leads(1)
    await api.access_token()
    first = await fate_sequence(api, 30)
    assert {s for s, _ in first} == {200, 400, 500}
    await api.admin("POST", "reset")
    api.token = None
    await api.seed_leads(1)
    await api.access_token()
    assert await fate_sequence(api, 30) == first
    async with running_simulator(admin=True, **knobs) as other:  # type: ignore[arg-type]
        other_api = Api(other, session)
        await other_api.seed_leads(1)
        assert await fate_sequence(other_api, 30) == first


async def test_other_seed_gives_other_faults(api: Api) -> None:
    """A different seed gives a different sequence of faults."""
    api.sim.state.set_config({"fault_500": 0.5, "seed": 1})
    await api.seed_leads(1)
    one = await fate_sequence(api, 30)
    api.sim.state.set_config({"seed": 2})
    assert await fate_sequence(api, 30) != one


def test_latency_stream_is_seeded() -> None:
    """Jittered latencies repeat for a seed and include the per-record cost."""
    config = SimConfig(latency_ms=10, jitter_ms=50, per_record_ms=1)
    delays = [FaultPlan(3).decide(config, 100).delay_s for _ in range(1)]
    plan_a, plan_b = FaultPlan(3), FaultPlan(3)
    seq_a = [plan_a.decide(config, 100).delay_s for _ in range(20)]
    seq_b = [plan_b.decide(config, 100).delay_s for _ in range(20)]
    assert seq_a == seq_b
    assert delays[0] == seq_a[0]
    assert all(0.110 <= d <= 0.160 for d in seq_a)
    assert len(set(seq_a)) == 20


def test_enabling_one_fault_does_not_shift_another() -> None:
    """Each fault draws from its own stream, so adding drops keeps the same 500s."""
    only_500 = SimConfig(fault_500=0.3)
    both = SimConfig(fault_500=0.3, fault_drop=0.2)
    plan_a, plan_b = FaultPlan(5), FaultPlan(5)
    a = [plan_a.decide(only_500, 1).fault is Fault.ERROR_500 for _ in range(50)]
    b = [plan_b.decide(both, 1).fault is Fault.ERROR_500 for _ in range(50)]
    assert a == b


async def test_500_applies_nothing(api: Api) -> None:
    """A 500 INTERNAL_ERROR leaves the records untouched."""
    await api.seed_leads(1)
    api.sim.state.set_config({"fault_500": 1.0})
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1, "Company": "Z"}]})
    assert (reply.status, reply.body["code"]) == (500, "INTERNAL_ERROR")
    assert (await api.record("Leads", ID1))["writes"] == 0


async def test_drop_closes_connection_without_answer(api: Api) -> None:
    """A dropped request gets no response at all and applies nothing."""
    await api.access_token()
    api.sim.state.set_config({"fault_drop": 1.0})
    # An insert (POST): aiohttp itself resends idempotent methods such as PUT
    # once after a disconnect, which would make the simulator see two requests.
    record = {"Last_Name": "Dropped", "Company": "Z"}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.request("POST", "/crm/v2/Leads", body={"data": [record]})
    assert (await api.admin("GET", "records?module=Leads")).body == {"Leads": {}}
    assert (await api.stats())["dropped"] == 1


async def test_stall_applies_then_outlasts_client_timeout(
    api: Api, session: aiohttp.ClientSession
) -> None:
    """A stalled write is applied but answered only after the client has given up."""
    await api.seed_leads(1)
    token = await api.access_token()
    api.sim.state.set_config({"fault_stall": 1.0, "stall_s": 5})
    with pytest.raises(TimeoutError):
        await session.put(
            f"{api.sim.base_url}/crm/v2/Leads",
            json={"data": [{"id": ID1, "Company": "Stalled"}]},
            headers={"Authorization": f"Zoho-oauthtoken {token}"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    record = await api.record("Leads", ID1)
    assert (record["fields"]["Company"], record["writes"]) == ("Stalled", 1)
    assert (await api.stats())["stalled"] == 1


async def test_locked_records_fail_alone(api: Api) -> None:
    """With fault_locked every existing record answers RECORD_LOCKED and is not written."""
    await api.seed_leads(1)
    api.sim.state.set_config({"fault_locked": 1.0})
    reply = await api.request("PUT", "/crm/v2/Leads", body={"data": [{"id": ID1}]})
    assert reply.status == 400
    assert reply.body["data"][0]["code"] == "RECORD_LOCKED"
    assert (await api.record("Leads", ID1))["writes"] == 0


async def test_per_record_latency_makes_big_chunks_slower(api: Api, sim: SimHandle) -> None:
    """Response time grows with the records a request carries (per_record_ms)."""
    await api.seed_leads(50)
    await api.access_token()
    sim.state.set_config({"per_record_ms": 4})
    started = time.perf_counter()
    body = {"data": [{"id": str(LEAD_ID_START + n)} for n in range(50)]}
    assert (await api.request("PUT", "/crm/v2/Leads", body=body)).status == 200
    assert time.perf_counter() - started >= 0.2
