"""`/readyz` names the daemon's role on a PostgreSQL journal, and only there."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncengine.failover.standby import STANDBY_REASON, standby_ops
from syncengine.ops_server import serve_ops
from tests.daemon.test_daemon import free_port
from tests.unit.test_metrics import FakeView


async def ready_ok() -> dict[str, str | None]:
    return {"token": None, "source": None}


@pytest.mark.parametrize("role", [None, "active"])
async def test_readyz_body_has_the_role_only_when_given(role: str | None) -> None:
    async with (
        serve_ops(port=0, view=FakeView(), check_ready=ready_ok, role=role) as server,
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/readyz") as response,
    ):
        body = await response.json()
    assert response.status == 200
    expected: dict[str, object] = {"ready": True, "checks": {"token": None, "source": None}}
    if role is not None:
        expected["role"] = role
    assert body == expected


async def test_a_standby_is_healthy_not_ready_and_counts_nothing() -> None:
    port = free_port()
    async with standby_ops(port), aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 503
            assert await response.json() == {
                "ready": False,
                "role": "standby",
                "checks": {"lease": STANDBY_REASON},
            }
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        if family.name.startswith("syncengine_")
        for sample in family.samples
    ]
    assert samples
    assert all(sample.value == 0 for sample in samples)
