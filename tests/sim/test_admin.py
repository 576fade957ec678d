"""Admin endpoints: seed, records, stats, reset, config, clock; off unless enabled."""

from __future__ import annotations

import aiohttp

from syncengine.sim import running_simulator
from tests.sim.conftest import LEAD_ID_START, Api

STATS_KEYS = {
    "requests", "by_status", "by_code", "records_written", "max_in_flight", "in_flight",
    "throttled", "token_mints", "token_refusals", "credits_used", "dropped", "stalled",
}  # fmt: skip


async def test_seed_given_records_keeps_and_generates_ids(api: Api) -> None:
    """Seeded records keep given ids (numbers too), get ids when absent, start at 0 writes."""
    reply = await api.admin(
        "POST",
        "seed",
        {"module": "Contacts", "records": [{"id": 4876876000000000077, "Last_Name": "A"}, {}]},
    )
    ids = reply.body["ids"]
    assert ids[0] == "4876876000000000077"
    assert len(ids[1]) == 19
    view = (await api.admin("GET", "records?module=Contacts")).body
    assert view["Contacts"][ids[0]] == {"fields": {"Last_Name": "A"}, "writes": 0}


async def test_seed_count_generates_valid_records(api: Api) -> None:
    """Generated records pass every rule: updating them all succeeds."""
    ids = await api.seed_leads(100)
    body = {"data": [{"id": i} for i in ids], "apply_feature_execution": [{"name": "layout_rules"}]}
    reply = await api.request("PUT", "/crm/v2/Leads", body=body)
    assert reply.status == 200


async def test_seed_large_count_answers_count_only(api: Api) -> None:
    """More than 1,000 seeded records answer a count instead of the id list."""
    reply = await api.admin("POST", "seed", {"module": "Deals", "count": 1001})
    assert reply.body == {"count": 1001}


async def test_seed_unknown_module_is_400(api: Api) -> None:
    """Seeding an unknown module answers 400 naming the problem."""
    reply = await api.admin("POST", "seed", {"module": "Nope", "count": 1})
    assert reply.status == 400
    assert "module" in reply.body["error"]


async def test_records_view_covers_all_modules(api: Api) -> None:
    """GET records without a module lists every module."""
    await api.seed_leads(1)
    view = (await api.admin("GET", "records")).body
    assert set(view) == {"Leads", "Contacts", "Accounts", "Deals"}
    assert view["Leads"][str(LEAD_ID_START)]["writes"] == 0


async def test_stats_count_statuses_codes_and_writes(api: Api) -> None:
    """Stats count requests by status and code, and records written."""
    await api.seed_leads(2)
    body = {"data": [{"id": str(LEAD_ID_START)}, {"id": "99"}]}
    await api.request("PUT", "/crm/v2/Leads", body=body)
    await api.request("PUT", "/crm/v2/Leads", body=body, auth=False)
    stats = await api.stats()
    assert set(stats) >= STATS_KEYS
    assert stats["requests"] == 3  # token, update, refused update
    assert stats["by_status"] == {"200": 1, "202": 1, "401": 1}
    assert stats["by_code"]["AUTHENTICATION_FAILURE"] == 1
    assert stats["by_code"]["SUCCESS"] == 1
    assert stats["records_written"] == 1
    assert (stats["token_mints"], stats["credits_used"], stats["in_flight"]) == (1, 1, 0)


async def test_reset_clears_records_counters_and_optionally_config(api: Api) -> None:
    """Reset empties records and counters; with config true knobs return to their start."""
    await api.seed_leads(1)
    await api.admin("POST", "config", {"latency_ms": 5})
    await api.admin("POST", "reset")
    assert (await api.admin("GET", "records?module=Leads")).body == {"Leads": {}}
    assert (await api.stats())["requests"] == 0
    assert api.sim.config.latency_ms == 5
    await api.admin("POST", "reset", {"config": True})
    assert api.sim.config.latency_ms == 0


async def test_config_changes_knobs_and_names_unknown_ones(api: Api) -> None:
    """POST config answers the full config; an unknown knob or bad value is a named 400."""
    reply = await api.admin("POST", "config", {"concurrency": 5, "scopes": ["ZohoCRM.modules.ALL"]})
    assert reply.status == 200
    assert reply.body["concurrency"] == 5
    assert reply.body["scopes"] == ["ZohoCRM.modules.ALL"]
    assert "client_secret" in reply.body
    unknown = await api.admin("POST", "config", {"latency": 5})
    assert (unknown.status, unknown.body) == (400, {"error": "latency: unknown knob"})
    bad = await api.admin("POST", "config", {"fault_500": 2, "latency_ms": 9})
    assert bad.status == 400
    assert bad.body["error"].startswith("fault_500")
    assert api.sim.config.latency_ms == 0


async def test_clock_advance_expires_tokens(api: Api) -> None:
    """Advancing the clock through admin makes a live token expire."""
    await api.seed_leads(1)
    body = {"data": [{"id": str(LEAD_ID_START)}]}
    assert (await api.request("PUT", "/crm/v2/Leads", body=body)).status == 200
    assert (await api.admin("POST", "clock", {"advance_s": 3601})).body == {"offset_s": 3601.0}
    assert (await api.request("PUT", "/crm/v2/Leads", body=body)).status == 401


async def test_admin_is_off_by_default(session: aiohttp.ClientSession) -> None:
    """Without the admin switch, admin paths are unknown URLs (404)."""
    async with running_simulator() as sim, session.get(f"{sim.base_url}/__admin/stats") as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "INVALID_URL_PATTERN"
