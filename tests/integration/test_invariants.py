"""design.md's invariants, run in-process against the simulator.

Each test runs the real pipeline (`run_pass`: journal, client, token
provider, limiter, engine) from a config file, so what is exercised is what a
user runs; only the process boundary is left out, to keep them quick.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncengine.config import Config, load_config
from syncengine.journal import Journal
from syncengine.runner import run_pass
from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    SECRET_ENV,
    lead_updates,
    seed_leads,
    sim_leads,
    write_config,
    write_feed,
)


def load(path: Path) -> Config:
    """The test config with the test secrets in its environment."""
    return load_config(path, environ=SECRET_ENV)


async def journal_counts(config: Config) -> dict[str, int]:
    """Records by state in the journal."""
    async with await Journal.open(config.journal.path) as journal:
        return await journal.counts()


async def test_every_line_is_accounted_for(sim: SimHandle, tmp_path: Path) -> None:
    """Invariant 1: lines read = synced + failed + pending, with rejections and bad lines."""
    await seed_leads(sim, 300)
    rows: list[dict[str, Any] | bytes] = list(lead_updates(300))
    rows[10] = b"{oops"
    rows[20]["Email"] = "nope"  # type: ignore[index]
    write_feed(tmp_path / "changes.jsonl", rows)
    config = load(write_config(tmp_path, sim))

    result = await run_pass(config, command="run", stop=asyncio.Event())

    counts = await journal_counts(config)
    assert result.counts.read == 300
    assert counts["synced"] + counts["failed"] + counts["pending"] == 300
    assert counts["failed"] == 2
    assert result.exit_status == 1


async def test_synced_only_when_the_crm_said_success(tmp_path: Path) -> None:
    """Invariant 2: under 500s, drops, stalls and locks, each synced record holds its value."""
    async with running_simulator(
        port=0,
        admin=True,
        fault_500=0.1,
        fault_drop=0.05,
        fault_stall=0.03,
        stall_s=3,
        fault_locked=0.05,
        seed=3,
    ) as sim:
        await seed_leads(sim, 1000)
        write_feed(tmp_path / "changes.jsonl", lead_updates(1000))
        path = write_config(tmp_path, sim, extra="timeout_s = 1")
        config = load(path)
        result = await run_pass(config, command="run", stop=asyncio.Event())
        leads = await sim_leads(sim)
    assert result.counts.synced + result.counts.failed == 1000
    async with await Journal.open(config.journal.path) as journal:
        failed_ids = {row.record_id for row in await journal.failures()}
    for index in range(1000):
        record_id = str(FIRST_ID + index)
        if record_id not in failed_ids:
            assert leads[record_id]["fields"]["Company"] == f"Company {index} v1"


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    writes=st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(["a", "b", "c"]), st.integers(0, 99)),
        min_size=1,
        max_size=60,
    )
)
def test_interleaved_changes_end_in_the_last_written_values(
    tmp_path_factory: Any, writes: list[tuple[int, str, int]]
) -> None:
    """Invariant 3: any interleaving of changes to a few records ends in feed-order values."""
    folder = tmp_path_factory.mktemp("order")
    fields = {"a": "Company", "b": "City", "c": "Designation"}
    rows = [{"id": str(FIRST_ID + r), fields[f]: f"{f}{v}"} for r, f, v in writes]
    expected: dict[str, dict[str, str]] = {}
    for row in rows:
        expected.setdefault(row["id"], {}).update({k: v for k, v in row.items() if k != "id"})

    async def scenario() -> dict[str, Any]:
        async with running_simulator(port=0, admin=True, latency_ms=2, jitter_ms=4) as sim:
            await seed_leads(sim, 5)
            write_feed(folder / "changes.jsonl", rows)
            config = load(write_config(folder, sim, limits=""))
            result = await run_pass(config, command="run", stop=asyncio.Event())
            assert result.exit_status == 0
            return await sim_leads(sim)

    leads = asyncio.run(scenario())
    for record_id, values in expected.items():
        stored = leads[record_id]["fields"]
        assert {name: stored.get(name) for name in values} == values


async def test_memory_is_bounded_by_the_queues(tmp_path: Path) -> None:
    """Invariant 4: with a slow CRM, the reader stays a bounded distance ahead of the sends."""
    async with running_simulator(port=0, admin=True, latency_ms=300) as sim:
        await seed_leads(sim, 30_000)
        write_feed(tmp_path / "changes.jsonl", lead_updates(30_000))
        config = load(write_config(tmp_path, sim))
        engines: list[Any] = []
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_pass(config, command="run", stop=stop, on_engine=engines.append)
        )
        ahead: list[int] = []
        for _ in range(15):
            await asyncio.sleep(0.1)
            if engines:
                counts = engines[0].counts
                ahead.append(counts.read - counts.synced - counts.failed)
        stop.set()
        result = await task
    assert result.interrupted
    assert ahead
    assert max(ahead) <= 8_000, ahead
    assert result.counts.read < 30_000


async def test_in_flight_requests_never_exceed_concurrency(tmp_path: Path) -> None:
    """Invariant 5: the simulator never sees more requests at once than `concurrency`."""
    async with running_simulator(port=0, admin=True, latency_ms=20, jitter_ms=20) as sim:
        await seed_leads(sim, 3000)
        write_feed(tmp_path / "changes.jsonl", lead_updates(3000))
        path = write_config(tmp_path, sim)
        path.write_text(path.read_text().replace("concurrency = 10", "concurrency = 4"))
        config = load(path)
        result = await run_pass(config, command="run", stop=asyncio.Event())
        assert result.exit_status == 0
        assert 1 < sim.state.stats.max_in_flight <= 4
        assert sim.state.stats.throttled == 0
        assert sim.state.stats.token_mints == 1


async def test_a_cron_run_reuses_the_cached_token(sim: SimHandle, tmp_path: Path) -> None:
    """Invariant 5: ten runs in a row on one journal mint one access token in all."""
    await seed_leads(sim, 10)
    for round_index in range(10):
        write_feed(tmp_path / "changes.jsonl", lead_updates(10, tag=f"r{round_index}"))
        # A new file each round: the checkpoint is per file, so use a new name.
        target = tmp_path / f"changes-{round_index}.jsonl"
        (tmp_path / "changes.jsonl").rename(target)
        path = write_config(tmp_path, sim, feed=target.name)
        result = await run_pass(load(path), command="run", stop=asyncio.Event())
        assert result.counts.synced == 10
    assert sim.state.stats.token_mints == 1
    leads = await sim_leads(sim)
    assert leads[str(FIRST_ID)]["fields"]["Company"] == "Company 0 r9"


async def test_token_expiry_mid_run_is_refreshed_once_per_expiry(tmp_path: Path) -> None:
    """A token that expires every second is refreshed without failing any record."""
    async with running_simulator(port=0, admin=True, token_ttl_s=1.0, latency_ms=300) as sim:
        await seed_leads(sim, 8000)
        write_feed(tmp_path / "changes.jsonl", lead_updates(8000))
        config = load(write_config(tmp_path, sim))
        result = await run_pass(config, command="run", stop=asyncio.Event())
        mints = sim.state.stats.token_mints
    assert result.exit_status == 0
    assert result.counts.synced == 8000
    assert 2 <= mints <= 10
