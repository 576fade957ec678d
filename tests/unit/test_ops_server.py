"""The ops server: /metrics, /healthz and /readyz on a real loopback port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from syncengine.ops_server import (
    READY_CHECK_NAME,
    CheckReady,
    OpsServer,
    gather_checks,
    serve_ops,
)
from tests.unit.test_metrics import FakeView


class FakeReadiness:
    """A `check_ready` whose answer the test sets."""

    def __init__(self) -> None:
        self.answer: dict[str, str | None] = {"token": None, "source": None}
        self.calls = 0

    async def __call__(self) -> dict[str, str | None]:
        self.calls += 1
        return dict(self.answer)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def get_status(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def scrape(session: aiohttp.ClientSession, server: OpsServer) -> dict[str, float]:
    """Unlabelled sample name → value, parsed from /metrics."""
    async with session.get(server.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def test_metrics_scrape_reads_view_live(session: aiohttp.ClientSession) -> None:
    """/metrics serves the view's current values, with changes seen at the next scrape."""
    view = FakeView(queue_depth=3, concurrency_limit=5, credits_remaining=None)
    async with serve_ops(port=0, view=view, check_ready=FakeReadiness()) as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        first = await scrape(session, server)
        assert first["syncengine_queue_depth"] == 3
        assert first["syncengine_concurrency_limit"] == 5
        assert "syncengine_credits_remaining" not in first
        view.queue_depth = 0
        view.credits_remaining = 1200
        view.throttled = 4
        second = await scrape(session, server)
    assert second["syncengine_queue_depth"] == 0
    assert second["syncengine_credits_remaining"] == 1200
    assert second["syncengine_throttled_total"] == 4


async def test_metrics_labels_and_content_type(session: aiohttp.ClientSession) -> None:
    """Labelled series come through, under prometheus_client's text content type."""
    view = FakeView(records_by_outcome={"synced": 8}, requests_by_status_code={("0", "TIMEOUT"): 2})
    async with (
        serve_ops(port=0, view=view, check_ready=FakeReadiness()) as server,
        session.get(server.url + "/metrics") as response,
    ):
        content_type = response.headers["Content-Type"]
        text = await response.text()
    assert content_type == CONTENT_TYPE_LATEST
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("syncengine_records_total", (("outcome", "synced"),))] == 8
    key = ("syncengine_requests_total", (("code", "TIMEOUT"), ("status", "0")))
    assert samples[key] == 2


async def test_healthz(session: aiohttp.ClientSession) -> None:
    """/healthz answers 200 ok without consulting readiness."""
    readiness = FakeReadiness()
    readiness.answer = {"token": "refresh refused"}
    async with serve_ops(port=0, view=FakeView(), check_ready=readiness) as server:
        status, body = await get_json(session, server.url + "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    assert readiness.calls == 0


async def test_readyz_ready_then_not(session: aiohttp.ClientSession) -> None:
    """/readyz is 200 when every check passes and 503 naming the failing check otherwise."""
    readiness = FakeReadiness()
    async with serve_ops(port=0, view=FakeView(), check_ready=readiness) as server:
        ready = await get_json(session, server.url + "/readyz")
        readiness.answer = {"token": "refresh refused", "source": None}
        not_ready = await get_json(session, server.url + "/readyz")
    assert ready == (200, {"ready": True, "checks": {"token": None, "source": None}})
    assert not_ready == (
        503,
        {"ready": False, "checks": {"token": "refresh refused", "source": None}},
    )


async def test_readyz_whole_check_raising(session: aiohttp.ClientSession) -> None:
    """A check_ready that raises is not ready; the reason names the type, not the text."""

    async def broken() -> dict[str, str | None]:
        raise ConnectionError("postgres://user:hunter2@db/app")

    with capture_logs() as logs:
        async with serve_ops(port=0, view=FakeView(), check_ready=broken) as server:
            status, body = await get_json(session, server.url + "/readyz")
    assert status == 503
    assert body == {
        "ready": False,
        "checks": {READY_CHECK_NAME: "raised ConnectionError"},
    }
    assert "hunter2" not in repr(logs)
    assert any(entry["event"] == "ops.ready_check_failed" for entry in logs)


async def test_readyz_whole_check_slow(session: aiohttp.ClientSession) -> None:
    """A check_ready slower than the timeout is not ready, and the answer does not wait for it."""

    async def stuck() -> dict[str, str | None]:
        await asyncio.sleep(30)
        return {}

    async with serve_ops(
        port=0, view=FakeView(), check_ready=stuck, ready_timeout_s=0.05
    ) as server:
        started = time.monotonic()
        status, body = await get_json(session, server.url + "/readyz")
        elapsed_s = time.monotonic() - started
    assert status == 503
    assert body == {"ready": False, "checks": {READY_CHECK_NAME: "timed out after 0.05 s"}}
    assert elapsed_s < 1.0


async def test_gathered_checks_name_the_failing_one(session: aiohttp.ClientSession) -> None:
    """With gather_checks, a raising check and a slow check are each named; a good one is None."""

    async def token() -> str | None:
        return None

    async def source() -> str | None:
        raise OSError("connection refused")

    async def journal() -> str | None:
        await asyncio.sleep(30)
        return None

    check_ready: CheckReady = gather_checks(
        {"token": token, "source": source, "journal": journal}, timeout_s=0.05
    )
    async with serve_ops(
        port=0, view=FakeView(), check_ready=check_ready, ready_timeout_s=1.0
    ) as server:
        status, body = await get_json(session, server.url + "/readyz")
    assert status == 503
    assert body == {
        "ready": False,
        "checks": {
            "token": None,
            "source": "raised OSError",
            "journal": "timed out after 0.05 s",
        },
    }


async def test_gathered_checks_all_fine() -> None:
    """gather_checks reports every check as None when all pass, in the order given."""

    async def fine() -> str | None:
        return None

    check_ready = gather_checks({"token": fine, "source": fine})
    assert await check_ready() == {"token": None, "source": None}


async def test_unknown_path_is_404(session: aiohttp.ClientSession) -> None:
    """Only the three endpoints exist."""
    async with serve_ops(port=0, view=FakeView(), check_ready=FakeReadiness()) as server:
        status, _ = await get_status(session, server.url + "/")
    assert status == 404


async def test_port_is_released_on_exit(session: aiohttp.ClientSession) -> None:
    """After the context ends nothing listens, and the same port can be bound again."""
    async with serve_ops(port=0, view=FakeView(), check_ready=FakeReadiness()) as server:
        port = server.port
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(server.url + "/healthz"):
            pass
    async with serve_ops(port=port, view=FakeView(), check_ready=FakeReadiness()) as again:
        status, _ = await get_json(session, again.url + "/healthz")
    assert (again.port, status) == (port, 200)


async def test_taken_port_raises() -> None:
    """Starting on a port already in use raises OSError instead of serving nothing."""
    async with serve_ops(port=0, view=FakeView(), check_ready=FakeReadiness()) as server:
        with pytest.raises(OSError):
            async with serve_ops(port=server.port, view=FakeView(), check_ready=FakeReadiness()):
                pass


def test_url_brackets_ipv6_hosts() -> None:
    """The handle's URL is usable for IPv4 and IPv6 loopback alike."""
    assert OpsServer(host="127.0.0.1", port=9464).url == "http://127.0.0.1:9464"
    assert OpsServer(host="::1", port=9464).url == "http://[::1]:9464"


async def test_healthz_turns_503_while_the_live_check_names_a_stall(
    session: aiohttp.ClientSession,
) -> None:
    """A hung pass answers HTTP but is not alive: the live check's reason makes it 503."""
    stall: list[str] = []
    async with serve_ops(
        port=0,
        view=FakeView(),
        check_ready=FakeReadiness(),
        check_live=lambda: stall[-1] if stall else None,
    ) as server:
        before = await get_json(session, server.url + "/healthz")
        stall.append("journal /j.db: a group commit has waited 31 s")
        during = await get_json(session, server.url + "/healthz")
    assert before == (200, {"status": "ok"})
    assert during == (
        503,
        {"status": "stalled", "reason": "journal /j.db: a group commit has waited 31 s"},
    )
