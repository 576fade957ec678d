"""Three workers on a 50,000-line migration, one killed with SIGKILL mid-way.

The feed changes each record several times. Workers split it by partitions
of the record key; the killed worker's partition is leased again by a
survivor, which resumes it from the partition's checkpoint. The CRM must
end exactly as the feed says: for every record the values of its last
line (per-record order kept across workers), and every record written.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    run_cli,
    seed_leads,
    start_cli,
    write_config,
    write_feed,
)
from tests.postgres.conftest import DSN

LINES = 50_000
RECORDS = 12_000
PARTITIONS = 8


@pytest.fixture
async def schema(pg: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"workers_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        await pg.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def worker_config(folder: Path, sim: SimHandle, schema: str) -> Path:
    return write_config(
        folder,
        sim,
        name="workers",
        concurrency=4,
        journal=f'url = "{DSN}"\nschema = "{schema}"',
    )


def feed_lines(
    seed: int, lines: int = LINES, records: int = RECORDS
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """`lines` updates over `records` records, several per record, and each record's last."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    last: dict[str, dict[str, Any]] = {}
    for line in range(lines):
        record_id = str(FIRST_ID + (line if line < records else rng.randrange(records)))
        row: dict[str, Any] = {"id": record_id, "Company": f"line {line}"}
        if rng.random() < 0.5:
            row["No_of_Employees"] = line
        rows.append(row)
        last.setdefault(record_id, {}).update(row)
    return rows, last


def writes(sim: SimHandle, records: int = RECORDS) -> int:
    total = 0
    for index in range(records):
        record = sim.state.store.get("Leads", str(FIRST_ID + index))
        assert record is not None
        total += record.writes
    return total


async def test_three_workers_one_killed_leave_the_crm_exact(
    pg: asyncpg.Connection, schema: str, tmp_path: Path
) -> None:
    async with running_simulator(port=0, admin=True, latency_ms=40, heavy_concurrency=64) as sim:
        await seed_leads(sim, RECORDS)
        rows, last = feed_lines(seed=15)
        write_feed(tmp_path / "changes.jsonl", rows)
        config = worker_config(tmp_path, sim, schema)
        args = ("worker", "-c", str(config), "--partitions", str(PARTITIONS))
        workers = [await start_cli(*args, cwd=tmp_path) for _ in range(3)]
        try:
            deadline = time.monotonic() + 20
            while writes(sim) < RECORDS // 3:
                if time.monotonic() > deadline or any(w.returncode is not None for w in workers):
                    for worker in workers:
                        if worker.returncode is None:
                            worker.kill()
                    errors = [
                        (await worker.communicate())[1].decode()[-1500:] for worker in workers
                    ]
                    raise AssertionError(f"the workers did not get going: {errors}")
                await asyncio.sleep(0.01)
            os.kill(workers[0].pid, signal.SIGKILL)
            open_then = await pg.fetchval(
                f"SELECT count(*) FROM \"{schema}\".worker_partitions WHERE state = 'open'"
            )
            assert open_then > 1  # killed mid-pass: its partition and others left
            # Beside workers, a run is refused as beside any holder of the journal.
            refused = await run_cli("run", "-c", str(config), cwd=tmp_path)
            assert refused.returncode == 4, refused.stderr
            assert "syncengine worker" in refused.stderr
            outputs = await asyncio.wait_for(
                asyncio.gather(*(worker.communicate() for worker in workers[1:])), 120
            )
            await workers[0].wait()
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        assert workers[0].returncode == -signal.SIGKILL
        for worker, (_, err) in zip(workers[1:], outputs, strict=True):
            assert worker.returncode == 0, err.decode()[-2000:]
        for record_id, expected in last.items():
            record = sim.state.store.get("Leads", record_id)
            assert record is not None
            held = {name: record.fields.get(name) for name in expected if name != "id"}
            assert held == {name: v for name, v in expected.items() if name != "id"}, record_id

        finishers = await pg.fetch(f'SELECT state, worker FROM "{schema}".worker_partitions')
        assert len(finishers) == PARTITIONS
        assert {row["state"] for row in finishers} == {"done"}

        # Every partition is done; a later worker begins a new pass and finds nothing to send.
        before = writes(sim)
        again = await run_cli(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-2000:]
        assert writes(sim) == before


async def test_migrate_with_workers_runs_one_pass_over_them(schema: str, tmp_path: Path) -> None:
    async with running_simulator(port=0, admin=True, heavy_concurrency=64) as sim:
        await seed_leads(sim, 2000)
        rows = [{"id": str(FIRST_ID + n % 2000), "Company": f"line {n}"} for n in range(5000)]
        write_feed(tmp_path / "changes.jsonl", rows)
        config = worker_config(tmp_path, sim, schema)
        result = await run_cli("migrate", "-c", str(config), "--workers", "2", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "2 workers ended (0, 0); 0 partition(s) unfinished" in result.stderr
        for n in range(3000, 5000):
            record = sim.state.store.get("Leads", str(FIRST_ID + n % 2000))
            assert record is not None
            assert record.fields["Company"] == f"line {n}"


async def test_workers_need_a_postgresql_journal(tmp_path: Path) -> None:
    async with running_simulator(port=0, admin=True) as sim:
        config = worker_config(tmp_path, sim, "unused")
        text = config.read_text()
        start = text.index("[journal]")
        config.write_text(text[:start] + '[journal]\npath = "journal.db"\n')
        (tmp_path / "changes.jsonl").touch()
        for args in (("migrate", "--workers", "2"), ("worker",), ("migrate", "--partitions", "4")):
            result = await run_cli(*args, "-c", str(config), cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert "PostgreSQL" in result.stderr or "only with --workers" in result.stderr


async def test_an_interrupted_pass_over_workers_is_finished_by_the_next(
    schema: str, tmp_path: Path
) -> None:
    """SIGTERM to `migrate --workers 2`: it stops its workers (exit 130); the next
    `migrate --workers 2` joins the unfinished pass and the CRM ends exact."""
    async with running_simulator(port=0, admin=True, latency_ms=60, heavy_concurrency=64) as sim:
        await seed_leads(sim, 4000)
        rows, last = feed_lines(seed=16, lines=12_000, records=4000)
        write_feed(tmp_path / "changes.jsonl", rows)
        config = worker_config(tmp_path, sim, schema)
        args = ("migrate", "-c", str(config), "--workers", "2")
        launcher = await start_cli(*args, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while writes(sim, 4000) < 1000:
                assert time.monotonic() < deadline, "the workers did not get going"
                assert launcher.returncode is None
                await asyncio.sleep(0.01)
            launcher.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(launcher.communicate(), 60)
        finally:
            if launcher.returncode is None:
                launcher.kill()
                await launcher.wait()
        assert launcher.returncode == 130, err.decode()[-2000:]
        stopped_at = writes(sim, 4000)
        again = await run_cli(*args, cwd=tmp_path, timeout_s=120)
        assert again.returncode == 0, again.stderr[-2000:]
        assert writes(sim, 4000) > stopped_at
        for record_id, expected in last.items():
            record = sim.state.store.get("Leads", record_id)
            assert record is not None
            held = {name: record.fields.get(name) for name in expected if name != "id"}
            assert held == {name: v for name, v in expected.items() if name != "id"}, record_id
