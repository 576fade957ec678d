"""`syncengine daemon` as a real process against the in-process simulator."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    admin_post,
    run_cli,
    seed_leads,
    sim_leads,
    start_cli,
    write_config,
)

LINGER_MS = 300
LATENCY_MS = 100


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def daemon_config(folder: Path, sim: SimHandle, *, metrics_port: int | None = None) -> Path:
    """A config for the daemon: short linger and poll interval, optional metrics port."""
    path = write_config(folder, sim)
    metrics = f"metrics_port = {metrics_port}" if metrics_port else ""
    path.write_text(
        path.read_text()
        + f"\n[daemon]\nlinger_ms = {LINGER_MS}\npoll_interval_s = 0.05\ngrace_s = 10\n{metrics}\n"
    )
    return path


def append(feed: Path, rows: list[dict[str, Any]]) -> None:
    """Appends JSONL lines the way a producer would."""
    with feed.open("ab") as out:
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")


async def wait_until(check: Callable[[], bool], *, timeout_s: float) -> float:
    """Polls `check` until true; returns how long it took. Fails after `timeout_s`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def company_is(sim: SimHandle, index: int, value: str) -> Callable[[], bool]:
    """True once the simulator holds `value` as lead `index`'s Company."""

    def check() -> bool:
        record = sim.state.store.get("Leads", str(FIRST_ID + index))
        return record is not None and record.fields.get("Company") == value

    return check


@asynccontextmanager
async def running_daemon(config: Path, folder: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A daemon process, stopped with SIGTERM (and reaped) at the end."""
    process = await start_cli("daemon", "-c", str(config), cwd=folder)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def slow_sim() -> AsyncIterator[SimHandle]:
    """A simulator answering in about 100 ms, with admin endpoints."""
    async with running_simulator(port=0, admin=True, latency_ms=LATENCY_MS) as handle:
        yield handle


async def test_each_change_reaches_the_crm_within_linger_plus_latency(
    slow_sim: SimHandle, tmp_path: Path
) -> None:
    """A line appended to the feed is in the CRM within linger + latency + 1 s."""
    await seed_leads(slow_sim, 10)
    feed = tmp_path / "changes.jsonl"
    feed.touch()
    config = daemon_config(tmp_path, slow_sim)
    bound_s = (LINGER_MS + LATENCY_MS) / 1000 + 1.0
    async with running_daemon(config, tmp_path):
        await asyncio.sleep(1.0)  # let it start and mint its token
        delays = []
        for index in range(5):
            append(feed, [{"id": str(FIRST_ID + index), "Company": f"live {index}"}])
            delays.append(
                await wait_until(company_is(slow_sim, index, f"live {index}"), timeout_s=bound_s)
            )
    assert max(delays) <= bound_s
    print("change-to-CRM delays (s):", [round(d, 3) for d in delays])


async def test_log_rotation_and_truncation_lose_nothing(sim: SimHandle, tmp_path: Path) -> None:
    """Lines written before and after a rename-rotation and a truncation all arrive."""
    await seed_leads(sim, 300)
    feed = tmp_path / "changes.jsonl"
    append(feed, [{"id": str(FIRST_ID + i), "Company": f"a{i}"} for i in range(100)])
    config = daemon_config(tmp_path, sim)
    async with running_daemon(config, tmp_path) as process:
        await wait_until(company_is(sim, 99, "a99"), timeout_s=15)
        feed.rename(tmp_path / "changes.jsonl.1")
        append(feed, [{"id": str(FIRST_ID + i), "Company": f"b{i}"} for i in range(100, 200)])
        await wait_until(company_is(sim, 199, "b199"), timeout_s=15)
        feed.write_bytes(b"")  # truncated in place (copytruncate)
        # As with `tail -F`, a truncation is seen when the file is found shorter
        # than what was read; a writer that refills it past that point before the
        # next poll cannot be told apart from growth (documented in the README).
        await asyncio.sleep(0.3)
        append(feed, [{"id": str(FIRST_ID + i), "Company": f"c{i}"} for i in range(200, 300)])
        await wait_until(company_is(sim, 299, "c299"), timeout_s=15)
        assert process.returncode is None
    leads = await sim_leads(sim)
    for index in range(300):
        prefix = "a" if index < 100 else "b" if index < 200 else "c"
        assert leads[str(FIRST_ID + index)]["fields"]["Company"] == f"{prefix}{index}"


async def test_sigterm_during_a_burst_exits_0_and_loses_nothing(
    slow_sim: SimHandle, tmp_path: Path
) -> None:
    """SIGTERM mid-burst: exit 0; a later `run` sends what is left; the CRM ends exact."""
    await seed_leads(slow_sim, 5000)
    feed = tmp_path / "changes.jsonl"
    feed.touch()
    config = daemon_config(tmp_path, slow_sim)
    async with running_daemon(config, tmp_path) as process:
        await asyncio.sleep(1.0)
        append(feed, [{"id": str(FIRST_ID + i), "Company": f"burst {i}"} for i in range(5000)])
        await wait_until(lambda: slow_sim.state.stats.records_written > 500, timeout_s=15)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        assert process.returncode == 0
    written_by_daemon = slow_sim.state.stats.records_written

    later = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    leads = await sim_leads(slow_sim)
    assert all(leads[str(FIRST_ID + i)]["fields"]["Company"] == f"burst {i}" for i in range(5000))
    # Nothing was sent twice: the later run sent exactly what the daemon had not.
    assert slow_sim.state.stats.records_written == 5000
    print(f"daemon sent {written_by_daemon}, the later run {5000 - written_by_daemon}")


async def test_metrics_and_health_endpoints_answer_with_the_right_values(
    sim: SimHandle, tmp_path: Path
) -> None:
    """/metrics counts the synced records; /healthz and /readyz answer 200."""
    await seed_leads(sim, 150)
    feed = tmp_path / "changes.jsonl"
    append(feed, [{"id": str(FIRST_ID + i), "Company": f"m{i}"} for i in range(150)])
    port = free_port()
    config = daemon_config(tmp_path, sim, metrics_port=port)
    async with running_daemon(config, tmp_path), aiohttp.ClientSession() as http:
        await wait_until(company_is(sim, 149, "m149"), timeout_s=15)
        base = f"http://127.0.0.1:{port}"
        samples: dict[str, float] = {}
        for _ in range(50):
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                text = await response.text()
            samples = _samples(text)
            # Records count as synced when answered; the lag and queue gauges
            # settle with the group commit that follows (within ~100 ms).
            if (
                samples.get('syncengine_records_total{outcome="synced"}') == 150
                and samples.get("syncengine_sync_lag_seconds") == 0
            ):
                break
            await asyncio.sleep(0.1)
        assert samples['syncengine_records_total{outcome="synced"}'] == 150
        assert samples['syncengine_requests_total{code="-",status="200"}'] >= 2
        assert samples["syncengine_token_refreshes_total"] == 1
        assert samples["syncengine_queue_depth"] == 0
        assert samples["syncengine_sync_lag_seconds"] == 0
        assert samples["syncengine_concurrency_limit"] >= 1
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{base}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["ready"] is True


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def test_revoked_credentials_end_the_daemon_with_exit_3(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A fatal error stops the daemon with exit 3 and a one-line reason, no spinning."""
    await seed_leads(sim, 5)
    await admin_post(sim, "config", {"revoked": True})
    feed = tmp_path / "changes.jsonl"
    append(feed, [{"id": str(FIRST_ID), "Company": "x"}])
    config = daemon_config(tmp_path, sim)
    process = await start_cli("daemon", "-c", str(config), cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 3
    assert "invalid_code" in stderr.decode()


async def test_retry_while_the_daemon_runs_is_picked_up(sim: SimHandle, tmp_path: Path) -> None:
    """Records failed after their attempts sync once `syncengine retry` puts them back."""
    await seed_leads(sim, 3)
    await admin_post(sim, "config", {"fault_locked": 1.0})
    feed = tmp_path / "changes.jsonl"
    append(feed, [{"id": str(FIRST_ID + i), "Company": f"r{i}"} for i in range(3)])
    config = daemon_config(tmp_path, sim)
    config.write_text(config.read_text().replace("max_attempts = 8", "max_attempts = 2"))
    async with running_daemon(config, tmp_path) as process:
        for _ in range(200):
            status = orjson.loads(
                (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
            )
            if status["records"]["failed"] == 3:
                break
            await asyncio.sleep(0.1)
        assert status["records"]["failed"] == 3
        await admin_post(sim, "config", {"fault_locked": 0.0})
        result = await run_cli("retry", "-c", str(config), cwd=tmp_path)
        assert result.returncode == 0
        await wait_until(company_is(sim, 2, "r2"), timeout_s=10)
        assert process.returncode is None
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 3, "pending": 0, "failed": 0}
